"""[[collectors.sites]] and bot_score_threshold: validated once, errors name the key path."""

from __future__ import annotations

from typing import Any

import pytest

from collectors.query.sites import Site
from collectors.settings import parse


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ({"sites": {"host": "a"}}, "collectors.sites: must be a list of tables"),
        ({"sites": ["a"]}, "collectors.sites[0]: must be a table"),
        ({"sites": [{"host": "Shop.Example:80"}]}, "collectors.sites[0].host: must be a lower-case host"),
        ({"sites": [{"host": "a.b"}, {"host": "a.b"}]}, "collectors.sites[1].host: 'a.b' defined"),
        ({"sites": [{"host": "a.b", "timezone": "Mars/Olympus"}]}, "collectors.sites[0].timezone: must be"),
        ({"sites": [{"host": "a.b", "apdex_threshold_ms": 0}]}, "collectors.sites[0].apdex_threshold_ms:"),
        ({"sites": [{"host": "a.example", "tz": "UTC"}]}, "collectors.sites[0].tz: unknown setting"),
        ({"bot_score_threshold": 100}, "collectors.bot_score_threshold: must be an integer from 0"),
    ],
)  # fmt: skip
def test_bad_site_settings_name_the_key(raw: dict[str, Any], error: str) -> None:
    errors: list[str] = []
    parse(raw, errors)
    assert len(errors) == 1 and errors[0].startswith(error), errors


def test_sites_parse_and_default_to_utc() -> None:
    errors: list[str] = []
    s = parse({"sites": [{"host": "a.example", "timezone": "Europe/Berlin", "apdex_threshold_ms": 250}],
               "bot_score_threshold": 0}, errors)  # fmt: skip
    assert errors == []
    assert s.site("a.example") == Site("a.example", "Europe/Berlin", 250.0)
    assert s.site("b.example") == Site("b.example", "UTC", None)
    assert s.bot_score_threshold == 0
