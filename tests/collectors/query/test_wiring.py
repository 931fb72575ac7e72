"""The collector service mounts /api/v2/* on its admin app (``footfall run`` and ``collect``)."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from proxy.stream.embedded import free_port
from tests.collectors.conftest import ServiceFactory


async def test_service_mounts_the_query_api(start_service: ServiceFactory) -> None:
    service = await start_service(frozenset({"performance"}))
    app = web.Application()
    service.add_routes(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with aiohttp.ClientSession() as session:
            body = {"site_id": "shop.example", "metrics": ["nope"], "date_range": "7d"}
            async with session.post(f"http://127.0.0.1:{port}/api/v2/query", json=body) as r:
                assert r.status == 400
                assert (await r.json())["error"].startswith("metrics[0]: unknown metric")
    finally:
        await runner.cleanup()
