"""Query-API fixtures: one real chDB path per pytest process, a database per module.

chDB holds one path per process (PERF-NOTES.md). When the store's shared
``chdb_engines`` fixture exists (tests/conftest.py), the query tests use its path
too; until then they open their own, once per run.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from collectors.analytics.engine import ChdbEngine, Engine
from collectors.analytics.schema import create_statements

T = TypeVar("T")
TTL_DAYS = 7_300  # fixed historical dates (DST changes) must survive the TTL; DateTime ends in 2106


@pytest.fixture(scope="session")
def query_engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    try:
        engines = request.getfixturevalue("chdb_engines")
    except pytest.FixtureLookupError:
        engine = ChdbEngine(tmp_path_factory.mktemp("chdb-query") / "analytics")
        yield engine
        engine.close()
    else:
        yield engines[0]


class TestStore:
    """A database on the shared engine, shaped like ``collectors.analytics.store.Store``."""

    __test__ = False

    def __init__(self, engine: Engine, db: str) -> None:
        self.engine = engine
        self.db = db
        self.has_sessions = True

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)

    def count(self) -> int:
        return int(self.engine.query(f"SELECT count() FROM {self.db}.events")[0][0])


def make_store(engine: Engine) -> TestStore:
    db = f"q_{uuid.uuid4().hex[:12]}"
    for statement in create_statements(db, ttl_days=TTL_DAYS):  # events, sessions and its view
        engine.command(statement)
    return TestStore(engine, db)


@pytest.fixture(scope="module")
def module_store(query_engine: Engine) -> Iterator[TestStore]:
    store = make_store(query_engine)
    yield store
    query_engine.command(f"DROP DATABASE IF EXISTS {store.db}")
