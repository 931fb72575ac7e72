"""The dashboard's routes on a real admin app and socket: the page, its assets, the
bootstrap document, ``/`` → ``/dashboard``; and the site list it is built from."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from collectors import dashboard
from collectors.dashboard import SiteInfo, site_list
from collectors.settings import parse
from proxy.admin import admin_app, start_admin
from proxy.stream.embedded import free_port

SETTINGS = {
    "goals": [{"name": "buy", "method": "POST", "path": "/checkout", "status": "2xx"}, {"name": "faq", "path": "/faq"}],
    "funnels": [{"name": "checkout", "steps": ["/cart", "/thank-you"]}],
    "sites": [{"host": "shop.example", "timezone": "Europe/Berlin"}],
}


@pytest.mark.parametrize(
    ("configured", "discovered", "expected"),
    [
        ([], [], []),
        ([SiteInfo("b.example", "Asia/Tokyo")], ["a.example", "b.example"],
         [SiteInfo("b.example", "Asia/Tokyo"), SiteInfo("a.example")]),
        ([SiteInfo("z.example")], ["c.example", "a.example", "c.example"],
         [SiteInfo("z.example"), SiteInfo("a.example"), SiteInfo("c.example")]),
    ],
)  # fmt: skip
def test_site_list_puts_configured_sites_first(
    configured: list[SiteInfo], discovered: Iterable[str], expected: list[SiteInfo]
) -> None:
    assert site_list(configured, discovered) == expected


@pytest.fixture
async def admin() -> AsyncIterator[str]:
    errors: list[str] = []
    settings = parse(SETTINGS, errors)
    assert errors == []
    app = admin_app([CollectorRegistry()], lambda: True)

    async def found() -> list[str]:
        return ["seen.example", "shop.example"]

    dashboard.add_routes(app, settings, [SiteInfo("upstream.example")], discover=found)
    port = free_port()
    runner = await start_admin(app, "127.0.0.1", port)
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_page_assets_and_bootstrap(admin: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{admin}/", allow_redirects=False) as resp:
            assert resp.status == 302 and resp.headers["Location"] == "/dashboard"
        async with http.get(f"{admin}/dashboard") as resp:
            page = await resp.text()
            assert resp.status == 200 and resp.headers["Cache-Control"] == "no-cache"
            assert '<script type="module" src="/dashboard/static/app.js">' in page
            assert "//cdn" not in page and "https://" not in page  # nothing from elsewhere
        for asset in ("app.js", "panels.js", "format.js", "chart.js", "api.js", "dashboard.css",
                      "vendor/uplot/uPlot.iife.min.js", "vendor/uplot/LICENSE"):  # fmt: skip
            async with http.get(f"{admin}/dashboard/static/{asset}") as resp:
                assert resp.status == 200, asset
                assert resp.headers["Cache-Control"] == "public, max-age=300"
        async with http.get(f"{admin}/dashboard/static/../__init__.py") as resp:
            assert resp.status in (403, 404)
        async with http.get(f"{admin}/dashboard/config.json") as resp:
            doc = await resp.json()
    assert doc["sites"] == [
        {"host": "shop.example", "timezone": "Europe/Berlin"},
        {"host": "upstream.example", "timezone": "UTC"},
        {"host": "seen.example", "timezone": "UTC"},
    ]
    assert doc["goals"] == [{"name": "buy", "path": "/checkout", "method": "POST"},
                            {"name": "faq", "path": "/faq", "method": None}]  # fmt: skip
    assert doc["funnels"] == [{"name": "checkout", "steps": ["/cart", "/thank-you"]}]


async def test_root_is_left_alone_when_taken() -> None:
    app = web.Application()

    async def mine(_: web.Request) -> web.Response:
        return web.Response(text="mine")

    app.router.add_get("/", mine)
    dashboard.add_routes(app, parse({}, []))
    port = free_port()
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/") as resp:
            assert await resp.text() == "mine"
    finally:
        await runner.cleanup()
