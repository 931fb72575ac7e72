"""Publisher against a real Redis: delivery, Redis crashes and stalls, restarts, drops."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
import redis.asyncio as aioredis

from proxy.metrics import ProxyMetrics
from proxy.settings import PublisherSettings
from proxy.stream.embedded import EmbeddedRedis
from proxy.stream.publisher import Publisher
from proxy.stream.spool import Spool

KEY = "footfall:events"
Item = dict[str, Any]


async def encode(items: list[Item]) -> list[bytes]:
    return [orjson.dumps(i) for i in items]


def _settings(**changes: Any) -> PublisherSettings:
    base: dict[str, Any] = {
        "buffer_size": 5000,
        "batch_size": 50,
        "flush_interval_ms": 5.0,
        "redis_timeout_seconds": 0.5,
        "spool_max_bytes": 10 << 20,
        "spool_segment_bytes": 4096,
    }
    base.update(changes)
    return PublisherSettings(**base)


def _publisher(
    url: str,
    spool_dir: Path,
    metrics: ProxyMetrics,
    *,
    maxlen: int = 1_000_000,
    prepare: Callable[[list[Item]], Awaitable[list[bytes]]] = encode,
    **settings: Any,
) -> Publisher[Item]:
    return Publisher(
        redis_url=url,
        stream_key=KEY,
        maxlen=maxlen,
        settings=_settings(**settings),
        spool_dir=spool_dir,
        metrics=metrics,
        prepare=prepare,
    )


Entries = list[tuple[bytes, dict[bytes, bytes]]]


async def _xrange(
    client: aioredis.Redis, *, reverse: bool = False, count: int | None = None
) -> Entries:
    """XRANGE typed as what a bytes-mode client returns (redis-py's stubs allow None)."""
    if reverse:
        return cast(Entries, await client.xrevrange(KEY, count=count))
    return cast(Entries, await client.xrange(KEY, count=count))


def _sample(metrics: ProxyMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return value or 0.0


async def _ids_in_stream(client: aioredis.Redis) -> Counter[str]:
    ids: Counter[str] = Counter()
    for _, fields in await _xrange(client):
        assert list(fields) == [b"event"]
        ids[orjson.loads(fields[b"event"])["id"]] += 1
    return ids


async def _until(check: Callable[[], Awaitable[bool]], what: str, limit: float = 20.0) -> None:
    """Poll until ``check`` holds; the limit only guards against a hang."""
    for _ in range(int(limit / 0.02)):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"never happened: {what}")


def _spooled_ids(spool_dir: Path) -> list[str]:
    spool = Spool(spool_dir, max_bytes=1 << 30, segment_bytes=1 << 20).open()
    ids: list[str] = []
    while spool:
        records, token = spool.read_chunk(1000)
        ids += [orjson.loads(r)["id"] for r in records]
        spool.commit(token)
    spool.close()
    return ids


async def test_publishes_every_item_as_field_event(
    redis_server: EmbeddedRedis, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    metrics = ProxyMetrics()
    pub = _publisher(redis_server.url, tmp_path / "spool", metrics)
    await pub.start()
    assert pub.ready()
    for i in range(1000):
        pub.submit({"id": str(i), "kind": "pageview"})

    async def all_there() -> bool:
        return int(await redis_client.xlen(KEY)) >= 1000

    await _until(all_there, "1000 entries in the stream")
    await pub.close()
    assert await _ids_in_stream(redis_client) == Counter(str(i) for i in range(1000))
    assert _sample(metrics, "footfall_events_published_total") == 1000
    assert _sample(metrics, "footfall_events_spooled_total") == 0
    assert not pub.ready()


async def test_maxlen_is_honoured(
    redis_server: EmbeddedRedis, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    pub = _publisher(redis_server.url, tmp_path / "spool", ProxyMetrics(), maxlen=200)
    await pub.start()
    for i in range(3000):
        pub.submit({"id": str(i)})
    await pub.close()
    length = int(await redis_client.xlen(KEY))
    assert 200 <= length < 1000  # "~" trims whole macro nodes (100 entries each)
    last = await _xrange(redis_client, reverse=True, count=1)
    assert orjson.loads(last[0][1][b"event"])["id"] == "2999"


async def test_redis_killed_mid_traffic_loses_nothing(
    redis_server: EmbeddedRedis, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    metrics = ProxyMetrics()
    pub = _publisher(redis_server.url, tmp_path / "spool", metrics)
    await pub.start()
    sent = 0

    async def traffic(rounds: int) -> None:
        nonlocal sent
        for _ in range(rounds):
            for _ in range(20):
                pub.submit({"id": str(sent)})
                sent += 1
            await asyncio.sleep(0.002)

    await traffic(25)
    redis_server.kill()  # SIGKILL; the AOF is fsynced on every write
    await traffic(50)
    assert pub.ready()  # the spool takes the events
    redis_server.start()
    await traffic(25)
    await redis_client.connection_pool.disconnect()  # its sockets died with the server

    async def delivered() -> bool:
        return len(await _ids_in_stream(redis_client)) == sent

    await _until(delivered, "every id in the stream")
    await pub.close()
    ids = await _ids_in_stream(redis_client)
    assert set(ids) == {str(i) for i in range(sent)}
    assert _sample(metrics, "footfall_events_spooled_total") > 0
    assert _sample(metrics, "footfall_redis_errors_total", kind="connect") > 0
    assert _sample(metrics, "footfall_spool_bytes") == 0
    assert _spooled_ids(tmp_path / "spool") == []


async def test_stalled_redis_times_out_to_the_spool(
    redis_server: EmbeddedRedis, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    assert redis_server.process is not None
    metrics = ProxyMetrics()
    pub = _publisher(redis_server.url, tmp_path / "spool", metrics, redis_timeout_seconds=0.1)
    await pub.start()
    os.kill(redis_server.process.pid, signal.SIGSTOP)  # a hung Redis: accepts, never answers
    try:
        for i in range(300):
            pub.submit({"id": str(i)})

        async def timed_out() -> bool:
            return _sample(metrics, "footfall_redis_errors_total", kind="timeout") > 0

        await _until(timed_out, "a timeout counted")
    finally:
        os.kill(redis_server.process.pid, signal.SIGCONT)

    async def delivered() -> bool:
        return len(await _ids_in_stream(redis_client)) == 300

    await _until(delivered, "every id in the stream after the stall")
    await pub.close()


async def test_restart_replays_what_the_spool_holds(
    redis_server: EmbeddedRedis, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    redis_server.kill()
    metrics = ProxyMetrics()
    pub = _publisher(redis_server.url, tmp_path / "spool", metrics)
    await pub.start()  # Redis down: not fatal
    assert pub.ready()
    for i in range(500):
        pub.submit({"id": str(i)})
    await pub.close()
    assert _sample(metrics, "footfall_events_spooled_total") == 500
    assert list((tmp_path / "spool").glob("seg-*.ndjson"))

    redis_server.start()
    await redis_client.connection_pool.disconnect()
    pub2 = _publisher(redis_server.url, tmp_path / "spool", ProxyMetrics())
    await pub2.start()

    async def replayed() -> bool:
        return len(await _ids_in_stream(redis_client)) == 500

    await _until(replayed, "the spool replayed")
    await pub2.close()
    assert list((tmp_path / "spool").glob("seg-*.ndjson")) == []
    # In order, each once (nothing failed here, so no duplicates either).
    entries = await _xrange(redis_client)
    assert [orjson.loads(e[1][b"event"])["id"] for e in entries] == [str(i) for i in range(500)]


@pytest.mark.parametrize("redis_up", [True, False])
async def test_close_with_a_full_buffer_loses_nothing(
    redis_up: bool, redis_server: EmbeddedRedis, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    if not redis_up:
        redis_server.kill()
    metrics = ProxyMetrics()
    pub = _publisher(redis_server.url, tmp_path / "spool", metrics, buffer_size=2000)
    await pub.start()
    for i in range(2000):  # no await: the flush task has not run yet
        pub.submit({"id": str(i)})
    await pub.close()
    assert _sample(metrics, "footfall_events_dropped_total", reason="buffer_full") == 0
    in_stream = set(await _ids_in_stream(redis_client)) if redis_up else set()
    in_spool = set(_spooled_ids(tmp_path / "spool"))
    assert in_stream | in_spool == {str(i) for i in range(2000)}
    if not redis_up:
        assert len(in_spool) == 2000


async def test_buffer_and_spool_full_drop_and_count(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    redis_server.kill()
    metrics = ProxyMetrics()
    pub = _publisher(
        redis_server.url, tmp_path / "spool", metrics,
        buffer_size=100, spool_max_bytes=2000, spool_segment_bytes=1000,
    )  # fmt: skip
    await pub.start()
    for i in range(300):  # the flush task cannot run in between: 200 over the bound
        pub.submit({"id": str(i)})
    assert _sample(metrics, "footfall_events_dropped_total", reason="buffer_full") == 200
    for i in range(300, 400):
        pub.submit({"id": str(i)})
        await asyncio.sleep(0)
    await pub.close()
    pub.submit({"id": "late"})  # after close: counted, never raises
    spool_full = _sample(metrics, "footfall_events_dropped_total", reason="spool_full")
    spooled = _sample(metrics, "footfall_events_spooled_total")
    assert spool_full > 0
    assert spooled == len(_spooled_ids(tmp_path / "spool"))
    assert _sample(metrics, "footfall_events_dropped_total", reason="shutdown") == 1
    buffer_full = _sample(metrics, "footfall_events_dropped_total", reason="buffer_full")
    # Every submitted item is accounted for: spooled or dropped with a reason.
    assert spooled + spool_full + buffer_full == 400


async def test_prepare_failure_counts_build_error_and_continues(
    redis_server: EmbeddedRedis, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    async def flaky(items: list[Item]) -> list[bytes]:
        if any(i["id"] == "bad" for i in items):
            raise ValueError("cannot build")
        return await encode(items)

    metrics = ProxyMetrics()
    pub = _publisher(redis_server.url, tmp_path / "spool", metrics, prepare=flaky)
    await pub.start()
    pub.submit({"id": "bad"})

    async def counted() -> bool:
        return _sample(metrics, "footfall_events_dropped_total", reason="build_error") > 0

    await _until(counted, "the failed batch counted")
    pub.submit({"id": "good"})
    await pub.close()
    assert _sample(metrics, "footfall_events_dropped_total", reason="build_error") == 1
    assert await _ids_in_stream(redis_client) == Counter(["good"])
