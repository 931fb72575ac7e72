"""The analytics loader: the ``analytics`` consumer group as a sink into the event store.

Contract (collectors/runtime.py ``Sink``): ``apply(batch, acks)`` inserts the
batch's events that are not in the store yet, and XACKs ``acks`` only after that
insert succeeded. A crash between the two leaves the entries pending; they are
claimed again and this check finds them already stored, so every event id is
counted once — after a loader is killed mid-batch, after a replay, after an
import of the same file twice.

The check (:func:`existing_ids`) looks the batch's ids up within the batch's
sites and time window. The table is partitioned by month and each part keeps the
min/max of ``ts``, so a window of live events touches only the few recent parts
that overlap it, not the day's history (an import of old events costs a wider
scan, which is fine for a one-off). The ``ReplacingMergeTree`` (schema.py) is the
backstop for a duplicate that races this check (two loaders claiming the same
entry at once): merges fold it away.

The runtime fills batches up to :attr:`StoreLoader.batch_size` events or
:attr:`StoreLoader.flush_seconds` (few large inserts: every insert is a part
that the engine merges later), and pipelines them (a ``StagedSink``): while the
store inserts batch N in the loader's thread (chDB releases the GIL), the loop
reads and converts batch N+1. Inserts stay one at a time and in order, each
batch acked only after its own insert.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Coroutine, Iterable
from typing import Any

import orjson
import redis.asyncio as aioredis

from collectors.analytics.rows import to_row
from collectors.analytics.store import Store
from collectors.events import Event

log = logging.getLogger(__name__)
GROUP = "analytics"

_EXISTING = """SELECT id FROM {table}
WHERE site IN {{sites:Array(String)}}
  AND ts >= {{lo:DateTime64(3, 'UTC')}} AND ts <= {{hi:DateTime64(3, 'UTC')}}
  AND id IN {{ids:Array(String)}}"""


def _utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).replace(tzinfo=None)


def prepare(batch: Iterable[tuple[str, Event]], now: float, ttl_days: int) -> tuple[dict[str, dict[str, Any]], int]:
    """The rows to store, by id (the first of repeated ids wins), and how many events
    are already past the retention TTL (the table would drop them; they are skipped)."""
    oldest = now - ttl_days * 86400
    rows: dict[str, dict[str, Any]] = {}
    expired = 0
    for _, event in batch:
        if event["id"] in rows:
            continue
        if event["ts"] < oldest:
            expired += 1
            continue
        rows[event["id"]] = to_row(event)
    return rows, expired


def existing_ids(store: Store, rows: dict[str, dict[str, Any]]) -> set[str]:
    """The ids of ``rows`` already in the store (blocking: call in the loader's thread)."""
    if not rows:
        return set()
    stamps = [r["ts"] for r in rows.values()]
    params = {
        "sites": sorted({r["site"] for r in rows.values()}),
        "lo": _utc(min(stamps) - 0.001),
        "hi": _utc(max(stamps) + 0.001),
        "ids": list(rows),
    }
    return {row[0] for row in store.writer.query(_EXISTING.format(table=store.events), params)}


def insert_new(store: Store, rows: dict[str, dict[str, Any]]) -> int:
    """Insert the rows whose id is not stored yet; return how many (blocking)."""
    seen = existing_ids(store, rows)
    fresh = [orjson.dumps(row) for eid, row in rows.items() if eid not in seen]
    store.writer.insert_json(store.events, fresh)
    return len(fresh)


class StoreLoader:
    """The ``analytics`` group's sink; see the module docstring."""

    group = GROUP

    def __init__(self, redis: aioredis.Redis, stream_key: str, store: Store) -> None:
        self.redis = redis
        self.stream_key = stream_key
        self.store = store
        self.batch_size = store.settings.batch_size
        self.flush_seconds = store.settings.flush_seconds
        self.expired = 0

    def prepare(self, batch: list[tuple[str, Event]], acks: list[str]) -> tuple[dict[str, dict[str, Any]], list[str]]:
        rows, expired = prepare(batch, time.time(), self.store.settings.ttl_days)
        if expired:
            self.expired += expired
            log.warning("loader: %d events older than the %d-day retention skipped",
                        expired, self.store.settings.ttl_days)  # fmt: skip
        return rows, acks

    async def send(self, staged: tuple[dict[str, dict[str, Any]], list[str]]) -> Coroutine[Any, Any, int]:
        rows, acks = staged
        inserting = self.store.submit_writer(insert_new, self.store, rows) if rows else None

        async def finish() -> int:
            new = await inserting if inserting is not None else 0
            await self.ack(acks)
            return new

        return finish()

    async def apply(self, batch: list[tuple[str, Event]], acks: list[str]) -> int:
        return await (await self.send(self.prepare(batch, acks)))

    async def ack(self, acks: list[str]) -> None:
        """XACK, once the batch is stored (the crash test kills the process here)."""
        await self.redis.xack(self.stream_key, self.group, *acks)
