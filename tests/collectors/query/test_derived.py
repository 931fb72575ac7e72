"""The beacon's derived measures on a small known population, through the real chDB store:
the TTFB split per page view (network / proxy / origin), GA4's engaged sessions and
abandonment (the visitor left before the last byte) per page and by upstream latency.

Every number below is worked out by hand from the events; timestamps are recent (the
previous hour), as a production store's TTL would keep them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from collectors.analytics.engine import Engine
from collectors.query.compile import compile_query
from collectors.query.parse import QueryError, parse
from collectors.query.run import execute
from collectors.settings import CollectorSettings
from collectors.settings import parse as parse_settings
from tests.collectors.factory import T0
from tests.collectors.query.conftest import TestStore, make_store
from tests.collectors.query.helpers import context, insert

SITE = "shop.example"
RANGE = [dt.datetime.fromtimestamp(T0, dt.UTC).isoformat(), dt.datetime.fromtimestamp(T0 + 3600, dt.UTC).isoformat()]
SPLIT = ["ttfb_network_p75", "ttfb_proxy_p75", "ttfb_origin_p75"]
_n = 0


def _settings(goals: bool = True) -> CollectorSettings:
    errors: list[str] = []
    raw: dict[str, Any] = {"goals": [{"name": "buy", "method": "POST", "path": "/checkout", "status": "2xx,303"}]}
    s = parse_settings(raw if goals else {}, errors)
    assert errors == []
    return s


def _ev(ts: float, **fields: Any) -> dict[str, Any]:
    global _n
    _n += 1
    e: dict[str, Any] = {
        "v": 1, "id": f"{_n:032x}", "ts": T0 + ts, "kind": "pageview", "site": SITE, "method": "GET",
        "path": "/a", "status": 200, "bytes_out": 15000, "content_type": "text/html", "duration_ms": 30.0,
        "upstream_ms": 20.0, "visitor": None, "session": None, "bot": False, "error": None, "consent": "granted",
        "via": "proxy",
    }  # fmt: skip
    e.update(fields)
    return e


def _visit(name: str) -> dict[str, Any]:
    """Session ``name`` of visitor ``v-name``, landing from campaign ``c-name``."""
    return {"visitor": f"v-{name}", "session": f"s-{name}", "utm": {"source": "news", "campaign": f"c-{name}"}}


def _beacon(ts: float, page: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A report of the script on ``page`` (its session, path and page id)."""
    keep = {k: page[k] for k in ("visitor", "session", "utm", "path", "bot") if k in page}
    return _ev(ts, via="beacon", page_id=page["id"], upstream_ms=None, duration_ms=0.0, **{**keep, **fields})


def population() -> list[dict[str, Any]]:
    """Five sessions: ``st`` engaged by time only (6 + 5 s), ``se`` exactly 10 s (not engaged:
    more than 10 s is), ``sp`` by two pageviews only, ``sg`` by a goal only (``POST /checkout``
    → 303), ``sn`` not engaged; a consent-denied pageview (no session) and a bot session."""
    st, se, sp, sg, sn = (_visit(n) for n in ("st", "se", "sp", "sg", "sn"))
    # the TTFB split of each page view with a vitals report (upstream, duration, browser ttfb):
    pv_st = _ev(10, path="/a", upstream_ms=50.0, duration_ms=60.0, **st)  # 240 / 10 / 50
    pv_se = _ev(20, path="/a", upstream_ms=600.0, duration_ms=2600.0, **se)  # body streamed 2 s: 0 / 100 / 600
    pv_sp = _ev(30, path="/a", upstream_ms=250.0, duration_ms=255.5, **sp)  # 744.5 / 5.5 / 250
    pv_sn = _ev(40, path="/b", upstream_ms=4000.0, duration_ms=4000.5, error="client_disconnect", **sn)
    pv_sg = _ev(50, path="/checkout", upstream_ms=50.0, **sg)  # no vitals: not in the split
    pv_sp2 = _ev(90, path="/b", upstream_ms=1200.0, duration_ms=1300.0, error="client_disconnect", **sp)
    bot = {"visitor": "v-bot", "session": "s-bot", "bot": True, "utm": {"campaign": "c-st"}}
    pv_bot = _ev(60, path="/a", upstream_ms=5.0, duration_ms=9.0, **bot)
    return [
        pv_st, pv_se, pv_sp, pv_sn, pv_sg, pv_sp2, pv_bot,
        _beacon(12, pv_st, kind="vitals", vitals={"ttfb": 300.0, "lcp": 900.0}),
        _beacon(400, pv_st, kind="vitals", vitals={"ttfb": 999.0}),  # a later report (bfcache): ignored
        _beacon(14, pv_st, kind="engagement", engaged_ms=6000, scroll_depth=50),
        _beacon(300, pv_st, kind="engagement", engaged_ms=5000, scroll_depth=80),
        _beacon(22, pv_se, kind="vitals", vitals={"ttfb": 700.0}),
        _beacon(25, pv_se, kind="engagement", engaged_ms=10000, scroll_depth=10),
        _beacon(3660, pv_sp, kind="vitals", vitals={"ttfb": 1000.0}),  # after the range, within the grace hour
        _beacon(42, pv_sn, kind="vitals", vitals={"ttfb": 3900.0}),  # below upstream (prerendered): 0 / 0 / 4000
        _beacon(43, pv_sn, kind="engagement", engaged_ms=3000, scroll_depth=10),
        _beacon(35, pv_sp, kind="pageview", path="/spa"),  # an SPA route change: not proxied, never abandoned
        _beacon(61, pv_bot, kind="vitals", vitals={"ttfb": 50.0}),
        _beacon(62, pv_bot, kind="engagement", engaged_ms=60000),
        _ev(51, kind="request", method="POST", path="/checkout", status=303, content_type=None, upstream_ms=50.0,
            **sg),  # converts "buy"
        _ev(91, kind="request", path="/api/x", content_type="application/json", upstream_ms=150.0,
            error="client_disconnect", **sp),  # a request the client gave up: no error, no page
        _ev(92, kind="request", path="/api/y", status=502, content_type=None, upstream_ms=None,
            error="upstream_connect", **sn),  # a real error
        _ev(70, path="/a", upstream_ms=500.0, duration_ms=700.0, error="client_disconnect", consent="denied"),
        _ev(80, path="/a", upstream_ms=2.0, site="other.example", error="client_disconnect", **st),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def store(query_engine: Engine) -> Iterator[TestStore]:
    s = make_store(query_engine)
    insert(query_engine, s.db, population())
    yield s
    query_engine.command(f"DROP DATABASE IF EXISTS {s.db}")


def _ask(store: TestStore, settings: CollectorSettings | None = None, **body: Any) -> dict[tuple[str, ...], list[Any]]:
    settings = settings or _settings()
    q = parse({"site_id": SITE, "date_range": RANGE, **body}, settings)
    ctx = context(settings, store.db, SITE)
    got = execute(store.engine, q, ctx)
    return {tuple(r["dimensions"]): r["metrics"] for r in got["results"]}


def test_ttfb_split_per_page_view(store: TestStore) -> None:
    """One page view per campaign: each row is that page view's split, exactly."""
    got = _ask(store, metrics=[*SPLIT, "ttfb_p75"], dimensions=["visit:utm_campaign"])
    assert got == {
        ("c-st",): [240, 10, 50, 999],  # ttfb_p75 counts every report; the split only the page's first
        ("c-se",): [0, 100, 600, 700],
        ("c-sp",): [744.5, 5.5, 250, None],  # its report came after the range: only the split joins it
        ("c-sn",): [0, 0, 4000, 3900],
        ("c-sg",): [None, None, None, None],
        ("(none)",): [None, None, None, None],
    }


def test_ttfb_split_p75_per_page(store: TestStore) -> None:
    """quantileExact's p75 is the value at rank ⌊0.75·n⌋: with 3 page views of /a, the largest."""
    got = _ask(store, metrics=SPLIT, dimensions=["event:page"])
    assert got[("/a",)] == [744.5, 100, 600]  # network [0, 240, 744.5], proxy [5.5, 10, 100], origin [50, 250, 600]
    assert got[("/b",)] == [0, 0, 4000]
    assert got[("/checkout",)] == [None, None, None]
    total = _ask(store, metrics=SPLIT)[()]
    assert total == [744.5, 100, 4000]  # of 4 page views: the largest again
    one = _ask(store, metrics=SPLIT, filters=[["is", "visit:utm_campaign", ["c-st"]]])[()]
    assert one == [240, 10, 50]  # the bot's page view of c-st is left out


def test_engaged_sessions(store: TestStore) -> None:
    got = _ask(store, metrics=["visits", "engaged_sessions", "engagement_rate"], dimensions=["visit:utm_campaign"])
    assert got == {
        ("c-st",): [1, 1, 100],  # 11 s engaged, one pageview
        ("c-se",): [1, 0, 0],  # 10 s is not more than 10 s
        ("c-sp",): [1, 1, 100],  # two proxied pageviews (and an SPA one)
        ("c-sg",): [1, 1, 100],  # converted "buy"
        ("c-sn",): [1, 0, 0],  # 3 s, one pageview, no goal
        ("(none)",): [0, 0, None],  # the consent-denied pageview: no session, no visit
    }
    assert _ask(store, metrics=["visits", "engaged_sessions", "engagement_rate"])[()] == [5, 3, 60]
    # with visit_duration the query groups by session first: the same numbers
    both = _ask(store, metrics=["engaged_sessions", "engagement_rate", "visit_duration"])[()]
    assert both[:2] == [3, 60]
    # an event filter keeps sessions with a matching event; engagement stays whole-session
    assert _ask(store, metrics=["visits", "engaged_sessions"], dimensions=["event:page"])[("/a",)] == [3, 2]


def test_engaged_sessions_without_goals(store: TestStore) -> None:
    """With no goal configured, a conversion cannot make a session engaged: ``sg`` is not."""
    got = _ask(store, _settings(goals=False), metrics=["engaged_sessions", "engagement_rate"])
    assert got[()] == [2, 40]


def test_abandonment_per_page_and_by_upstream_latency(store: TestStore) -> None:
    assert _ask(store, metrics=["pageviews", "abandonment_rate"])[()] == [8, 42.86]  # 3 of 7 proxied
    by_page = _ask(store, metrics=["abandonment_rate"], dimensions=["event:page"])
    assert by_page == {("/a",): [25], ("/b",): [100], ("/checkout",): [0], ("/spa",): [None],
                       ("/api/x",): [None], ("/api/y",): [None]}  # fmt: skip
    by_latency = _ask(store, metrics=["abandonment_rate"], dimensions=["event:upstream_bucket"],
                      order_by=[["event:upstream_bucket", "asc"]])  # fmt: skip
    assert list(by_latency.items()) == [
        (("(none)",), [None]),  # beacon events, the 502
        (("0000-0100ms",), [0]),  # st, sg (and the POST)
        (("0100-0300ms",), [0]),  # sp's /a (and the abandoned API request: not a page)
        (("0300-1000ms",), [50]),  # se, the consent-denied one
        (("1000-3000ms",), [100]),  # sp's /b
        (("3000ms+",), [100]),  # sn
    ]
    slow = [["is", "event:upstream_bucket", ["1000-3000ms", "3000ms+"]]]
    assert _ask(store, metrics=["abandonment_rate"], filters=slow)[()] == [100]


def test_client_disconnect_is_not_an_error(store: TestStore) -> None:
    """10 proxied events: 7 pageviews (3 abandoned), the POST, the abandoned and the failed API
    request; only the 502 is an error. Apdex (T = 500 ms) still counts the abandoned ones
    frustrated: satisfied are st (60 ms), sp (255.5), sg (30) and the POST (30); se took 2.6 s."""
    assert _ask(store, metrics=["requests", "error_rate", "apdex"])[()] == [10, 10, 0.4]


def test_new_names_parse_and_bad_ones_do_not() -> None:
    settings = _settings()
    body = {"site_id": SITE, "date_range": "day", "metrics": [*SPLIT, "engaged_sessions", "engagement_rate",
            "abandonment_rate"], "dimensions": ["event:upstream_bucket"],
            "order_by": [["engagement_rate", "desc"]]}  # fmt: skip
    assert parse(body, settings).metrics[-1] == "abandonment_rate"
    bad_bodies = [({"metrics": ["ttfb_p50_network"]}, "metrics[0]"),
                  ({"metrics": ["visits"], "dimensions": ["event:upstream"]}, "dimensions[0]"),
                  ({"metrics": ["visits"], "order_by": [["engagement_rate", "asc"]]}, "order_by[0][0]")]  # fmt: skip
    for bad, path in bad_bodies:
        with pytest.raises(QueryError) as err:
            parse({"site_id": SITE, "date_range": "day", **bad}, settings)
        assert err.value.path == path


def test_values_are_bound_not_inlined(store: TestStore) -> None:
    """The split's join and the engagement subquery take the site, range and goals as parameters."""
    settings = _settings()
    q = parse({"site_id": SITE, "date_range": RANGE, "metrics": [*SPLIT, "engagement_rate"]}, settings)
    compiled = compile_query(q, context(settings, store.db, SITE))
    assert SITE not in compiled.sql and "/checkout" not in compiled.sql and "POST" not in compiled.sql
    assert "ts < {beacon_hi:" in compiled.sql and "max(((via = 'proxy' AND match(path, {g0_re:String})" in compiled.sql
    assert compiled.params["beacon_hi"] == q.period.end + dt.timedelta(hours=1)


def test_comparison_with_an_empty_period(store: TestStore) -> None:
    """The hour before has no events: its engaged sessions are 0, the rates undefined."""
    settings = _settings()
    body = {"site_id": SITE, "date_range": RANGE, "metrics": ["engaged_sessions", "engagement_rate",
            "abandonment_rate", "ttfb_network_p75"], "dimensions": ["visit:utm_campaign"],
            "include": {"comparisons": {"mode": "previous_period"}}}  # fmt: skip
    got = execute(store.engine, parse(body, settings), context(settings, store.db, SITE))
    row = next(r for r in got["results"] if r["dimensions"] == ["c-st"])
    assert row["metrics"] == [1, 100, 0, 240]
    assert row["comparison"]["metrics"] == [0, None, None, None]
