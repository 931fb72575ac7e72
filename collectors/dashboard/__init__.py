"""The dashboard: one static page on the admin listener, reading ``POST /api/v2/batch`` (``/query`` bodies).

- ``static/`` — ``index.html``, ``dashboard.css`` and a few ES modules (``app.js``
  state and orchestration, ``panels.js`` breakdowns, ``chart.js`` uPlot charts,
  ``format.js`` numbers/dates/CSV, ``api.js`` the fetch layer) plus uPlot vendored
  from the npm registry with its licence (``static/vendor/uplot``). No build step.
- :func:`add_routes` — ``/dashboard``, ``/dashboard/static/…``, ``/dashboard/config.json``
  (sites with their time zones, goals and funnels: what the page needs before its
  first query) and ``/`` → ``/dashboard`` when ``/`` is free.

Access control is the admin app's middleware (:mod:`proxy.auth`), not this module's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from collectors.settings import CollectorSettings
from proxy.auth import SHARE_SITE

STATIC = Path(__file__).with_name("static")
# Static assets change with a release, not per request; the page itself is revalidated.
_ASSET_CACHE = "public, max-age=300"


@dataclass(frozen=True, slots=True)
class SiteInfo:
    host: str
    timezone: str = "UTC"


# Sites that have data, from the store (the query API's site list); may be absent.
Discover = Callable[[], Awaitable[Iterable[str]]]


def site_list(configured: Sequence[SiteInfo], discovered: Iterable[str]) -> list[SiteInfo]:
    """Configured sites first (in config order, with their zones), then any other site
    that has data (UTC), sorted; each host once."""
    out = list(configured)
    seen = {s.host for s in out}
    for host in sorted(set(discovered) - seen):
        out.append(SiteInfo(host))
    return out


def config_document(sites: Sequence[SiteInfo], settings: CollectorSettings) -> dict[str, object]:
    return {
        "sites": [{"host": s.host, "timezone": s.timezone} for s in sites],
        "goals": [{"name": g.name, "path": g.path, "method": g.method} for g in settings.goals],
        "funnels": [{"name": f.name, "steps": list(f.steps)} for f in settings.funnels],
    }


def add_routes(
    app: web.Application,
    settings: CollectorSettings,
    sites: Sequence[SiteInfo] = (),
    discover: Discover | None = None,
) -> None:
    async def page(_: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    configured = [SiteInfo(s.host, s.timezone) for s in settings.sites]
    configured += [SiteInfo(s.host, settings.site(s.host).timezone) for s in sites]

    async def config(request: web.Request) -> web.Response:
        shared = request.get(SHARE_SITE)  # a share link's visitor sees that one site
        found: Iterable[str] = await discover() if discover is not None and shared is None else ()
        listed = site_list(list({s.host: s for s in configured}.values()), found)
        if shared is not None:
            listed = [next((s for s in listed if s.host == shared), SiteInfo(shared))]
        doc = config_document(listed, settings)
        doc["shared"] = shared is not None
        return web.json_response(doc, headers={"Cache-Control": "no-store"})

    async def root(_: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/dashboard")

    async def assets_cache(request: web.Request, response: web.StreamResponse) -> None:
        if request.path.startswith("/dashboard/static/"):
            response.headers.setdefault("Cache-Control", _ASSET_CACHE)

    app.router.add_get("/dashboard", page)
    app.router.add_get("/dashboard/", page)
    app.router.add_get("/dashboard/config.json", config)
    app.router.add_static("/dashboard/static/", STATIC, append_version=False)
    app.on_response_prepare.append(assets_cache)
    if not any(r.canonical == "/" for r in app.router.resources()):
        app.router.add_get("/", root)
