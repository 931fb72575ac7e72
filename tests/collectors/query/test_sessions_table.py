"""The ``sessions`` table (collectors/analytics/sessions.py): the visit-only plan reads it for
ranges of whole UTC hours and answers exactly what the events answer (the oracle); other
ranges keep grouping the events; visit filters on event questions take their set of
sessions from it too; a store from before the table is backfilled."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from collectors.analytics.engine import Engine
from collectors.analytics.schema import create_all, events_ddl
from collectors.query.compile import compile_query
from collectors.query.metrics import BY_SESSION
from collectors.query.parse import parse
from collectors.query.run import execute
from tests.collectors.query import population
from tests.collectors.query.conftest import TTL_DAYS, TestStore
from tests.collectors.query.helpers import check, context, insert
from tests.collectors.query.oracle import Oracle

OVERVIEW = ["visitors", "visits", "pageviews", "views_per_visit", "bounce_rate", "visit_duration"]
SEGMENT = [["is", "visit:device", ["mobile", "desktop"]], ["is_not", "visit:channel", ["Direct"]]]


@pytest.fixture(scope="module")
def backfilled(query_engine: Engine) -> Iterator[tuple[TestStore, Oracle]]:
    """Events stored before the sessions table and the derived ``vid``/``sid`` columns existed;
    ``create_all`` then adds the columns and folds the events into sessions."""
    db = f"s_{uuid.uuid4().hex[:12]}"
    query_engine.command(f"CREATE DATABASE {db}")
    query_engine.command(events_ddl(db, ttl_days=TTL_DAYS))
    query_engine.command(f"ALTER TABLE {db}.events DROP COLUMN vid, DROP COLUMN sid")  # the older table
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
    # time buckets over the table's hourly rows (a session counts in every bucket it touched)
    {"metrics": OVERVIEW, "dimensions": ["time:day"]},
    {"metrics": OVERVIEW, "dimensions": ["time:hour"], "filters": SEGMENT},
    {"metrics": ["visitors", "visits", "bounce_rate", "pageviews"], "dimensions": ["visit:source", "time:week"]},
    # visit and event metrics together: two questions, merged (run._split)
    {"metrics": [*OVERVIEW, "requests", "latency_p75", "error_rate"], "filters": SEGMENT},
    {"metrics": ["visitors", "bounce_rate", "requests", "apdex"], "dimensions": ["time:day"], "filters": SEGMENT},
    # a segment's sessions first, then the shown dimension for them alone
    {"metrics": ["visitors", "visits", "bounce_rate", "visit_duration"], "dimensions": ["visit:source"],
     "filters": [["or", [["is", "visit:device", ["mobile"]], ["not", ["is", "visit:channel", ["Direct"]]]]]]},
    # event questions that join each event to its session's stats and first touch
    {"metrics": ["visitors", "bounce_rate", "visit_duration"], "dimensions": ["event:page"],
     "filters": [*SEGMENT, ["is", "event:kind", ["pageview"]]]},
    {"metrics": ["visitors", "pageviews"], "dimensions": ["visit:entry_page"],
     "filters": [["is", "event:kind", ["pageview"]], ["is_not", "visit:channel", ["Direct"]]]},
], ids=["overview", "segment", "sources", "entry-exit", "pages-segment", "bots-segment", "days", "hours-segment",
        "weeks-sources", "mixed", "mixed-days", "segment-sources", "joined-pages", "joined-entry"])  # fmt: skip
def test_backfilled_sessions_answer_like_the_events(
    backfilled: tuple[TestStore, Oracle], rng: list[str], body: dict[str, Any]
) -> None:
    store, oracle = backfilled
    full = {"site_id": population.SITE, "date_range": rng, **body}
    got = check(store.engine, store.db, oracle, full)
    assert got["results"], "the population must answer"
    q = parse(full, oracle.settings)
    visit = tuple(m for m in q.metrics if m in BY_SESSION)  # a mixed question's visit half (run._split)
    sql = compile_query(q, context(oracle.settings, store.db, q.site), metrics=visit or None).sql
    whole_hours = ":15:" not in rng[1] and "+05:30" not in rng[0]
    assert (f"{store.db}.sessions " in sql) == whole_hours


def test_time_buckets_need_a_zone_on_whole_hours() -> None:
    """Lord Howe is UTC+11 in its summer and +10:30 in its winter (the switch: 5 April 2026):
    a range that reaches the half-hour offset cannot bucket hourly rows."""
    from collectors.query.compile import _hour_zone
    from collectors.query.dates import dates

    zone = "Australia/Lord_Howe"
    assert _hour_zone(zone, dates(dt.date(2026, 2, 1), dt.date(2026, 2, 28), zone))
    assert not _hour_zone(zone, dates(dt.date(2026, 3, 20), dt.date(2026, 4, 20), zone))
    assert _hour_zone("Europe/Berlin", dates(dt.date(2026, 3, 20), dt.date(2026, 4, 20), "Europe/Berlin"))


def test_a_mixed_question_pages_and_compares_like_one(backfilled: tuple[TestStore, Oracle]) -> None:
    """The two halves of a mixed question are merged before the page is cut: a page is the
    slice of the whole answer, in time order, and the comparison lines up bucket by bucket."""
    store, oracle = backfilled
    body = {"site_id": population.SITE, "date_range": ["2026-03-29", "2026-04-01"],
            "metrics": ["visitors", "bounce_rate", "requests"], "dimensions": ["time:day"], "filters": SEGMENT}
    whole = check(store.engine, store.db, oracle, body)["results"]
    assert len(whole) == 4 and [r["dimensions"] for r in whole] == sorted(r["dimensions"] for r in whole)
    q = parse({**body, "pagination": {"limit": 2, "offset": 1}}, oracle.settings)
    page = execute(store.engine, q, context(oracle.settings, store.db, q.site))["results"]
    assert page == whole[1:3]
    q = parse({**body, "include": {"comparisons": {"mode": "previous_period"}}}, oracle.settings)
    compared = execute(store.engine, q, context(oracle.settings, store.db, q.site))["results"]
    assert [r["metrics"] for r in compared] == [r["metrics"] for r in whole]
    before = check(store.engine, store.db, oracle, {**body, "date_range": ["2026-03-25", "2026-03-28"]})["results"]
    by_day = {r["dimensions"][0]: r["metrics"] for r in before}
    for row in compared:  # the day four days before, or nothing (counts 0) where it had no events
        day = (dt.date.fromisoformat(row["dimensions"][0]) - dt.timedelta(days=4)).isoformat()
        assert row["comparison"]["metrics"] == by_day.get(day, [0, None, 0]), day
    assert any(r["comparison"]["metrics"][0] for r in compared)
