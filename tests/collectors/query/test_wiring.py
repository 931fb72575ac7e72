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
    # the answer is timed in the service's registry: the one its /metrics serves
    value = service.registry.get_sample_value(
        "footfall_query_duration_seconds_count", {"endpoint": "query", "outcome": "bad_request"}
    )
    assert value == 1


async def test_the_api_mounted_twice_counts_into_one_histogram(start_service: ServiceFactory) -> None:
    """A service may mount its routes on more than one admin app: one histogram, no
    duplicate-timeseries error from the registry."""
    service = await start_service(frozenset({"performance"}))
    runners = []
    try:
        for _ in range(2):
            app = web.Application()
            service.add_routes(app)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            port = free_port()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            runners.append(runner)
            async with aiohttp.ClientSession() as session:
                body = {"site_id": "shop.example", "metrics": ["nope"], "date_range": "7d"}
                async with session.post(f"http://127.0.0.1:{port}/api/v2/query", json=body) as r:
                    assert r.status == 400
    finally:
        for runner in runners:
            await runner.cleanup()
    value = service.registry.get_sample_value(
        "footfall_query_duration_seconds_count", {"endpoint": "query", "outcome": "bad_request"}
    )
    assert value == 2
