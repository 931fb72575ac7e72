"""The ``sessions`` table (collectors/analytics/sessions.py): the visit-only plan reads it for
ranges of whole UTC hours and answers exactly what the events answer (the oracle); other
ranges keep grouping the events; visit filters on event questions take their set of
sessions from it too; a store from before the table is backfilled."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from collectors.analytics.engine import Engine
from collectors.analytics.schema import create_all, events_ddl
from collectors.query.compile import compile_query
from collectors.query.parse import parse
from tests.collectors.query import population
from tests.collectors.query.conftest import TTL_DAYS, TestStore
from tests.collectors.query.helpers import check, context, insert
from tests.collectors.query.oracle import Oracle

OVERVIEW = ["visitors", "visits", "pageviews", "views_per_visit", "bounce_rate", "visit_duration"]
SEGMENT = [["is", "visit:device", ["mobile", "desktop"]], ["is_not", "visit:channel", ["Direct"]]]


@pytest.fixture(scope="module")
def backfilled(query_engine: Engine) -> Iterator[tuple[TestStore, Oracle]]:
    """Events stored before the sessions table existed; ``create_all`` then folds them."""
    db = f"s_{uuid.uuid4().hex[:12]}"
    query_engine.command(f"CREATE DATABASE {db}")
    query_engine.command(events_ddl(db, ttl_days=TTL_DAYS))
    events = population.generate()
    insert(query_engine, db, events)
    create_all(query_engine, db, ttl_days=TTL_DAYS)
    yield TestStore(query_engine, db), Oracle(events, population.settings())
    query_engine.command(f"DROP DATABASE IF EXISTS {db}")


# whole days in the site's zone (whole UTC hours), and ranges that cut hours: minutes, a
# half-hour zone offset
RANGES = [
    ["2026-03-26", "2026-04-01"],
    ["2026-03-28", "2026-03-28"],
    ["2026-03-28T10:30:00+00:00", "2026-03-29T12:15:00+00:00"],
    ["2026-03-28T00:00:00+05:30", "2026-03-30T00:00:00+05:30"],
]


@pytest.mark.parametrize("rng", RANGES, ids=lambda r: f"{r[0]}..{r[1]}")
@pytest.mark.parametrize("body", [
    {"metrics": OVERVIEW},
    {"metrics": OVERVIEW, "filters": SEGMENT},
    {"metrics": ["visitors", "visits", "bounce_rate", "visit_duration"], "dimensions": ["visit:source"]},
    {"metrics": ["visits", "pageviews"], "dimensions": ["visit:entry_page", "visit:exit_page"]},
    {"metrics": ["visitors", "pageviews", "requests"], "dimensions": ["event:page"], "filters": SEGMENT},
    {"metrics": ["visitors"], "dimensions": ["time:day"], "filters": [*SEGMENT, ["is", "event:bot", ["false"]]]},
], ids=["overview", "segment", "sources", "entry-exit", "pages-segment", "bots-segment"])  # fmt: skip
def test_backfilled_sessions_answer_like_the_events(
    backfilled: tuple[TestStore, Oracle], rng: list[str], body: dict[str, Any]
) -> None:
    store, oracle = backfilled
    full = {"site_id": population.SITE, "date_range": rng, **body}
    got = check(store.engine, store.db, oracle, full)
    assert got["results"], "the population must answer"
    q = parse(full, oracle.settings)
    sql = compile_query(q, context(oracle.settings, store.db, q.site)).sql
    whole_hours = ":15:" not in rng[1] and "+05:30" not in rng[0]
    assert (f"{store.db}.sessions " in sql) == whole_hours
