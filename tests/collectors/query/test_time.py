"""Time zones across DST changes, comparisons, pagination and funnels, on the real engine."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from collectors.analytics.engine import Engine
from collectors.query import dates
from collectors.query.parse import parse
from collectors.query.run import execute, funnel
from tests.collectors.query import population
from tests.collectors.query.conftest import TestStore, make_store
from tests.collectors.query.helpers import check, context, insert
from tests.collectors.query.oracle import Oracle

SITE = population.SITE


def _at(text: str, **fields: Any) -> dict[str, Any]:
    """A pageview at a UTC instant."""
    base: dict[str, Any] = {"v": 1, "site": SITE, "kind": "pageview", "path": "/", "visitor": "a", "session": "a1",
                            "status": 200, "duration_ms": 10.0, "via": "proxy"}  # fmt: skip
    ts = dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()
    return {**base, "ts": ts, **fields}


# UTC instants and their Berlin days: CET (+1) before 2026-03-29 01:00Z, CEST (+2) after;
# back to CET at 2025-10-26 01:00Z
EDGES = [
    ("2026-03-28T22:59:59", "2026-03-28"), ("2026-03-28T23:00:00", "2026-03-29"),
    ("2026-03-29T21:59:59", "2026-03-29"), ("2026-03-29T22:00:00", "2026-03-30"),
    ("2025-10-25T21:59:59", "2025-10-25"), ("2025-10-25T22:00:00", "2025-10-26"),
    ("2025-10-26T22:59:59", "2025-10-26"), ("2025-10-26T23:00:00", "2025-10-27"),
    ("2025-03-29T12:00:00", "2025-03-29"), ("2025-03-30T12:00:00", "2025-03-30"),
]  # fmt: skip


@pytest.fixture(scope="module")
def world(query_engine: Engine) -> Iterator[tuple[TestStore, Oracle]]:
    store = make_store(query_engine)
    events = [_at(t, id=f"e{i:03d}", visitor=f"v{i}", session=f"v{i}s") for i, (t, _) in enumerate(EDGES)]
    events += [dict(e, id=f"p{i:05d}") for i, e in enumerate(population.generate())]
    insert(query_engine, store.db, events)
    yield store, Oracle(events, population.settings())
    query_engine.command(f"DROP DATABASE IF EXISTS {store.db}")


def _run(world: tuple[TestStore, Oracle], body: dict[str, Any], now: dt.datetime | None = None) -> dict[str, Any]:
    store, oracle = world
    settings = oracle.settings
    q = parse({"site_id": SITE, **body}, settings, now)
    return execute(store.engine, q, context(settings, store.db, SITE))


def test_day_boundaries_follow_the_site_zone_across_dst(world: tuple[TestStore, Oracle]) -> None:
    for first, last in (("2026-03-28", "2026-03-30"), ("2025-10-25", "2025-10-27"), ("2025-03-29", "2025-03-30")):
        got = _run(world, {"metrics": ["visitors"], "date_range": [first, last], "dimensions": ["time:day"],
                           "filters": [["matches", "visit:browser", ["^$"]]]})  # fmt: skip
        want: dict[str, int] = {}
        for _, day in EDGES:
            if first <= day <= last:
                want[day] = want.get(day, 0) + 1
        assert {r["dimensions"][0]: r["metrics"][0] for r in got["results"]} == want


@pytest.mark.parametrize(("day", "hours"), [("2026-03-29", 23), ("2025-10-26", 24), ("2026-03-30", 24)])
def test_hour_labels_of_a_dst_day(world: tuple[TestStore, Oracle], day: str, hours: int) -> None:
    got = _run(world, {"metrics": ["visitors"], "date_range": [day, day], "dimensions": ["time"],
                       "include": {"time_labels": True}})  # fmt: skip
    labels = got["meta"]["time_labels"]
    assert len(labels) == hours and labels[0] == f"{day} 00:00:00" and labels[-1] == f"{day} 23:00:00"
    assert {r["dimensions"][0] for r in got["results"]} <= set(labels)
    # a day is 23 h (spring) or 25 h (autumn) of UTC time
    q = parse({"site_id": SITE, "metrics": ["visitors"], "date_range": [day, day]}, world[1].settings)
    span = (q.period.end - q.period.start).total_seconds() / 3600
    assert span == {"2026-03-29": 23, "2025-10-26": 25}.get(day, 24)


def test_hour_buckets_match_the_oracle_across_dst(world: tuple[TestStore, Oracle]) -> None:
    store, oracle = world
    for rng in (["2026-03-28", "2026-03-30"], ["2025-10-25", "2025-10-27"]):
        check(store.engine, store.db, oracle, {"site_id": SITE, "metrics": ["visitors", "pageviews"],
                                               "date_range": rng, "dimensions": ["time:hour"]})  # fmt: skip


def test_previous_period_comparison(world: tuple[TestStore, Oracle]) -> None:
    body = {"metrics": ["visitors", "pageviews", "bounce_rate"], "date_range": ["2026-03-29", "2026-03-31"]}
    got = _run(world, {**body, "include": {"comparisons": {"mode": "previous_period"}}})
    assert got["meta"]["comparison_date_range"] == ["2026-03-26T00:00:00+01:00", "2026-03-28T23:59:59+01:00"]
    before = _run(world, {**body, "date_range": ["2026-03-26", "2026-03-28"]})["results"][0]["metrics"]
    now = got["results"][0]["metrics"]
    comparison = got["results"][0]["comparison"]
    assert comparison["metrics"] == before
    assert comparison["change"][:2] == [round((n - b) / b * 100) for n, b in zip(now[:2], before[:2], strict=True)]
    assert comparison["change"][2] == round(now[2] - before[2], 2)  # a rate changes by its difference
    # by day: each day is compared with the day 3 days before
    by_day = _run(world, {**body, "dimensions": ["time:day"], "include": {"comparisons": {"mode": "previous_period"}}})
    earlier = {r["dimensions"][0]: r["metrics"] for r in _run(world, {**body, "dimensions": ["time:day"],
               "date_range": ["2026-03-26", "2026-03-28"]})["results"]}  # fmt: skip
    for r in by_day["results"]:
        shifted = (dt.date.fromisoformat(r["dimensions"][0]) - dt.timedelta(days=3)).isoformat()
        assert r["comparison"]["metrics"] == earlier[shifted]


def test_year_over_year_comparison(world: tuple[TestStore, Oracle]) -> None:
    got = _run(world, {"metrics": ["visitors"], "date_range": ["2026-03-29", "2026-03-30"],
                       "dimensions": ["time:day"], "filters": [["matches", "visit:browser", ["^$"]]],
                       "include": {"comparisons": {"mode": "year_over_year"}}})  # fmt: skip
    rows = {r["dimensions"][0]: r for r in got["results"]}
    # one edge event on 2026-03-29 and on 2026-03-30; one on 2025-03-29 and on 2025-03-30 (local)
    assert rows["2026-03-29"]["comparison"]["metrics"] == [1]
    assert rows["2026-03-30"]["comparison"] == {"dimensions": ["2026-03-30"], "metrics": [1], "change": [0]}
    assert got["meta"]["comparison_date_range"][0].startswith("2025-03-29")


def test_pagination_and_total_rows(world: tuple[TestStore, Oracle]) -> None:
    body = {"metrics": ["visitors", "pageviews"], "date_range": ["2026-03-26", "2026-04-01"],
            "dimensions": ["event:page", "visit:device"], "include": {"total_rows": True}}  # fmt: skip
    full = _run(world, body)["results"]
    assert len(full) > 7
    pages = [_run(world, {**body, "pagination": {"limit": 3, "offset": o}}) for o in range(0, len(full), 3)]
    assert [r for p in pages for r in p["results"]] == full
    assert {p["meta"]["total_rows"] for p in pages} == {len(full)}
    visitors = [r["metrics"][0] for r in full]
    assert visitors == sorted(visitors, reverse=True)
    asc = _run(world, {**body, "order_by": [["event:page", "asc"], ["visitors", "desc"]]})["results"]
    assert [r["dimensions"][0] for r in asc] == sorted(r["dimensions"][0] for r in asc)


def _expected_funnel(oracle: Oracle, steps: list[str], lo: float, hi: float) -> list[int]:
    from collectors.settings import glob_regex

    patterns = [glob_regex(s) for s in steps]
    by_visitor: dict[str, list[dict[str, Any]]] = {}
    for r in oracle.rows:
        if (r["site"] == SITE and r["visitor"] and r["kind"] == "pageview" and lo <= r["ts"] < hi
                and not oracle.is_bot(r)):  # fmt: skip
            by_visitor.setdefault(r["visitor"], []).append(r)
    reached = [0] * len(steps)
    for rows in by_visitor.values():
        level = 0
        for r in sorted(rows, key=lambda r: r["ts"]):
            if level < len(steps) and patterns[level].match(r["path"]):
                level += 1
        for i in range(level):
            reached[i] += 1
    return reached


def test_funnel_steps(world: tuple[TestStore, Oracle]) -> None:
    store, oracle = world
    settings = oracle.settings
    q = parse({"site_id": SITE, "metrics": ["visitors"], "date_range": ["2026-03-26", "2026-04-01"]}, settings)
    got = funnel(store.engine, q, context(settings, store.db, SITE), settings.funnels[0])
    want = _expected_funnel(oracle, list(settings.funnels[0].steps), q.period.start.timestamp(),
                            q.period.end.timestamp())  # fmt: skip
    assert [s["visitors"] for s in got["steps"]] == want
    assert want[0] > want[1] > 0
    assert got["steps"][1]["dropoff"] == want[0] - want[1]
    assert got["steps"][2]["conversion_rate"] == round(100 * want[2] / want[0], 2)
    # a segment narrows the funnel (visit filters take the session-id set plan)
    mobile = parse({"site_id": SITE, "metrics": ["visitors"], "date_range": ["2026-03-26", "2026-04-01"],
                    "filters": [["is", "visit:device", ["mobile"]]]}, settings)  # fmt: skip
    narrowed = funnel(store.engine, mobile, context(settings, store.db, SITE), settings.funnels[0])
    assert 0 < narrowed["steps"][0]["visitors"] < want[0]


def test_realtime_is_the_last_five_minutes(query_engine: Engine) -> None:
    store = make_store(query_engine)
    try:
        now = dt.datetime.now(dt.UTC)
        events = [_at(now.replace(tzinfo=None).isoformat(), id=f"r{i}", visitor=f"r{i}", session=f"r{i}",
                      ts=(now - dt.timedelta(seconds=s)).timestamp()) for i, s in enumerate((10, 100, 290, 310, 900))]
        insert(query_engine, store.db, events)
        settings = population.settings()
        q = parse({"site_id": SITE, "metrics": ["visitors"], "date_range": "realtime"}, settings, now)
        assert execute(query_engine, q, context(settings, store.db, SITE))["results"][0]["metrics"] == [3]
        assert dates.REALTIME_SECONDS == 300
    finally:
        query_engine.command(f"DROP DATABASE IF EXISTS {store.db}")
