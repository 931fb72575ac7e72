"""collectors.analytics.importer: line checks (pure) and pacing by the loader's backlog (real Redis)."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
import redis.asyncio as aioredis

from collectors.analytics.importer import check_line, import_lines
from collectors.analytics.store import Store
from proxy.tasks import spawn
from tests.collectors.conftest import ServiceFactory, count, drained
from tests.collectors.factory import STREAM, event

NOW = time.time()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (orjson.dumps(event(ts=NOW)), None),
        (b"{", "not valid JSON"),
        (b"[]", 'not an event v1 (a JSON object with "v": 1)'),
        (orjson.dumps({**event(ts=NOW), "v": 2}), 'not an event v1 (a JSON object with "v": 1)'),
        (orjson.dumps({**event(ts=NOW), "ts": "yesterday"}), "missing or invalid id, ts or site"),
        (orjson.dumps({k: v for k, v in event(ts=NOW).items() if k != "site"}), "missing or invalid id, ts or site"),
        (orjson.dumps(event(ts=NOW - 40 * 86400)), "older than the store's retention (analytics.ttl_days): "
                                                   "it would be dropped"),
    ],
)  # fmt: skip
def test_check_line(raw: bytes, reason: str | None) -> None:
    assert check_line(raw, oldest=NOW - 30 * 86400) == reason


async def test_an_import_waits_for_the_loader_beyond_its_window(
    redis_client: aioredis.Redis, start_service: ServiceFactory, store: Store
) -> None:
    lines = [orjson.dumps(event(ts=NOW - 60 + i * 0.001)) for i in range(3000)]
    notes: list[str] = []
    task = spawn(import_lines(redis_client, STREAM, lines, maxlen=100_000, ttl_days=730, max_unread=1000,
                              on_progress=lambda n, note: notes.append(note)), name="import")  # fmt: skip
    await asyncio.sleep(0.5)
    assert not task.done()
    assert await redis_client.xlen(STREAM) == 1000  # one window, then it waits
    assert any(note.startswith("waiting for the analytics loader") for note in notes)
    await start_service(frozenset({"analytics"}))
    result = await asyncio.wait_for(task, 30)
    assert (result.good, result.bad) == (3000, 0)
    await drained(redis_client, ("analytics",))
    assert count(store) == 3000
