"""``footfall import``: events v1 as JSON lines → the stream, through the same loader.

Each good line is XADDed as it is (its own ``id`` and ``ts``), so importing a
file twice stores nothing new: the loader dedupes on ``id``. A bad line is
reported with its number and reason and skipped; the others still go in.

Pacing: the import never has more than ``max_unread`` of its entries in the
stream that the ``analytics`` group has not read, nor more than that pending,
so a large import cannot push unread entries past the stream's ``MAXLEN ~``.
With no loader running it stops when that window is full and waits for one.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from collectors.analytics.loader import GROUP
from collectors.events import decode

CHUNK = 1000
REASONS = {
    "bad_json": "not valid JSON",
    "not_v1": "not an event v1 (a JSON object with \"v\": 1)",
    "missing_fields": "missing or invalid id, ts or site",
}


@dataclass
class ImportResult:
    good: int = 0
    bad: int = 0
    expired: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason), first ones


def check_line(raw: bytes, oldest: float) -> str | None:
    """None if ``raw`` is an event v1 to import, else why not."""
    event = decode(raw)
    if isinstance(event, str):
        return REASONS.get(event, event)
    if event["ts"] < oldest:
        return "older than the store's retention (analytics.ttl_days): it would be dropped"
    return None


def _stream_id(value: Any) -> tuple[int, int]:
    text = value.decode() if isinstance(value, bytes) else str(value)
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


class Pacer:
    """Waits while too many of this import's entries are unread or pending in the group."""

    def __init__(self, redis: aioredis.Redis, stream: str, max_unread: int) -> None:
        self.redis = redis
        self.stream = stream
        self.max_unread = max_unread
        self.ids: list[tuple[int, int]] = []  # ids this import added, ascending

    async def ensure_group(self) -> None:
        try:  # as the loader would create it: from the stream's start
            await self.redis.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def backlog(self) -> int:
        """This import's entries the loader has not read, plus the group's pending entries."""
        infos: Any = await self.redis.xinfo_groups(self.stream)
        info = next((i for i in infos if _s(i["name"]) == GROUP), None)
        if info is None:
            return len(self.ids)
        unread = len(self.ids) - bisect.bisect_right(self.ids, _stream_id(info["last-delivered-id"]))
        return unread + int(info["pending"])

    async def wait(self, room: int, on_wait: Callable[[int], None]) -> None:
        while (backlog := await self.backlog()) + room > self.max_unread:
            on_wait(backlog)
            await asyncio.sleep(0.05)


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def import_lines(
    redis: aioredis.Redis,
    stream: str,
    lines: Iterable[bytes],
    *,
    maxlen: int,
    ttl_days: int,
    max_unread: int,
    on_progress: Callable[[int, str], None] = lambda n, note: None,
    keep_errors: int = 20,
) -> ImportResult:
    """Publish the good lines; see the module docstring. ``on_progress(lines, note)``."""
    result = ImportResult()
    pacer = Pacer(redis, stream, max_unread)
    await pacer.ensure_group()
    oldest = time.time() - ttl_days * 86400
    chunk: list[bytes] = []
    number = 0

    def waiting(backlog: int) -> None:
        on_progress(number, f"waiting for the analytics loader ({backlog:,} unread)")

    async def flush() -> None:
        await pacer.wait(len(chunk), waiting)
        async with redis.pipeline(transaction=False) as pipe:
            for raw in chunk:
                pipe.xadd(stream, {"event": raw}, maxlen=maxlen, approximate=True)
            ids = await pipe.execute()
        pacer.ids.extend(_stream_id(i) for i in ids)
        result.good += len(chunk)
        chunk.clear()

    for number, line in enumerate(lines, start=1):
        raw = line.strip()
        if not raw:
            continue
        reason = check_line(raw, oldest)
        if reason is not None:
            result.bad += 1
            if reason.startswith("older"):
                result.expired += 1
            if len(result.errors) < keep_errors:
                result.errors.append((number, reason))
            continue
        chunk.append(raw)
        if len(chunk) >= CHUNK:
            await flush()
            on_progress(number, "")
    if chunk:
        await flush()
    on_progress(number, "")
    return result
