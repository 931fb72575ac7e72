"""The consumer-group runtime: dead letters, poison isolation, stop, and a real crash."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import redis.asyncio as aioredis

from proxy.stream.embedded import EmbeddedRedis, free_port
from tests.collectors.conftest import ServiceFactory, drained
from tests.collectors.factory import STREAM, T0, event, xadd_events

SITE = "shop.example"
ROOT = Path(__file__).resolve().parents[2]


async def test_invalid_entries_go_to_the_dead_letter_stream(
    redis_client: aioredis.Redis, start_service: ServiceFactory
) -> None:
    await redis_client.xadd(STREAM, {"event": b"{not json"})
    await redis_client.xadd(STREAM, {"event": b'{"v": 2, "id": "x"}'})
    await redis_client.xadd(STREAM, {"event": b'{"v": 1, "id": "x"}'})
    await redis_client.xadd(STREAM, {"other": b"1"})
    await xadd_events(redis_client, [event(ts=T0)])
    service = await start_service()
    await drained(redis_client, ("analytics", "performance"))
    dead = await redis_client.xrange(f"{STREAM}:dead")
    reasons = sorted((f[b"group"].decode(), f[b"reason"].decode()) for _, f in dead)
    expected = ["bad_json", "missing_fields", "missing_fields", "not_v1"]
    assert reasons == sorted([("analytics", r) for r in expected] +
                             [("performance", r) for r in expected])  # fmt: skip
    assert (await service.query.stats(SITE, int(T0), int(T0) + 60))["pageviews"] == 1
    value = service.registry.get_sample_value(
        "footfall_collector_events_dead_lettered_total", {"group": "analytics", "reason": "bad_json"})  # fmt: skip
    assert value == 1


async def test_a_poison_event_is_isolated_and_the_rest_applied(
    redis_client: aioredis.Redis, start_service: ServiceFactory
) -> None:
    # A key of the wrong type under the poison event's session makes its apply fail.
    await redis_client.set(f"footfall:a:{SITE}:s:poison", "x")
    await xadd_events(redis_client, [event(ts=T0, session="ok1"), event(ts=T0, session="poison"),
                                     event(ts=T0, session="ok2", visitor="v2")])  # fmt: skip
    service = await start_service(frozenset({"analytics"}))
    await drained(redis_client, ("analytics",))
    assert (await service.query.stats(SITE, int(T0), int(T0) + 60))["sessions"] == 2
    dead = await redis_client.xrange(f"{STREAM}:dead")
    assert [f[b"reason"] for _, f in dead] == [b"apply_error"]
    assert b'"poison"' in dead[0][1][b"event"]


async def test_stop_finishes_and_a_second_service_resumes(
    redis_client: aioredis.Redis, start_service: ServiceFactory
) -> None:
    await xadd_events(redis_client, [event(ts=T0 + i, session=f"s{i}") for i in range(50)])
    first = await start_service(frozenset({"analytics"}), batch_size=10)
    await first.stop()
    assert not first.healthy
    await xadd_events(redis_client, [event(ts=T0 + 60 + i, session=f"t{i}") for i in range(50)])
    second = await start_service(frozenset({"analytics"}), consumer="c2", claim_idle_ms=100)
    await drained(redis_client, ("analytics",))
    stats = await second.query.stats(SITE, int(T0), int(T0) + 3600)
    assert (stats["pageviews"], stats["sessions"]) == (100, 100)


async def test_kill_a_collector_mid_batch_then_another_claims_exactly(
    redis_server: EmbeddedRedis, redis_client: aioredis.Redis, start_service: ServiceFactory
) -> None:
    """SIGKILL a collector process while it applies; a new one claims its pending entries.

    Totals must be exact: nothing lost (pending entries are claimed), nothing counted
    twice (the apply and its XACK are one script; event ids are deduplicated).
    """
    n = 6000
    events = [event(ts=T0 + i % 3000, session=f"s{i % 1500}", visitor=f"v{i % 1500}",
                    path=f"/p{i % 7}") for i in range(n)]  # fmt: skip
    await xadd_events(redis_client, events)
    env = {**os.environ, "FOOTFALL_COLLECTOR_BATCH_SIZE": "100", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "collectors", redis_server.url, "analytics",
         f"127.0.0.1:{free_port()}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        key = f"footfall:a:{SITE}:h:{int(T0)}:t"
        for _ in range(1000):  # until it has applied some, but not all
            done = int(await redis_client.hget(key, "pv") or 0)
            if done >= 500:
                break
            await asyncio.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    applied_before = int(await redis_client.hget(key, "pv") or 0)
    assert 0 < applied_before < n
    service = await start_service(frozenset({"analytics"}), consumer="rescuer", claim_idle_ms=200)
    await drained(redis_client, ("analytics",), timeout=40)
    stats = await service.query.stats(SITE, int(T0), int(T0) + 3600)
    assert stats["pageviews"] == n
    assert stats["sessions"] == 1500
    assert stats["bounce_rate"] == 0.0  # every session has 4 pageviews
    assert abs(stats["visitors"] - 1500) <= 1500 * 0.03  # HyperLogLog
