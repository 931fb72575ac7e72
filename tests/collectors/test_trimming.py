"""Entries trimmed by MAXLEN before a group applied them are counted and dead-lettered,
never lost silently. Needs Redis >= 7 (``entries-added``, XAUTOCLAIM's deleted ids):
the machine's ``redis-server`` when it is new enough."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from collectors.runtime_metrics import RuntimeMetrics
from collectors.service import CollectorService
from collectors.trimming import parse_gap, redis_major
from proxy.stream.embedded import EmbeddedRedis, free_port
from tests.collectors.conftest import settings
from tests.collectors.factory import STREAM, T0, event

MAXLEN = 1000


def _redis7() -> str | None:
    path = shutil.which("redis-server")
    if path is None:
        return None
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=False).stdout
    version = out.split("v=", 1)[-1].split(" ", 1)[0]
    return path if redis_major({"redis_version": version}) >= 7 else None


REDIS7 = _redis7()
needs_redis7 = pytest.mark.skipif(REDIS7 is None, reason="needs a redis-server >= 7 on PATH")


@pytest.fixture
async def redis7(tmp_path: Path) -> AsyncIterator[tuple[EmbeddedRedis, aioredis.Redis]]:
    assert REDIS7 is not None
    server = EmbeddedRedis(tmp_path / "redis7", port=free_port(), executable=REDIS7).start()
    client = aioredis.Redis.from_url(server.url)
    yield server, client
    await client.aclose()
    server.kill()


async def add(client: aioredis.Redis, n: int, maxlen: int | None = MAXLEN) -> None:
    """XADD like the publisher does: ``MAXLEN ~``, pipelined."""
    async with client.pipeline(transaction=False) as pipe:
        for i in range(n):
            pipe.xadd(STREAM, {"event": orjson.dumps(event(ts=T0 + i % 600))},
                      maxlen=maxlen, approximate=True)  # fmt: skip
        await pipe.execute()


def sample(service: CollectorService, name: str, **labels: str) -> float:
    return service.registry.get_sample_value(name, labels) or 0.0


async def until(predicate: Any, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition never reached"
        await asyncio.sleep(0.05)


@needs_redis7
async def test_stalled_consumer_and_backlog_trimmed_are_counted_and_dead_lettered(
    redis7: tuple[EmbeddedRedis, aioredis.Redis],
) -> None:
    """The issue's scenario: stream_maxlen 1000, a stalled consumer holding 300
    pending entries, then 5,000 new events. Every entry the group loses is counted."""
    server, client = redis7
    await add(client, 300)
    await client.xgroup_create(STREAM, "performance", id="0")
    stalled = await client.xreadgroup("performance", "stalled", {STREAM: ">"}, count=300)
    stalled_ids = {eid for eid, _ in stalled[0][1]}
    assert len(stalled_ids) == 300
    await add(client, 5000)
    kept = await client.xlen(STREAM)
    assert MAXLEN <= kept < 5000  # MAXLEN ~ keeps whole nodes
    assert not stalled_ids & {eid for eid, _ in await client.xrange(STREAM, count=10)}

    service = CollectorService(server.url, STREAM, settings(claim_idle_ms=200), frozenset({"performance"}), "c1")
    await service.start()
    try:

        async def done() -> bool:
            infos = {i["name"]: i for i in await client.xinfo_groups(STREAM)}
            processed = sample(service, "footfall_collector_events_processed_total", group="performance")
            return infos[b"performance"]["pending"] == 0 and processed >= kept

        await until(done)
        lost = 5300 - kept
        pending = sample(service, "footfall_collector_entries_trimmed_total", group="performance", state="pending")
        unread = sample(service, "footfall_collector_entries_trimmed_total", group="performance", state="unread")
        assert (pending, unread) == (300, lost - 300)
        assert sample(service, "footfall_collector_events_processed_total", group="performance") == kept
        dead = await client.xrange(f"{STREAM}:dead")
        trimmed_ids = {f[b"entry"] for _, f in dead if f[b"reason"] == b"trimmed"}
        assert trimmed_ids == stalled_ids
        assert all(f[b"group"] == b"performance" for _, f in dead)
        ranges = [f for _, f in dead if f[b"reason"] == b"trimmed_unread"]
        assert [int(f[b"count"]) for f in ranges] == [lost - 300]
        # Counted once: more traffic without trimming past the group adds nothing.
        await add(client, 100, maxlen=None)
        await until(lambda: _processed_at_least(service, kept + 100))
        again = sample(service, "footfall_collector_entries_trimmed_total", group="performance", state="unread")
        assert again == lost - 300
    finally:
        await service.stop()


async def _processed_at_least(service: CollectorService, n: int) -> bool:
    return sample(service, "footfall_collector_events_processed_total", group="performance") >= n


@needs_redis7
async def test_a_live_group_that_falls_behind_counts_each_gap_once(
    redis7: tuple[EmbeddedRedis, aioredis.Redis],
) -> None:
    """Two separate gaps, the group reading in between: the counter is their sum."""
    server, client = redis7
    service = CollectorService(server.url, STREAM, settings(), frozenset({"performance"}), "c1")
    await service.start()
    try:
        await until(lambda: _ready(service))
        for _ in range(2):
            await service.stop()  # the group falls behind while nobody reads
            before = await client.xinfo_stream(STREAM)
            await add(client, 3000)
            after = await client.xinfo_stream(STREAM)
            service = CollectorService(server.url, STREAM, settings(), frozenset({"performance"}), "c1")
            await service.start()
            await until(lambda: _caught_up(client))
            # The group had read everything added before; of the rest, what left the
            # head of the stream was never read.
            lost = (after["entries-added"] - after["length"]) - before["entries-added"]
            unread = sample(service, "footfall_collector_entries_trimmed_total", group="performance", state="unread")
            assert unread == lost > 0  # a fresh registry per service: this round's loss only
    finally:
        await service.stop()


async def _ready(service: CollectorService) -> bool:
    return service.ready


def _caught_up(client: aioredis.Redis) -> Any:
    async def check() -> bool:
        infos = {i["name"]: i for i in await client.xinfo_groups(STREAM)}
        last = await client.xrevrange(STREAM, count=1)
        g = infos.get(b"performance")
        return g is not None and g["pending"] == 0 and g["last-delivered-id"] == last[0][0]

    return check()


@needs_redis7
async def test_a_new_group_on_an_old_trimmed_stream_counts_nothing(
    redis7: tuple[EmbeddedRedis, aioredis.Redis],
) -> None:
    server, client = redis7
    await add(client, 3000)  # trimmed long before this group existed
    service = CollectorService(server.url, STREAM, settings(), frozenset({"performance"}), "c1")
    await service.start()
    try:
        await until(lambda: _caught_up(client))
        for state in ("pending", "unread"):
            assert sample(service, "footfall_collector_entries_trimmed_total", group="performance", state=state) == 0
        assert await client.xlen(f"{STREAM}:dead") == 0
    finally:
        await service.stop()


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ([0, b"0-0", b""], (0, "0-0", "")),
        ([5, b"1-0", b"9-0"], (5, "1-0", "9-0")),
        ([-1, b"1-0", b"9-0"], (-1, "1-0", "9-0")),
    ],
)
def test_parse_gap(reply: list[Any], expected: tuple[Any, ...]) -> None:
    assert parse_gap(reply) == expected


@pytest.mark.parametrize(("version", "major"), [("7.0.15", 7), ("6.2.14", 6), ("7.2.4", 7), ("", 0), (b"8.0.1", 8)])
def test_redis_major(version: str | bytes, major: int) -> None:
    assert redis_major({"redis_version": version}) == major


def test_metrics_have_no_transient_trim_gauge() -> None:
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    RuntimeMetrics(registry)
    names = {m.name for m in registry.collect()}
    assert "footfall_collector_entries_trimmed" in names
    assert "footfall_collector_trim_gap" not in names
