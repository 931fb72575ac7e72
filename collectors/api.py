"""Query API (JSON over HTTP) and the small HTML dashboard.

Routes (all GET; ``site`` required; ``from``/``to`` ISO 8601 or Unix seconds,
default the last 24 hours; a bad parameter → 400 ``{"error": "<param>: <why>"}``):

- ``/api/v1/stats``             totals, rates and ``current_visitors``
- ``/api/v1/timeseries``        ``interval=minute|hour|day`` ``metric=`` (default all)
- ``/api/v1/breakdown``         ``dimension=`` one of :data:`DIMENSIONS`, ``limit=``
- ``/api/v1/goals``             configured goals with attribution by channel and campaign
- ``/api/v1/funnel``            ``funnel=NAME`` or ``steps=/a,/b`` of a configured funnel
- ``/api/v1/pages/performance`` ``dimension=page|utm_campaign``, ``limit=``
- ``/dashboard``                static HTML calling the API
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from collectors.analytics.query import Query

DIMENSIONS = (
    "page", "entry_page", "exit_page", "referrer_source", "referrer_medium", "channel",
    "utm_source", "utm_medium", "utm_campaign", "browser", "os", "device", "country",
)  # fmt: skip
INTERVALS = {"minute": "m", "hour": "h", "day": "d"}
METRICS = ("pageviews", "visitors", "sessions", "bounce_rate", "views_per_session",
           "avg_session_seconds", "requests", "errors", "bot_hits")  # fmt: skip
MAX_POINTS = 1500
QUERY_KEY = web.AppKey("footfall_query", Query)
_DASHBOARD = Path(__file__).with_name("dashboard.html")


class BadParam(ValueError):
    """A query parameter is invalid; the message starts with its name."""


def parse_time(name: str, value: str) -> int:
    """Unix seconds (int or float) or ISO 8601 (naive means UTC) → Unix seconds."""
    try:
        return int(float(value))
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadParam(f"{name}: not ISO 8601 or Unix seconds: {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp())


def parse_range(q: dict[str, str], now: float | None = None) -> tuple[int, int]:
    end = parse_time("to", q["to"]) if "to" in q else int(time.time() if now is None else now)
    start = parse_time("from", q["from"]) if "from" in q else end - 86400
    if start >= end:
        raise BadParam("from: must be before to")
    return start, end


def parse_limit(q: dict[str, str], default: int = 10) -> int:
    raw = q.get("limit", str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise BadParam(f"limit: must be an integer from 1 to 1000, not {raw!r}")
    return int(raw)


def parse_site(q: dict[str, str]) -> str:
    site = q.get("site", "").strip().lower()
    if not site:
        raise BadParam("site: required")
    return site


def choice(q: dict[str, str], name: str, allowed: tuple[str, ...], default: str | None = None) -> str:  # fmt: skip
    value = q.get(name, default)
    if value not in allowed:
        raise BadParam(f"{name}: must be one of {', '.join(allowed)}, not {value!r}")
    return value


def _query(request: web.Request) -> tuple[Query, dict[str, str], str, int, int]:
    q = dict(request.query)
    site = parse_site(q)
    start, end = parse_range(q)
    return request.app[QUERY_KEY], q, site, start, end


def _handler(fn: Any) -> Any:
    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            body = await fn(request)
        except BadParam as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(body)

    handle.__name__ = fn.__name__
    return handle


@_handler
async def stats(request: web.Request) -> dict[str, Any]:
    query, _, site, start, end = _query(request)
    out = await query.stats(site, start, end)
    out["current_visitors"] = await query.current_visitors(site)
    return {"site": site, "from": start, "to": end, **out}


@_handler
async def timeseries(request: web.Request) -> dict[str, Any]:
    query, q, site, start, end = _query(request)
    interval = choice(q, "interval", tuple(INTERVALS), "hour")
    metric = q.get("metric")
    if metric is not None and metric not in METRICS:
        raise BadParam(f"metric: must be one of {', '.join(METRICS)}, not {metric!r}")
    res = INTERVALS[interval]
    step = {"m": 60, "h": 3600, "d": 86400}[res]
    if (end - start) // step > MAX_POINTS:
        raise BadParam(f"interval: more than {MAX_POINTS} points; use a coarser interval")
    points = await query.timeseries(site, start, end, res)
    if metric is not None:
        points = [{"time": p["time"], metric: p[metric]} for p in points]
    return {"site": site, "interval": interval, "results": points}


@_handler
async def breakdown(request: web.Request) -> dict[str, Any]:
    query, q, site, start, end = _query(request)
    dim = choice(q, "dimension", DIMENSIONS)
    results = await query.breakdown(site, start, end, dim, parse_limit(q))
    return {"site": site, "dimension": dim, "results": results}


@_handler
async def goals(request: web.Request) -> dict[str, Any]:
    query, _, site, start, end = _query(request)
    return {"site": site, "results": await query.goals(site, start, end)}


@_handler
async def funnel(request: web.Request) -> dict[str, Any]:
    query, q, site, start, end = _query(request)
    funnels = query.settings.funnels
    if "funnel" in q:
        name = choice(q, "funnel", tuple(f.name for f in funnels))
    elif "steps" in q:
        steps = tuple(s for s in q["steps"].split(",") if s)
        match = [f.name for f in funnels if f.steps == steps]
        if not match:
            raise BadParam("steps: no configured funnel has these steps "
                           "(funnels are configured in [[collectors.funnels]])")  # fmt: skip
        name = match[0]
    else:
        raise BadParam("funnel: required (or steps=)")
    return {"site": site, **await query.funnel(site, start, end, name)}


@_handler
async def pages_performance(request: web.Request) -> dict[str, Any]:
    query, q, site, start, end = _query(request)
    dim = choice(q, "dimension", ("page", "utm_campaign"), "page")
    results = await query.performance(site, start, end, dim, parse_limit(q))
    return {"site": site, "dimension": dim, "results": results}


async def dashboard(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(_DASHBOARD, headers={"Cache-Control": "no-cache"})


def add_routes(app: web.Application, query: Query) -> None:
    app[QUERY_KEY] = query
    app.router.add_get("/api/v1/stats", stats)
    app.router.add_get("/api/v1/timeseries", timeseries)
    app.router.add_get("/api/v1/breakdown", breakdown)
    app.router.add_get("/api/v1/goals", goals)
    app.router.add_get("/api/v1/funnel", funnel)
    app.router.add_get("/api/v1/pages/performance", pages_performance)
    app.router.add_get("/dashboard", dashboard)
