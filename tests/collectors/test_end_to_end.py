"""Issue #4's acceptance test: a known population through the real proxy, the real
collectors on the real stream, and the exact numbers out of the store and Prometheus.

Everything is real and on loopback: a small shop (aiohttp) as upstream, the proxy
(``proxy_factory``) publishing to a real Redis, a CollectorService (analytics
loader and performance) consuming that stream while the traffic flows, the real
chDB store and its export API served over HTTP. Expected numbers come from
:mod:`tests.collectors.e2e_population`, derived from the population definition.
(Metric-level exactness of the query API: tests/collectors/query/.)
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from yarl import URL

from collectors.service import CollectorService
from collectors.settings import parse
from proxy.edge.server import ProxyWorker
from proxy.tracking.identity import CookieIdentity
from tests.collectors.conftest import drained
from tests.collectors.e2e_population import (
    API_JSON,
    CSS,
    ERROR_PAGES,
    FUNNELS,
    GOALS,
    POPULATION,
    SITE,
    Kind,
    Model,
    Visitor,
    events,
    page_html,
)  # fmt: skip

THINK = 0.25  # seconds a visitor reads a page before the next click
HLL_ERROR = 0.0081  # Redis HyperLogLog's standard error (README.md "Collectors": ≈0.8 %)
NAV = {"Sec-Fetch-Dest": "document", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-User": "?1",
       "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}  # fmt: skip
FETCH = {
    Kind.ASSET: {"Sec-Fetch-Dest": "style", "Sec-Fetch-Mode": "no-cors", "Accept": "text/css,*/*;q=0.1"},
    Kind.API: {"Sec-Fetch-Dest": "empty", "Sec-Fetch-Mode": "cors", "Accept": "application/json"},
}


def shop() -> web.Application:
    """The upstream: pages, a stylesheet, a JSON API, a checkout form answered 303, a page that fails."""

    async def page(request: web.Request) -> web.Response:
        status = 500 if request.path in ERROR_PAGES else 200
        return web.Response(body=page_html(request.path), status=status, content_type="text/html")

    async def stylesheet(_: web.Request) -> web.Response:
        return web.Response(body=CSS, content_type="text/css")

    async def cart(_: web.Request) -> web.Response:
        return web.Response(body=API_JSON, content_type="application/json")

    async def checkout(request: web.Request) -> web.Response:
        assert (await request.post())["cart"] == "2"
        return web.Response(status=303, headers={"Location": "/thank-you"})

    app = web.Application()
    app.router.add_get("/static/app.css", stylesheet)
    app.router.add_get("/api/cart", cart)
    app.router.add_post("/checkout", checkout)
    app.router.add_get("/{tail:.*}", page)
    return app


def request_headers(v: Visitor, kind: Kind, referer: str | None) -> dict[str, str]:
    # Host is the shop's name: the proxy's catch-all upstream serves it, events carry it.
    headers = {"Host": SITE, "User-Agent": v.agent.user_agent}
    if v.agent.bot:  # crawlers send neither fetch metadata nor Referer
        headers["Accept"] = "text/html" if kind is Kind.PAGE else "*/*"
        return headers
    headers.update(NAV if kind in (Kind.PAGE, Kind.SUBMIT) else FETCH[kind])
    if referer:
        headers["Referer"] = referer
        headers["Sec-Fetch-Site"] = "same-origin" if referer.startswith(f"http://{SITE}") else "cross-site"
    elif kind is Kind.PAGE:
        headers["Sec-Fetch-Site"] = "none"
    if v.gpc:
        headers["Sec-GPC"] = "1"
    return headers


def go_idle(client: aiohttp.ClientSession, base: str, proxy: ProxyWorker) -> str:
    """Make the browser's session cookie 31 minutes stale; return the session id it held.

    Session time travel: instead of sleeping 31 minutes, re-sign the cookie the browser
    holds with its last pageview moved 31 minutes into the past (the proxy's own
    signing code and secret). A browser that kept the cookie that long (a restored tab)
    sends exactly this; the proxy must check the timestamps and start a new session.
    The collectors see the two sessions seconds apart in event time, which changes
    nothing they count here (sessions are keyed by id, not by time).
    """
    cookies = {m.key: m.value for m in client.cookie_jar}
    visitor, sid = cookies["ff_vid"], cookies["ff_sid"].partition(".")[0]
    identity = proxy.settings.identity
    now = int(time.time())
    last = now - identity.session_idle_seconds - 60
    stale = CookieIdentity(identity).session_value(visitor, sid, last - 300, last)
    client.cookie_jar.update_cookies({identity.session_cookie: stale}, URL(base))
    return sid


async def visit(base: str, v: Visitor, proxy: ProxyWorker) -> list[float]:
    """One browser (its own cookie jar) going through ``v``'s sessions, reading each page
    for :data:`THINK` seconds before the next click; returns each session's wall-clock
    span (first request sent → last response read), in seconds."""
    spans, sids = [], []
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
        for i, hits in enumerate(v.sessions):
            if i:
                sids.append(go_idle(client, base, proxy))
            t0 = time.time()
            for j, hit in enumerate(hits):
                if j and hit.kind is Kind.PAGE:
                    await asyncio.sleep(THINK)
                async with client.request(
                    hit.method, base + hit.url, headers=request_headers(v, hit.kind, hit.referer),
                    data={"cart": "2"} if hit.kind is Kind.SUBMIT else None, allow_redirects=False,
                ) as resp:  # fmt: skip
                    assert (resp.status, await resp.read()) == (hit.status, hit.body), (v.name, hit)
                    if hit.kind is Kind.SUBMIT:
                        assert resp.headers["Location"] == "/thank-you"
            spans.append(time.time() - t0)
        if len(v.sessions) > 1:
            sids.append({m.key: m.value for m in client.cookie_jar}["ff_sid"].partition(".")[0])
            assert len(set(sids)) == len(v.sessions), f"{v.name}: the proxy kept a stale session"
    return spans


def assert_unique(got: int, expected: int, what: object = None) -> None:
    """A HyperLogLog estimate: within 3 standard errors. At these sizes (≤ 6) that rounds
    to exact; the estimate could only be off if two ids shared one of the 16,384
    registers (p ≈ 0.1 %), and then by one."""
    assert abs(got - expected) <= 3 * HLL_ERROR * expected, (what, got, expected)


async def until_stream_holds(redis: Any, key: str, n: int, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while await redis.xlen(key) < n:
        assert asyncio.get_running_loop().time() < deadline, f"{await redis.xlen(key)} of {n} events published"
        await asyncio.sleep(0.02)


@dataclass
class Run:
    """The population, driven and consumed: the API's base URL and what to expect."""

    service: CollectorService
    http: aiohttp.ClientSession
    api: str
    window: dict[str, str]
    model: Model
    spans: list[list[float]]  # per visitor of POPULATION, per session: wall-clock seconds

    async def export(self) -> list[dict[str, Any]]:
        async with self.http.get(f"{self.api}/api/v2/export", params={**self.window, "format": "jsonl"}) as resp:
            assert resp.status == 200, await resp.text()
            return [orjson.loads(line) for line in (await resp.read()).splitlines()]


@pytest.fixture
async def run(upstream_factory, proxy_factory, redis_server, redis_client, store) -> AsyncIterator[Run]:
    """Shop, proxy and collectors up; the whole population driven through the proxy and
    consumed by both groups (consuming while the traffic flows)."""
    upstream = await upstream_factory(shop())
    proxy = await proxy_factory({
        "upstreams": [upstream], "routes": ["/products/{id}"],
        "identity.cookie_secret": "e2e-test-secret-0123456789abcdef",
        # small batches: sessions, goals and funnels span batches, as they do live;
        # an Apdex threshold no loopback request reaches, so only errors frustrate
        "collectors": {"goals": GOALS, "funnels": FUNNELS, "batch_size": 4, "block_ms": 50,
                       "apdex_threshold_ms": 10_000},
    }, redis_url=redis_server.url)  # fmt: skip
    errors: list[str] = []
    settings = parse(proxy.settings.collectors, errors)  # as `footfall run` does
    assert errors == []
    stream = proxy.settings.redis.stream_key
    service = CollectorService(redis_server.url, stream, settings, frozenset({"analytics", "performance"}), "e2e",
                               store=store)  # fmt: skip
    await service.start()
    try:
        app = web.Application()
        service.add_routes(app)
        api = await upstream_factory(app)
        started = time.time()
        base = f"http://127.0.0.1:{proxy.port}"
        spans = await asyncio.gather(*(visit(base, v, proxy) for v in POPULATION))
        model = Model(events())
        await until_stream_holds(redis_client, stream, len(model.evs))
        await drained(redis_client, ("analytics", "performance"))
        assert await redis_client.xlen(stream) == len(model.evs)  # one event per request, no more
        day = datetime.fromtimestamp(started - 60, UTC).date().isoformat()
        window = {"site": SITE, "from": day, "to": datetime.fromtimestamp(time.time() + 60, UTC).date().isoformat()}
        async with aiohttp.ClientSession() as http:
            yield Run(service, http, api, window, model, spans)
    finally:
        await service.stop()


async def test_the_store_holds_every_event_once(run: Run) -> None:
    """Every request is one stored event (bots and opted-out visitors included): the
    same series the performance group counts, from the export of the store."""
    model = run.model
    stored = await run.export()
    assert len(stored) == len({e["id"] for e in stored}) == len(model.evs)
    got = Counter((e["method"], e["status"], e["kind"], e["bot"]) for e in stored)
    want = Counter((e.hit.method, e.hit.status, "pageview" if e.pageview else "request", e.agent.bot)
                   for e in model.evs)  # fmt: skip
    assert got == want
    assert len({e["visitor"] for e in stored if e["kind"] == "pageview" and not e["bot"] and e["visitor"]}) == (
        model.visitors()
    )
    assert sum(1 for e in stored if e["consent"] == "denied") == sum(1 for e in model.evs if e.who is None
                                                                     and not e.agent.bot)  # fmt: skip


async def test_prometheus_holds_every_request(run: Run) -> None:
    """The performance group counts every event, bots and opted-out visitors included:
    IT pays for their requests too."""
    model = run.model
    text = generate_latest(run.service.registry).decode()
    metrics = {f.name: f for f in text_string_to_metric_families(text)}

    def series(name: str, suffix: str, *labels: str) -> dict[tuple[str, ...], float]:
        return {tuple(s.labels[k] for k in labels): s.value
                for s in metrics[name].samples if s.name == name + suffix}  # fmt: skip

    hl = ("site", "route", "method", "status_class", "kind")
    want_counts = {k: float(n) for k, n in model.request_counts().items()}
    for histogram in ("footfall_site_request_duration_seconds", "footfall_site_upstream_duration_seconds"):
        assert series(histogram, "_count", *hl) == want_counts, histogram
        inf = {tuple(s.labels[k] for k in hl): s.value for s in metrics[histogram].samples
               if s.name == histogram + "_bucket" and s.labels["le"] == "+Inf"}  # fmt: skip
        assert inf == want_counts, histogram
        assert all(v > 0 for v in series(histogram, "_sum", *hl).values()), histogram
    assert series("footfall_site_response_bytes", "_total", "site", "kind") == model.response_bytes()
    n_errors = float(sum(e.error for e in model.evs))
    assert series("footfall_site_errors", "_total", "site", "error") == {(SITE, "http_5xx"): n_errors}
    assert series("footfall_site_apdex", "", "site", "route") == model.apdex()
    n = float(len(model.evs))
    assert series("footfall_collector_events_processed", "_total", "group") == {
        ("analytics",): n, ("performance",): n,
    }  # fmt: skip
    assert sum(series("footfall_collector_events_dead_lettered", "_total", "group", "reason").values()) == 0
