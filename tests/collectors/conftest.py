"""Collector fixtures: a running CollectorService on the test's real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest
import redis.asyncio as aioredis

from collectors.analytics.store import Store
from collectors.service import CollectorService
from collectors.settings import CollectorSettings, parse
from proxy.stream.embedded import EmbeddedRedis
from tests.collectors.factory import STREAM

GOALS_AND_FUNNELS: dict[str, Any] = {
    "goals": [
        {"name": "buy", "method": "POST", "path": "/checkout", "status": "2xx,303"},
        {"name": "pricing", "path": "/pricing"},
    ],
    "funnels": [{"name": "checkout", "steps": ["/cart", "/checkout", "/thank-you"]}],
}


def settings(**overrides: Any) -> CollectorSettings:
    errors: list[str] = []
    s = parse({**GOALS_AND_FUNNELS, "block_ms": 50, **overrides}, errors)
    assert errors == []
    return s


async def drained(redis: aioredis.Redis, groups: tuple[str, ...], timeout: float = 20.0) -> None:
    """Wait until every group has read the whole stream and acknowledged all of it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        last = await redis.xrevrange(STREAM, count=1)
        infos = {i["name"].decode(): i for i in await redis.xinfo_groups(STREAM)}
        done = all(
            g in infos
            and infos[g]["pending"] == 0
            and (not last or infos[g]["last-delivered-id"] == last[0][0])
            for g in groups
        )
        if done:
            return
        if loop.time() > deadline:
            raise AssertionError(f"collectors did not drain the stream: {infos}")
        await asyncio.sleep(0.02)


ServiceFactory = Callable[..., Coroutine[Any, Any, CollectorService]]


def count(store: Store, where: str = "1") -> int:
    """Events in the test's store (each id once: what every metric counts)."""
    return int(store.engine.query(f"SELECT uniqExact(id) FROM {store.events} WHERE {where}")[0][0])


def rows(store: Store) -> int:
    """Stored rows, duplicates included (before the ReplacingMergeTree merges them)."""
    return int(store.engine.query(f"SELECT count() FROM {store.events}")[0][0])


@pytest.fixture
async def start_service(redis_server: EmbeddedRedis, store: Store) -> AsyncIterator[ServiceFactory]:
    """Start CollectorServices on the test's Redis and the test's store; all are
    stopped at teardown."""
    services: list[CollectorService] = []

    async def start(
        which: frozenset[str] = frozenset({"analytics", "performance"}),
        consumer: str = "c1",
        **overrides: Any,
    ) -> CollectorService:
        service = CollectorService(redis_server.url, STREAM, settings(**overrides), which, consumer, store=store)
        await service.start()
        services.append(service)
        return service

    yield start
    for service in services:
        if service._tasks:
            await service.stop()
