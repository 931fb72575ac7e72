"""Nothing is lost: Redis dies, the proxy restarts, the process is told to stop."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import orjson
import redis.asyncio as aioredis
from aiohttp import web

from proxy.stream.embedded import free_port
from tests.proxy.processes import wait_ready


def tiny_site() -> web.Application:
    async def ok(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/{tail:.*}", ok)
    return app


async def seen_numbers(url: str) -> list[int]:
    client = aioredis.Redis.from_url(url)
    try:
        entries = await client.xrange("footfall:events")
    finally:
        await client.aclose()
    return [int(orjson.loads(f[b"event"])["query"]["n"]) for _, f in entries]


async def wait_for_numbers(url: str, expected: set[int], timeout: float = 20.0) -> list[int]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            got = await seen_numbers(url)
        except (OSError, aioredis.ConnectionError):
            got = []
        if expected <= set(got) or asyncio.get_running_loop().time() > deadline:
            return got
        await asyncio.sleep(0.1)


async def test_redis_killed_mid_traffic_then_restarted(upstream_factory, proxy_factory, redis_server) -> None:
    upstream = await upstream_factory(tiny_site())
    proxy = await proxy_factory({"upstreams": [upstream]}, redis_url=redis_server.url)
    n = 300
    async with aiohttp.ClientSession() as client:
        for i in range(n):
            if i == 100:
                redis_server.kill()
            if i == 200:
                redis_server.start()
            async with client.get(f"http://127.0.0.1:{proxy.port}/p?n={i}") as resp:
                assert resp.status == 200  # the site never notices
    got = await wait_for_numbers(redis_server.url, set(range(n)))
    assert set(got) == set(range(n))  # at least once, every one
    assert proxy.publisher is not None
    assert proxy.metrics.events_spooled._value.get() > 0  # the outage really was spooled
    assert proxy.metrics.events_dropped.labels("spool_full")._value.get() == 0


async def test_proxy_restart_replays_the_spool(upstream_factory, proxy_factory, redis_server, tmp_path) -> None:
    upstream = await upstream_factory(tiny_site())
    redis_server.kill()
    settings = {"upstreams": [upstream], "data_dir": str(tmp_path / "d")}
    first = await proxy_factory(settings, redis_url=redis_server.url)
    async with aiohttp.ClientSession() as client:
        for i in range(50):
            async with client.get(f"http://127.0.0.1:{first.port}/p?n={i}") as resp:
                assert resp.status == 200
    await first.stop()
    spool = list((tmp_path / "d" / "spool" / "worker-0").glob("seg-*"))
    assert spool and sum(p.stat().st_size for p in spool) > 0
    redis_server.start()
    await proxy_factory(settings, redis_url=redis_server.url)  # a new process on the same data dir
    got = await wait_for_numbers(redis_server.url, set(range(50)))
    assert set(got) == set(range(50))


async def test_sigterm_with_a_full_buffer_loses_nothing(upstream_factory, redis_server, tmp_path: Path) -> None:
    upstream = await upstream_factory(tiny_site())
    port, admin = free_port(), free_port()
    config = tmp_path / "f.toml"
    # Batches never fill and the flush interval never passes: every event is still
    # in the in-memory buffer when SIGTERM arrives.
    config.write_text("[publisher]\nbatch_size = 100000\nflush_interval_ms = 600000\nbuffer_size = 100000\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxy.cli", "proxy", "--upstream", upstream, "--listen", f"127.0.0.1:{port}",
         "--admin-listen", f"127.0.0.1:{admin}", "--redis-url", redis_server.url,
         "--data-dir", str(tmp_path / "d"), "--config", str(config)],  # fmt: skip
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        await wait_ready(admin, proc)
        async with aiohttp.ClientSession() as client:
            for i in range(500):
                async with client.get(f"http://127.0.0.1:{port}/p?n={i}") as resp:
                    assert resp.status == 200
        assert await seen_numbers(redis_server.url) == []  # nothing flushed yet
        os.kill(proc.pid, signal.SIGTERM)
        assert await asyncio.get_running_loop().run_in_executor(None, proc.wait, 30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        stderr = proc.stderr.read().decode() if proc.stderr else ""
        if proc.stderr:
            proc.stderr.close()
    got = await seen_numbers(redis_server.url)
    assert sorted(got) == list(range(500)), stderr[-2000:]
