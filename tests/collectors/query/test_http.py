"""The /api/v2 handlers on a real aiohttp server over a real chDB store; injection attempts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from collectors.analytics.engine import Engine
from collectors.query.http import add_routes
from proxy.stream.embedded import free_port
from tests.collectors.query import population
from tests.collectors.query.conftest import TestStore, make_store
from tests.collectors.query.helpers import insert

RANGE = ["2026-03-26", "2026-04-01"]


@pytest.fixture(scope="module")
def store(query_engine: Engine) -> Iterator[TestStore]:
    s = make_store(query_engine)
    insert(query_engine, s.db, population.generate())
    yield s
    query_engine.command(f"DROP DATABASE IF EXISTS {s.db}")


class Api:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session, self.base = session, base

    async def post(self, path: str, body: Any) -> tuple[int, Any]:
        data = body if isinstance(body, bytes) else None
        async with self.session.post(self.base + path, json=None if data else body, data=data) as r:
            return r.status, await r.json()

    async def get(self, path: str, **params: str) -> tuple[int, Any]:
        async with self.session.get(self.base + path, params=params) as r:
            return r.status, await r.json()


async def _serve(getter: Any, registry: Any = None) -> AsyncIterator[Api]:
    app = web.Application()
    add_routes(app, getter, population.settings(), hosts=["upstream.example"], registry=registry)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    async with aiohttp.ClientSession() as session:
        yield Api(session, f"http://127.0.0.1:{port}")
    await runner.cleanup()


@pytest.fixture
async def api(store: TestStore) -> AsyncIterator[Api]:
    async for a in _serve(lambda: store):
        yield a


async def test_query_answers_like_plausible(api: Api) -> None:
    status, body = await api.post("/api/v2/query", {
        "site_id": population.SITE, "metrics": ["visitors", "pageviews", "bounce_rate"], "date_range": RANGE,
        "dimensions": ["visit:source"], "order_by": [["visitors", "desc"]], "pagination": {"limit": 2},
        "include": {"total_rows": True},
    })  # fmt: skip
    assert status == 200, body
    assert len(body["results"]) == 2 and body["meta"]["total_rows"] > 2
    first = body["results"][0]
    assert isinstance(first["dimensions"][0], str) and len(first["metrics"]) == 3
    assert body["query"]["date_range"] == ["2026-03-26T00:00:00+01:00", "2026-04-01T23:59:59+02:00"]
    assert body["query"]["order_by"] == [["visitors", "desc"]] and body["query"]["timezone"] == population.TZ


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "query: not valid JSON"),
        ([1, 2], "query: must be a JSON object"),
        ({"site_id": "x", "metrics": ["visitors"], "date_range": "7d", "dimensions": ["visit:nope"]}, "dimensions[0]"),
        ({"site_id": "x", "metrics": ["visitors"], "date_range": "7d",
          "filters": [["matches", "event:page", ["ok", "(unclosed"]]]}, "filters[0][2][1]: not an RE2"),
        ({"site_id": "x", "metrics": ["visitors"], "date_range": "7d",
          "filters": [["matches", "event:goal", ["(unclosed"]]]}, "filters[0][2]: bad regular expression"),
    ],
)  # fmt: skip
async def test_bad_queries_get_400_naming_the_field(api: Api, body: Any, field: str) -> None:
    status, answer = await api.post("/api/v2/query", body)
    assert status == 400 and answer["error"].startswith(field), answer


async def test_no_store_is_503() -> None:
    async for a in _serve(lambda: None):
        status, body = await a.post("/api/v2/query", {"site_id": "x", "metrics": ["visitors"], "date_range": "7d"})
        assert status == 503 and "not open" in body["error"]


async def test_funnel_realtime_and_sites(api: Api) -> None:
    status, body = await api.post("/api/v2/funnel", {"site_id": population.SITE, "funnel": "checkout",
                                                      "date_range": RANGE})  # fmt: skip
    assert status == 200 and [s["step"] for s in body["steps"]] == [1, 2, 3] and body["steps"][0]["visitors"] > 0
    status, body = await api.post("/api/v2/funnel", {"site_id": population.SITE, "funnel": "nope", "date_range": RANGE})
    assert status == 400 and body["error"].startswith("funnel: unknown funnel 'nope'")
    status, body = await api.get("/api/v2/realtime", site_id=population.SITE)
    assert status == 200 and body["visitors"] == 0 and body["seconds"] == 300
    status, body = await api.get("/api/v2/sites")
    assert status == 200
    sites = {s["site_id"]: s for s in body["sites"]}
    assert sites[population.SITE]["timezone"] == population.TZ
    assert sites[population.SITE]["apdex_threshold_ms"] == 100
    assert sites["upstream.example"]["timezone"] == "UTC"


PAYLOADS = [
    "x' OR 1=1 --",
    "'); DROP TABLE {db}.events; --",
    "\\'; DROP TABLE {db}.events; --",
    "{site:String}",
    "visitors) FROM system.tables --",
    "shop.example' UNION ALL SELECT name FROM system.tables --",
]


def _positions(p: str) -> list[tuple[str, dict[str, Any]]]:
    base: dict[str, Any] = {"site_id": population.SITE, "metrics": ["visitors"], "date_range": RANGE}
    return [
        ("site_id", {**base, "site_id": p}),
        ("is", {**base, "filters": [["is", "event:page", [p]]]}),
        ("is visit", {**base, "filters": [["is", "visit:utm_content", [p], {"case_sensitive": False}]]}),
        ("contains", {**base, "filters": [["contains", "visit:source", [p, "zzqq"]]]}),
        ("matches", {**base, "filters": [["matches", "event:page", [p]]]}),
        ("goal", {**base, "filters": [["is", "event:goal", [p]]]}),
        ("dimension", {**base, "dimensions": [p]}),
        ("filter dimension", {**base, "filters": [["is", p, ["x"]]]}),
        ("operator", {**base, "filters": [[p, "event:page", ["x"]]]}),
        ("metric", {**base, "metrics": [p]}),
        ("order_by", {**base, "dimensions": ["event:page"], "order_by": [[p, "desc"]]}),
        ("order_by dir", {**base, "dimensions": ["event:page"], "order_by": [["visitors", p]]}),
        ("date_range", {**base, "date_range": p}),
        ("date_range pair", {**base, "date_range": ["2026-03-26", p]}),
        ("modifier", {**base, "filters": [["is", "event:page", ["x"], {p: True}]]}),
        ("include", {**base, "include": {p: True}}),
    ]


@pytest.mark.parametrize("payload", PAYLOADS)
async def test_injection_in_every_string_position_never_runs(api: Api, store: TestStore, payload: str) -> None:
    before = store.count()
    p = payload.replace("{db}", store.db)
    for where, body in _positions(p):
        status, answer = await api.post("/api/v2/query", body)
        assert status in (200, 400), (where, status, answer)
        if status == 200:  # bound as data: matches nothing (or, for a regex, what it matches as a regex)
            assert answer["results"] in ([], [{"dimensions": [], "metrics": [0]}]), (where, answer)
    for where, body in (("funnel", {"site_id": p, "funnel": "checkout", "date_range": RANGE}),
                        ("funnel name", {"site_id": population.SITE, "funnel": p, "date_range": RANGE})):  # fmt: skip
        status, answer = await api.post("/api/v2/funnel", body)
        assert status in (200, 400), (where, status, answer)
    status, _ = await api.get("/api/v2/realtime", site_id=p)
    assert status == 200
    assert store.count() == before
    tables = store.engine.query("SELECT count() FROM system.tables WHERE database = {db:String}", {"db": store.db})
    assert tables == [(5,)]  # events, events_in, events_flatten, sessions, sessions_mv: none dropped or added


async def test_answers_are_timed_by_outcome_and_a_slow_one_is_logged(
    store: TestStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from collectors.query import http

    registry = CollectorRegistry()
    question = {"site_id": population.SITE, "metrics": ["visitors"], "date_range": RANGE}
    async for api in _serve(lambda: store, registry):
        assert (await api.post("/api/v2/query", question))[0] == 200
        assert (await api.post("/api/v2/query", {**question, "metrics": ["nope"]}))[0] == 400
        assert (await api.get("/api/v2/sites"))[0] == 200
        monkeypatch.setattr(http, "SLOW_QUERY_SECONDS", 0.0)  # every answer is slow now
        with caplog.at_level("WARNING", logger="collectors.query.http"):
            assert (await api.post("/api/v2/query", {**question, "metrics": ["pageviews"]}))[0] == 200
            assert (await api.get("/api/v2/realtime", site_id=population.SITE))[0] == 200
    text = generate_latest(registry).decode()

    def count(endpoint: str, outcome: str) -> float:
        line = f'footfall_query_duration_seconds_count{{endpoint="{endpoint}",outcome="{outcome}"}} '
        return float(next(x for x in text.splitlines() if x.startswith(line)).split()[-1])

    assert count("query", "ok") == 2 and count("query", "bad_request") == 1
    assert count("sites", "ok") == 1 and count("realtime", "ok") == 1
    slow = [r.getMessage() for r in caplog.records if r.getMessage().startswith("slow ")]
    assert len(slow) == 2, slow
    assert slow[0].startswith("slow query answer: ") and '"metrics": ["pageviews"]' in slow[0]
    assert slow[1].startswith("slow realtime answer: ") and f"site_id={population.SITE}" in slow[1]


async def test_no_store_is_timed_as_unavailable() -> None:
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    async for api in _serve(lambda: None, registry):
        assert (await api.get("/api/v2/sites"))[0] == 503
    value = registry.get_sample_value("footfall_query_duration_seconds_count",
                                      {"endpoint": "sites", "outcome": "unavailable"})  # fmt: skip
    assert value == 1


SEGMENT = [["is", "visit:channel", ["Organic Search", "Direct"]], ["is_not", "visit:device", ["tablet"]]]


async def _batch(api: Api, body: Any) -> tuple[int, list[dict[str, Any]] | Any]:
    async with api.session.post(api.base + "/api/v2/batch", json=body) as r:
        if r.status != 200:
            return r.status, await r.json()
        assert r.headers["Content-Type"].startswith("application/x-ndjson")
        return r.status, [orjson.loads(line) for line in (await r.read()).splitlines() if line]


async def test_a_batch_answers_each_query_as_query_would(api: Api, store: TestStore) -> None:
    base = {"site_id": population.SITE, "date_range": RANGE, "filters": SEGMENT}
    queries = [
        {**base, "metrics": ["visitors", "visits", "bounce_rate"], "dimensions": ["visit:source"]},
        {**base, "metrics": ["visitors", "requests", "latency_p75"],
         "include": {"comparisons": {"mode": "previous_period"}}},
        {**base, "metrics": ["nope"]},
        {**base, "metrics": ["pageviews", "visitors"], "dimensions": ["event:page"],
         "order_by": [["pageviews", "desc"]]},
        {**base, "metrics": ["visitors", "visit_duration"], "dimensions": ["time:day"]},
        {"site_id": population.SITE, "date_range": RANGE, "metrics": ["visitors"], "dimensions": ["visit:device"]},
    ]  # fmt: skip
    status, lines = await _batch(api, {"queries": queries})
    assert status == 200
    assert [line["index"] for line in lines] == list(range(len(queries)))
    for line, query in zip(lines, queries, strict=True):
        alone = await api.post("/api/v2/query", query)
        assert (line["status"], line["body"]) == alone, query
    assert [line["status"] for line in lines] == [200, 200, 400, 200, 200, 200]
    assert lines[0]["body"]["results"] and lines[1]["body"]["results"][0]["comparison"]
    # the batch's temporary tables are gone with it
    left = store.engine.query("SELECT count() FROM system.tables WHERE is_temporary AND name LIKE '_ff_segment_%'")
    assert left == [(0,)]


async def test_a_batch_computes_each_segment_once(
    api: Api, store: TestStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from collectors.query import segments

    made: list[str] = []
    ensure = segments.SegmentSets.ensure

    def counting(self: segments.SegmentSets, engine: Any, sql: str) -> None:
        before = set(self.made)
        ensure(self, engine, sql)
        made.extend(self.made - before)

    monkeypatch.setattr(segments.SegmentSets, "ensure", counting)
    base = {"site_id": population.SITE, "date_range": RANGE, "filters": SEGMENT}
    queries = [{**base, "metrics": ["visitors", "requests"]},
               {**base, "metrics": ["pageviews"], "dimensions": ["event:page"]},
               {**base, "metrics": ["visitors"], "dimensions": ["visit:country"]},
               {**base, "metrics": ["requests", "latency_p75"], "dimensions": ["visit:utm_campaign"]}]  # fmt: skip
    status, lines = await _batch(api, {"queries": queries})
    assert status == 200 and all(line["status"] == 200 for line in lines), lines
    # one segment in one period: one table, filled once for the four questions (event and
    # visit questions ask it in the same form, with their filter values numbered apart),
    # where each question inline would merge the sessions' first touch again
    assert len(made) == 1, made
    alone = [await api.post("/api/v2/query", q) for q in queries]
    assert [(line["status"], line["body"]) for line in lines] == alone


@pytest.mark.parametrize(
    ("body", "status"),
    [(b"{not json", 400), ({"queries": "x"}, 400), ({"queries": []}, 400), ({"queries": [{}] * 41}, 400), ([1], 400)],
)
async def test_a_bad_batch_is_a_400_naming_queries(api: Api, body: Any, status: int) -> None:
    if isinstance(body, bytes):
        async with api.session.post(api.base + "/api/v2/batch", data=body) as r:
            got, answer = r.status, await r.json()
    else:
        got, answer = await _batch(api, body)
    assert got == status
    assert answer["error"].startswith("queries: must be") or answer["error"].startswith("query: not valid JSON")


async def test_a_batch_without_a_store_is_503() -> None:
    async for api in _serve(lambda: None):
        status, answer = await _batch(api, {"queries": [{"site_id": "x", "metrics": ["visitors"]}]})
        assert status == 503 and "not open" in answer["error"]
