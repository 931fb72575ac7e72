"""The query API's aiohttp handlers, mounted on the admin app by :func:`add_routes`.

- ``POST /api/v2/query`` — Plausible-style Stats API v2 subset (README "Query API");
- ``POST /api/v2/funnel`` — a configured funnel's steps: visitors, drop-off, conversion;
- ``GET /api/v2/realtime?site_id=`` — visitors and pageviews in the last 5 minutes;
- ``GET /api/v2/sites`` — configured and recently seen sites with their time zones.

The store comes from a getter, so the handlers work however the process opens it
(``None`` until it is open: 503). Engine calls run in the store's worker thread via
``store.run``, never on the event loop. A bad query is a 400 whose ``error`` names
the field; anything else that fails is logged and answered 500 without details.

Every answer is timed in ``footfall_query_duration_seconds`` (labels ``endpoint``:
query, funnel, realtime, sites; ``outcome``: ok, bad_request, unavailable, error),
and one slower than :data:`SLOW_QUERY_SECONDS` is logged with its question, so an
SRE sees which panel or script asks the store for too much.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol, TypeVar

import orjson
from aiohttp import web
from prometheus_client import CollectorRegistry, Histogram

from collectors.analytics.engine import Engine
from collectors.query import run
from collectors.query.compile import Context
from collectors.query.goals import Goals
from collectors.query.parse import QueryError, parse
from collectors.settings import CollectorSettings

log = logging.getLogger(__name__)
T = TypeVar("T")
SLOW_QUERY_SECONDS = 2.0  # an answer slower than this is logged with its question (WARNING)
_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
Handler = Callable[[web.Request], Awaitable[web.Response]]
_DURATIONS: weakref.WeakKeyDictionary[CollectorRegistry, Histogram] = weakref.WeakKeyDictionary()


def _duration(registry: CollectorRegistry) -> Histogram:
    """The registry's query histogram, made once (a service may mount the API on two apps)."""
    histogram = _DURATIONS.get(registry)
    if histogram is None:
        histogram = _DURATIONS[registry] = Histogram(
            "footfall_query_duration_seconds", "Time to answer one query API request, by endpoint and outcome.",
            ["endpoint", "outcome"], buckets=_BUCKETS, registry=registry,
        )  # fmt: skip
    return histogram


def _outcome(status: int) -> str:
    if status < 400:
        return "ok"
    if status == 503:
        return "unavailable"  # no store in this process, or over the store's memory cap
    return "bad_request" if status < 500 else "error"


class StoreLike(Protocol):
    """What the handlers need of the process's store (``collectors.analytics.store.Store``)."""

    engine: Engine
    db: str
    has_sessions: bool  # the ``sessions`` table exists (a single store; not yet on a cluster)

    async def run(self, fn: Callable[..., T], *args: Any) -> T: ...


StoreGetter = Callable[[], StoreLike | None]


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _error(message: str, status: int = 400) -> web.Response:
    return _json({"error": message}, status)


class QueryApi:
    def __init__(
        self, store: StoreGetter, settings: CollectorSettings, hosts: Iterable[str] = (),
        registry: CollectorRegistry | None = None,
    ) -> None:  # fmt: skip
        self.store = store
        self.settings = settings
        self.goals = Goals(settings.goals)
        self.hosts = tuple(hosts)
        self.duration = _duration(CollectorRegistry() if registry is None else registry)

    def timed(self, endpoint: str, handler: Handler) -> Handler:
        """``handler``, timed into :attr:`duration`; a slow answer is logged with its question."""
        histogram = self.duration

        async def answer(request: web.Request) -> web.Response:
            t0 = time.perf_counter()
            response = await handler(request)
            elapsed = time.perf_counter() - t0
            histogram.labels(endpoint, _outcome(response.status)).observe(elapsed)
            if elapsed >= SLOW_QUERY_SECONDS:
                body = await request.read() if request.body_exists else b""  # read before: cached
                asked = body.decode(errors="replace") or request.query_string
                log.warning("slow %s answer: %.2f s (status %d) for %s", endpoint, elapsed, response.status,
                            asked[:1000])  # fmt: skip
            return response

        return answer

    def context(self, site: str, store: StoreLike) -> Context:
        apdex = self.settings.site(site).apdex_threshold_ms or self.settings.apdex_threshold_ms
        return Context(store.db, self.goals, self.settings.bot_score_threshold, apdex, store.has_sessions)

    async def _body(self, request: web.Request) -> Any:
        try:
            return orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            raise QueryError("query", "not valid JSON") from None

    async def _answer(self, fn: Callable[[StoreLike], Any]) -> web.Response:
        store = self.store()
        if store is None:
            return _error("the analytics store is not open in this process", 503)
        try:
            return _json(await fn(store))
        except QueryError as exc:
            return _error(str(exc))
        except Exception as exc:
            if "MEMORY_LIMIT_EXCEEDED" in str(exc):  # the store's documented cap, not a bug
                log.warning("query over the store's memory cap: %s", str(exc).splitlines()[0][:200])
                return _error("the query needs more memory than the store's cap allows; narrow it", 503)
            log.exception("query failed")
            return _error("query failed; see the server log", 500)

    async def query(self, request: web.Request) -> web.Response:
        try:
            body = await self._body(request)
            query = parse(body, self.settings)
        except QueryError as exc:
            return _error(str(exc))
        echo = {k: body[k] for k in ("filters", "order_by", "include") if k in body}
        return await self._answer(
            lambda store: store.run(run.execute, store.engine, query, self.context(query.site, store), echo)
        )

    async def funnel(self, request: web.Request) -> web.Response:
        try:
            body = await self._body(request)
            if not isinstance(body, dict):
                raise QueryError("query", "must be a JSON object")
            name = body.get("funnel")
            definition = next((f for f in self.settings.funnels if f.name == name), None)
            if definition is None:
                known = ", ".join(f.name for f in self.settings.funnels) or "none configured"
                raise QueryError("funnel", f"unknown funnel {name!r}; known: {known}")
            rest = {k: v for k, v in body.items() if k != "funnel"}
            query = parse({**rest, "metrics": ["visitors"]}, self.settings)
        except QueryError as exc:
            return _error(str(exc))
        return await self._answer(
            lambda store: store.run(run.funnel, store.engine, query, self.context(query.site, store), definition)
        )

    async def realtime(self, request: web.Request) -> web.Response:
        body = {"site_id": request.query.get("site_id", ""), "metrics": ["visitors", "pageviews"]}
        try:
            query = parse({**body, "date_range": "realtime"}, self.settings)
        except QueryError as exc:
            return _error(str(exc))

        async def answer(store: StoreLike) -> dict[str, Any]:
            out = await store.run(run.execute, store.engine, query, self.context(query.site, store))
            visitors, pageviews = out["results"][0]["metrics"]
            return {"site_id": query.site, "visitors": visitors, "pageviews": pageviews, "seconds": 300}

        return await self._answer(answer)

    async def sites(self, request: web.Request) -> web.Response:
        async def answer(store: StoreLike) -> dict[str, Any]:
            seen = await store.run(run.sites_in_store, store.engine, store.db)
            hosts = dict.fromkeys([*(s.host for s in self.settings.sites), *self.hosts, *seen])
            return {"sites": [self._site(h) for h in hosts]}

        return await self._answer(answer)

    def _site(self, host: str) -> dict[str, Any]:
        site = self.settings.site(host)
        apdex = site.apdex_threshold_ms or self.settings.apdex_threshold_ms
        return {"site_id": host, "timezone": site.timezone, "apdex_threshold_ms": apdex}


def add_routes(
    app: web.Application, store: StoreGetter, settings: CollectorSettings, hosts: Iterable[str] = (),
    registry: CollectorRegistry | None = None,
) -> QueryApi:
    """Mount the ``/api/v2/*`` handlers; ``hosts``: upstream hosts to list in ``/sites``;
    ``registry``: where the answers' timing goes (the process's ``/metrics``)."""
    api = QueryApi(store, settings, hosts, registry)
    app.router.add_post("/api/v2/query", api.timed("query", api.query))
    app.router.add_post("/api/v2/funnel", api.timed("funnel", api.funnel))
    app.router.add_get("/api/v2/realtime", api.timed("realtime", api.realtime))
    app.router.add_get("/api/v2/sites", api.timed("sites", api.sites))
    return api
