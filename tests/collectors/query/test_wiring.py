"""The collector service mounts /api/v2/* on its admin app (``footfall run`` and ``collect``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web

from proxy.stream.embedded import free_port
from tests.collectors.conftest import ServiceFactory

BAD = {"site_id": "shop.example", "metrics": ["nope"], "date_range": "7d"}


async def _mounted(service: Any) -> AsyncIterator[str]:
    """The service's routes on a fresh app on a free port; yields its base URL."""
    app = web.Application()
    service.add_routes(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def _ask_bad(base: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.post(f"{base}/api/v2/query", json=BAD) as r:
        return r.status, await r.json()


def _bad_requests(service: Any) -> float | None:
    return service.registry.get_sample_value(  # type: ignore[no-any-return]
        "footfall_query_duration_seconds_count", {"endpoint": "query", "outcome": "bad_request"}
    )


async def test_service_mounts_the_query_api(start_service: ServiceFactory) -> None:
    service = await start_service(frozenset({"performance"}))
    async for base in _mounted(service):
        status, body = await _ask_bad(base)
        assert status == 400 and body["error"].startswith("metrics[0]: unknown metric")
    assert _bad_requests(service) == 1  # timed in the service's registry: the one its /metrics serves


async def test_the_api_mounted_twice_counts_into_one_histogram(start_service: ServiceFactory) -> None:
    """A service may mount its routes on more than one admin app: one histogram, no
    duplicate-timeseries error from the registry."""
    service = await start_service(frozenset({"performance"}))
    async for first in _mounted(service):
        async for second in _mounted(service):
            assert (await _ask_bad(first))[0] == 400 and (await _ask_bad(second))[0] == 400
    assert _bad_requests(service) == 2
