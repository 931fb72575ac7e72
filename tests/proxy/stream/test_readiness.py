"""``/readyz`` means "events are safe": not ready when Redis is down and the spool
cannot take events (full, or failing on disk); disk errors have their own drop reason."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from proxy.admin import admin_app, start_admin
from proxy.edge.server import ProxyWorker
from proxy.stream.embedded import EmbeddedRedis
from tests.proxy.stream.test_loss import tiny_site


async def readyz(port: int) -> int:
    async with aiohttp.ClientSession() as client:
        async with client.get(f"http://127.0.0.1:{port}/readyz") as resp:
            return resp.status


def dropped(worker: ProxyWorker, reason: str) -> float:
    value = worker.metrics.registry.get_sample_value("footfall_events_dropped_total", {"reason": reason})
    return value or 0.0


async def traffic_until(port: int, done: Any, limit: int = 400) -> None:
    async with aiohttp.ClientSession() as client:
        for i in range(limit):
            async with client.get(f"http://127.0.0.1:{port}/p?n={i}") as resp:
                assert resp.status == 200  # the site never notices
            if i % 10 == 9:
                await asyncio.sleep(0.05)  # let the flush task spool
                if done():
                    return
    raise AssertionError("condition never reached")


@pytest.fixture
async def admin_of() -> Any:
    runners: list[web.AppRunner] = []

    async def make(worker: ProxyWorker) -> int:
        runner = await start_admin(admin_app([worker.metrics.registry], worker.ready), "127.0.0.1", 0)
        runners.append(runner)
        return int(runner.addresses[0][1])

    yield make
    for runner in runners:
        await runner.cleanup()


async def test_not_ready_when_redis_is_down_and_the_spool_is_full(
    upstream_factory: Any, proxy_factory: Any, redis_server: EmbeddedRedis, admin_of: Any
) -> None:
    upstream = await upstream_factory(tiny_site())
    worker = await proxy_factory(
        {"upstreams": [upstream], "publisher.spool_max_bytes": 4096, "publisher.spool_segment_bytes": 1024},
        redis_url=redis_server.url,
    )
    admin = await admin_of(worker)
    assert await readyz(admin) == 200
    redis_server.kill()
    await traffic_until(worker.port, lambda: dropped(worker, "spool_full") > 0)
    assert await readyz(admin) == 503
    assert dropped(worker, "spool_error") == 0
    redis_server.start()  # back: the spool replays, events are safe again
    for _ in range(200):
        if await readyz(admin) == 200:
            break
        await asyncio.sleep(0.05)
    assert await readyz(admin) == 200


async def test_a_failing_spool_disk_is_spool_error_and_not_ready(
    upstream_factory: Any, proxy_factory: Any, redis_server: EmbeddedRedis, admin_of: Any, tmp_path: Path
) -> None:
    upstream = await upstream_factory(tiny_site())
    worker = await proxy_factory({"upstreams": [upstream]}, redis_url=redis_server.url)
    admin = await admin_of(worker)
    redis_server.kill()
    # Root bypasses permissions: make the spool directory itself go away under
    # the open spool (a disk unmounted, a directory removed by hand).
    spool_dir = tmp_path / "data" / "spool" / "worker-0"
    shutil.rmtree(spool_dir)
    spool_dir.write_text("not a directory any more\n")
    await traffic_until(worker.port, lambda: dropped(worker, "spool_error") > 0)
    assert dropped(worker, "spool_full") == 0
    assert await readyz(admin) == 503


async def test_a_full_spool_found_at_restart_with_redis_down_is_not_ready(
    upstream_factory: Any, proxy_factory: Any, redis_server: EmbeddedRedis, admin_of: Any
) -> None:
    """The next process on the data dir inherits a full spool: not ready before it
    has refused a single event."""
    upstream = await upstream_factory(tiny_site())
    overrides = {"upstreams": [upstream], "publisher.spool_max_bytes": 4096, "publisher.spool_segment_bytes": 1024}
    first = await proxy_factory(overrides, redis_url=redis_server.url)
    redis_server.kill()
    await traffic_until(first.port, lambda: dropped(first, "spool_full") > 0)
    await first.stop(grace=1.0)
    second = await proxy_factory(overrides, redis_url=redis_server.url)
    admin = await admin_of(second)
    assert await readyz(admin) == 503
