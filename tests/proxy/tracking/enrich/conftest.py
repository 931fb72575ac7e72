"""One Enricher per test session: building one loads ~0.3 s of parsers and lists."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from proxy.settings import EnrichmentSettings
from proxy.tracking.enrich import Enricher


@pytest.fixture(scope="session")
def enricher() -> Iterator[Enricher]:
    e = Enricher(EnrichmentSettings(own_domains=("example-cdn.net",)))
    yield e
    e.close()
