"""Every metric by a sample of dimensions, every filter operator, against the oracle."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from collectors.analytics.engine import Engine
from collectors.query.metrics import METRICS
from tests.collectors.query import population
from tests.collectors.query.conftest import TestStore, make_store
from tests.collectors.query.helpers import check, insert
from tests.collectors.query.oracle import Oracle

RANGE = ["2026-03-26", "2026-04-01"]
SQL_METRICS = [m for m in METRICS if m not in ("percentage", "conversion_rate")]
DIMENSIONS = [
    [], ["event:page"], ["visit:source"], ["visit:channel"], ["visit:device"], ["visit:country"],
    ["visit:entry_page"], ["visit:exit_page"], ["event:kind"], ["event:status"], ["visit:utm_campaign"],
    ["time:day"], ["time:hour"], ["visit:browser", "event:page"], ["event:goal"], ["event:upstream_bucket"],
    ["event:page", "event:upstream_bucket"],
]  # fmt: skip


@pytest.fixture(scope="module")
def world(query_engine: Engine) -> Iterator[tuple[TestStore, Oracle]]:
    store = make_store(query_engine)
    events = population.generate()
    insert(query_engine, store.db, events)
    yield store, Oracle(events, population.settings())
    query_engine.command(f"DROP DATABASE IF EXISTS {store.db}")


def _check(world: tuple[TestStore, Oracle], **body: Any) -> dict[str, Any]:
    store, oracle = world
    return check(store.engine, store.db, oracle, {"site_id": population.SITE, "date_range": RANGE, **body})


@pytest.mark.parametrize("dims", DIMENSIONS, ids=lambda d: ",".join(d) or "none")
def test_every_metric_by_dimension(world: tuple[TestStore, Oracle], dims: list[str]) -> None:
    metrics = SQL_METRICS + (["percentage"] if dims else [])
    got = _check(world, metrics=metrics, dimensions=dims)
    assert got["results"], "the population must answer every dimension"


FILTERS = [
    ["is", "event:page", ["/pricing", "/cart"]],
    ["is_not", "event:page", ["/pricing"]],
    ["contains", "event:page", ["blog"]],
    ["contains", "event:page", ["blog"], {"case_sensitive": False}],
    ["contains_not", "visit:source", ["oogl"]],
    ["matches", "event:page", ["^/blog/[a-z]$", "^/cart$"]],
    ["matches", "event:page", ["^/blog/c$"], {"case_sensitive": False}],
    ["matches_not", "visit:entry_page", ["^/c"]],
    ["is", "visit:channel", ["Paid Search"]],
    ["is", "visit:device", ["mobile", "tablet"]],
    ["is", "visit:country", ["(none)"]],
    ["is", "visit:utm_content", ["a'b"]],
    ["is", "visit:country", ["de"], {"case_sensitive": False}],
    ["is", "event:goal", ["buy"]],
    ["is_not", "event:goal", ["pricing"]],
    ["contains", "event:goal", ["BL"], {"case_sensitive": False}],
    ["is", "event:bot", ["true"]],
    ["is", "event:kind", ["request"]],
    ["and", [["is", "visit:device", ["mobile"]], ["contains", "event:page", ["/"]]]],
    ["or", [["is", "visit:channel", ["Direct"]], ["is", "event:page", ["/pricing"]]]],
    ["not", ["is", "visit:source", ["Google"]]],
    ["and", [["not", ["or", [["is", "visit:os", ["iOS"]], ["is", "event:status", ["500", 502]]]]],
             ["is_not", "event:kind", ["vitals"]]]],
]  # fmt: skip


@pytest.mark.parametrize("flt", FILTERS, ids=lambda f: f"{f[0]}:{f[1] if isinstance(f[1], str) else 'tree'}")
def test_every_filter_operator(world: tuple[TestStore, Oracle], flt: list[Any]) -> None:
    metrics = ["visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration", "views_per_visit",
               "requests", "error_rate", "latency_p75", "apdex"]  # fmt: skip
    _check(world, metrics=metrics, filters=[flt])
    _check(world, metrics=metrics, filters=[flt], dimensions=["visit:source"])


VISIT_METRICS = ["visitors", "visits", "pageviews", "bounce_rate", "visit_duration", "views_per_visit"]
EVENT_METRICS = ["visitors", "visits", "pageviews", "events", "requests", "latency_p75"]


@pytest.mark.parametrize("flt", FILTERS, ids=lambda f: f"{f[0]}:{f[1] if isinstance(f[1], str) else 'tree'}")
@pytest.mark.parametrize("dims", [[], ["visit:channel"], ["visit:entry_page", "visit:country"], ["event:page"]])
def test_query_plans_agree(world: tuple[TestStore, Oracle], flt: list[Any], dims: list[str]) -> None:
    """Visit-only questions take the sessions-first plan, visit filters on event metrics the
    session-id set; both must give the oracle's answer like the joined plan."""
    _check(world, metrics=VISIT_METRICS, filters=[flt], dimensions=dims)
    _check(world, metrics=EVENT_METRICS, filters=[flt], dimensions=dims)


def test_goals_conversion_rate(world: tuple[TestStore, Oracle]) -> None:
    got = _check(world, metrics=["visitors", "events", "conversion_rate"], dimensions=["event:goal"])
    assert {r["dimensions"][0] for r in got["results"]} == {"buy", "pricing", "blog"}
    _check(world, metrics=["visitors", "conversion_rate"], dimensions=["visit:device"],
           filters=[["is", "event:goal", ["buy"]]])  # fmt: skip


def test_first_touch_not_later_events(world: tuple[TestStore, Oracle]) -> None:
    """Later events of a session carry Edge/JP/Referral; no session may be attributed to them."""
    got = _check(world, metrics=["visits"], dimensions=["visit:browser"])
    assert "Edge" not in {r["dimensions"][0] for r in got["results"]}


def test_bots_excluded_unless_filtered(world: tuple[TestStore, Oracle]) -> None:
    humans = _check(world, metrics=["visitors", "requests"])["results"][0]["metrics"]
    bots = _check(world, metrics=["visitors", "requests"], filters=[["is", "event:bot", ["true"]]])
    both = _check(world, metrics=["visitors"], filters=[["is", "event:bot", ["true", "false"]]])
    assert bots["results"][0]["metrics"][0] > 0
    assert both["results"][0]["metrics"][0] == humans[0] + bots["results"][0]["metrics"][0]


def test_consent_denied_counts_in_pageviews_not_visitors(world: tuple[TestStore, Oracle]) -> None:
    oracle = world[1]
    denied = sum(1 for r in oracle.rows if r["consent"] == "denied")
    got = _check(world, metrics=["visitors", "pageviews"], filters=[["is", "visit:channel", ["Direct"]]])
    assert denied > 0 and got["results"][0]["metrics"][1] > 0


DERIVED = ["engaged_sessions", "engagement_rate", "abandonment_rate", "ttfb_network_p75", "ttfb_proxy_p75",
           "ttfb_origin_p75", "error_rate", "apdex"]  # fmt: skip


@pytest.mark.parametrize("flt", [
    ["is", "event:goal", ["buy"]], ["is", "visit:channel", ["Paid Search"]], ["contains", "event:page", ["blog"]],
    ["is", "event:upstream_bucket", ["0000-0100ms", "3000ms+"]], ["is_not", "event:upstream_bucket", ["(none)"]],
    ["or", [["is", "visit:device", ["mobile"]], ["is", "event:upstream_bucket", ["1000-3000ms"]]]],
], ids=lambda f: f"{f[0]}:{f[1] if isinstance(f[1], str) else 'tree'}")  # fmt: skip
def test_derived_measures_under_filters(world: tuple[TestStore, Oracle], flt: list[Any]) -> None:
    _check(world, metrics=DERIVED, filters=[flt])
    _check(world, metrics=DERIVED, filters=[flt], dimensions=["visit:utm_campaign"])
    _check(world, metrics=[*DERIVED, "visit_duration"], filters=[flt], dimensions=["event:upstream_bucket"])
