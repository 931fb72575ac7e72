"""The query API's aiohttp handlers, mounted on the admin app by :func:`add_routes`.

- ``POST /api/v2/query`` — Plausible-style Stats API v2 subset (README "Query API");
- ``POST /api/v2/batch`` — several queries at once, answered as NDJSON lines, each
  segment computed once for the batch (:mod:`collectors.query.segments`);
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

import dataclasses
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol, TypeVar

import orjson
from aiohttp import web
from prometheus_client import CollectorRegistry, Histogram

from collectors.analytics.engine import Engine
from collectors.query import run, segments
from collectors.query.compile import Context
from collectors.query.goals import Goals
from collectors.query.parse import QueryError, parse
from collectors.settings import CollectorSettings

log = logging.getLogger(__name__)
T = TypeVar("T")
SLOW_QUERY_SECONDS = 2.0  # an answer slower than this is logged with its question (WARNING)
_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
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


NO_STORE = "the analytics store is not open in this process"
MAX_BATCH = 40  # queries per batch request


async def _settle(fn: Callable[[StoreLike], Any], store: StoreLike) -> tuple[int, Any]:
    """``fn(store)``'s answer and its status: 200, a bad query's 400, the store's memory
    cap's 503, or a logged failure's 500 (no details to the client)."""
    try:
        return 200, await fn(store)
    except QueryError as exc:
        return 400, {"error": str(exc)}
    except Exception as exc:
        if "MEMORY_LIMIT_EXCEEDED" in str(exc):  # the store's documented cap, not a bug
            log.warning("query over the store's memory cap: %s", str(exc).splitlines()[0][:200])
            return 503, {"error": "the query needs more memory than the store's cap allows; narrow it"}
        log.exception("query failed")
        return 500, {"error": "query failed; see the server log"}


def _echo(body: dict[str, Any]) -> dict[str, Any]:
    """The parts of a question the answer's ``query`` repeats as they were asked."""
    return {k: body[k] for k in ("filters", "order_by", "include") if k in body}


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

    def timed(self, endpoint: str, handler: Handler, log_slow: bool = True) -> Handler:
        """``handler``, timed into :attr:`duration`; a slow answer is logged with its question
        (a batch logs its slow questions itself, one by one)."""

        async def answer(request: web.Request) -> web.StreamResponse:
            t0 = time.perf_counter()
            response = await handler(request)
            elapsed = time.perf_counter() - t0
            asked = b""
            if log_slow and elapsed >= SLOW_QUERY_SECONDS:  # the body was read before: cached
                asked = (await request.read() if request.body_exists else b"") or request.query_string.encode()
            self._observe(endpoint, response.status, elapsed, asked)
            return response

        return answer

    def _observe(self, endpoint: str, status: int, elapsed: float, asked: bytes = b"") -> None:
        """One answer into :attr:`duration`; with ``asked`` (the question), a slow one is logged."""
        self.duration.labels(endpoint, _outcome(status)).observe(elapsed)
        if asked and elapsed >= SLOW_QUERY_SECONDS:
            log.warning("slow %s answer: %.2f s (status %d) for %s", endpoint, elapsed, status,
                        asked.decode(errors="replace")[:1000])  # fmt: skip

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
            return _error(NO_STORE, 503)
        status, body = await _settle(fn, store)
        return _json(body, status)

    async def query(self, request: web.Request) -> web.Response:
        try:
            body = await self._body(request)
            query = parse(body, self.settings)
        except QueryError as exc:
            return _error(str(exc))
        echo = _echo(body)
        return await self._answer(
            lambda store: store.run(run.execute, store.engine, query, self.context(query.site, store), echo)
        )

    async def batch(self, request: web.Request) -> web.StreamResponse:
        """Several queries in one request, answered one by one as NDJSON lines
        (``{"index", "status", "body"}``, in order, each as ``/query`` would answer it),
        with each segment computed once for the batch (collectors/query/segments.py)."""
        try:
            body = await self._body(request)
            queries = body.get("queries") if isinstance(body, dict) else None
            if not isinstance(queries, list) or not 1 <= len(queries) <= MAX_BATCH:
                raise QueryError("queries", f"must be a list of 1 to {MAX_BATCH} queries")
        except QueryError as exc:
            return _error(str(exc))
        store = self.store()
        if store is None:
            return _error(NO_STORE, 503)
        sets = segments.SegmentSets() if segments.supported(store.engine) else None
        engine = store.engine if sets is None else segments.SegmentEngine(store.engine, sets)
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson", "Cache-Control": "no-store"})
        await response.prepare(request)
        try:
            for i, item in enumerate(queries):
                t0 = time.perf_counter()
                status, answer = await self._one(store, engine, sets, item)
                self._observe("query", status, time.perf_counter() - t0, orjson.dumps(item))  # each, as /query
                await response.write(orjson.dumps({"index": i, "status": status, "body": answer}) + b"\n")
        finally:
            if sets is not None:
                await store.run(sets.drop, store.engine)
        await response.write_eof()
        return response

    async def _one(self, store: StoreLike, engine: Engine, sets: Any, body: Any) -> tuple[int, Any]:
        try:
            query = parse(body, self.settings)
        except QueryError as exc:
            return 400, {"error": str(exc)}
        echo = _echo(body)
        ctx = dataclasses.replace(self.context(query.site, store), segments=sets)
        return await _settle(lambda s: s.run(run.execute, engine, query, ctx, echo), store)

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
) -> QueryApi:  # fmt: skip
    """Mount the ``/api/v2/*`` handlers; ``hosts``: upstream hosts to list in ``/sites``;
    ``registry``: where the answers' timing goes (the process's ``/metrics``)."""
    api = QueryApi(store, settings, hosts, registry)
    app.router.add_post("/api/v2/query", api.timed("query", api.query))
    app.router.add_post("/api/v2/batch", api.timed("batch", api.batch, log_slow=False))
    app.router.add_post("/api/v2/funnel", api.timed("funnel", api.funnel))
    app.router.add_get("/api/v2/realtime", api.timed("realtime", api.realtime))
    app.router.add_get("/api/v2/sites", api.timed("sites", api.sites))
    return api
