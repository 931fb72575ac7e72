"""The analytics loader: each event id stored once through replays, claims and a real crash."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import redis.asyncio as aioredis

from collectors.analytics import loader
from collectors.analytics.store import Store
from proxy.stream.embedded import EmbeddedRedis, free_port
from tests.collectors.conftest import ServiceFactory, count, drained, rows
from tests.collectors.factory import STREAM, event, xadd_events

ROOT = Path(__file__).resolve().parents[3]


def recent(n: int, **fields: Any) -> list[dict[str, Any]]:
    now = time.time() - 60
    return [event(ts=now + i * 0.001, visitor=f"v{i % 300}", session=f"s{i % 300}", **fields) for i in range(n)]


def metric(service: Any, name: str) -> float:
    return service.registry.get_sample_value(name, {"group": "analytics"}) or 0.0


async def test_a_replay_of_stored_events_adds_nothing(
    redis_client: aioredis.Redis, start_service: ServiceFactory, store: Store
) -> None:
    events = recent(2500)
    await xadd_events(redis_client, events)
    service = await start_service(frozenset({"analytics"}))
    await drained(redis_client, ("analytics",))
    assert count(store) == rows(store) == 2500
    await xadd_events(redis_client, events[:1200])  # the same events again: a replay
    await drained(redis_client, ("analytics",))
    assert count(store) == rows(store) == 2500  # not even a duplicate row awaiting a merge
    assert metric(service, "footfall_collector_events_duplicate_total") == 1200


async def test_claimed_entries_already_stored_count_once(
    redis_client: aioredis.Redis, start_service: ServiceFactory, store: Store
) -> None:
    """A consumer stored a batch and died before its XACK: whoever claims it stores nothing new."""
    events = recent(1500)
    await xadd_events(redis_client, events)
    await redis_client.xgroup_create(STREAM, "analytics", id="0")
    reply: Any = await redis_client.xreadgroup("analytics", "ghost", {STREAM: ">"}, count=1000)
    taken = [(eid.decode(), orjson.loads(f[b"event"])) for eid, f in reply[0][1]]
    prepared, _ = loader.prepare(taken, time.time(), 730)
    assert await store.run_writer(loader.insert_new, store, prepared) == 1000
    service = await start_service(frozenset({"analytics"}), claim_idle_ms=1500)
    await drained(redis_client, ("analytics",))
    assert count(store) == rows(store) == 1500
    assert metric(service, "footfall_collector_entries_claimed_total") == 1000
    assert metric(service, "footfall_collector_events_duplicate_total") == 1000


async def test_batches_fill_up_to_the_batch_size_or_the_flush_time(
    redis_client: aioredis.Redis, start_service: ServiceFactory, store: Store
) -> None:
    # the loader reads it at start; 3 s, so that a stall of a loaded CI machine cannot cut a full batch short
    store.settings = dataclasses.replace(store.settings, flush_seconds=3.0)
    await xadd_events(redis_client, recent(2500))
    service = await start_service(frozenset({"analytics"}))
    await drained(redis_client, ("analytics",))
    assert metric(service, "footfall_collector_batch_duration_seconds_count") == 3  # 1000 + 1000 + 500
    for e in recent(5, path="/trickle"):  # a quiet stream: 5 events, 20 ms apart
        await xadd_events(redis_client, [e])
        await asyncio.sleep(0.02)
    await drained(redis_client, ("analytics",))
    assert metric(service, "footfall_collector_batch_duration_seconds_count") == 4
    assert count(store, "path = '/trickle'") == 5


async def test_events_past_the_retention_are_skipped(
    redis_client: aioredis.Redis, start_service: ServiceFactory, store: Store
) -> None:
    await xadd_events(redis_client, [event(ts=time.time() - 731 * 86400), *recent(3)])
    await start_service(frozenset({"analytics"}))
    await drained(redis_client, ("analytics",))
    assert count(store) == 3


async def test_loader_killed_between_insert_and_ack_then_restarted_counts_exactly(
    redis_server: EmbeddedRedis, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    """A real process stores its third batch and is SIGKILLed before the XACK; a new
    loader process on the same store claims the batch and finds it stored."""
    n = 5000
    await xadd_events(redis_client, recent(n))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FOOTFALL_DATA_DIR": str(tmp_path / "data"),
           "FOOTFALL_COLLECTOR_CLAIM_IDLE_MS": "200", "FOOTFALL_STORE_FLUSH_SECONDS": "0.2"}  # fmt: skip
    doomed = subprocess.run(
        [sys.executable, "-m", "tests.collectors.analytics.crash_loader", redis_server.url,
         str(tmp_path / "data"), "3"],
        env=env, capture_output=True, timeout=50,
    )  # fmt: skip
    assert doomed.returncode == -signal.SIGKILL, doomed.stderr.decode()[-2000:]
    assert doomed.stdout.decode().strip() == "inserted 1000, killed before XACK"
    groups = {g["name"]: g for g in await redis_client.xinfo_groups(STREAM)}
    # the stored batch, never acknowledged (and the next one, read meanwhile: the loader pipelines)
    assert groups[b"analytics"]["pending"] in (1000, 2000)

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "collectors", redis_server.url, "analytics", f"127.0.0.1:{port}"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        await drained(redis_client, ("analytics",), timeout=40)
        day = dt.datetime.now(dt.UTC).date()
        params = {"site": "shop.example", "from": str(day - dt.timedelta(days=1)), "to": str(day), "format": "rows"}
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/api/v2/export", params=params) as resp:
                assert resp.status == 200, await resp.text()
                ids = [orjson.loads(line)["id"] for line in (await resp.read()).splitlines()]
            async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                text = await resp.text()
        assert len(ids) == len(set(ids)) == n
        duplicates = re.search(r'footfall_collector_events_duplicate_total\{group="analytics"\} ([\d.]+)', text)
        assert duplicates is not None and float(duplicates[1]) >= 1000  # the stored batch was found stored
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
