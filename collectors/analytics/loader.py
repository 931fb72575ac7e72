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
from collections.abc import Coroutine, Iterable, Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis

from collectors.analytics import schema
from collectors.analytics.rows import store_trace, to_row
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


Staged = dict[str, tuple[Event, bytes]]  # by id: the decoded event and its JSON as it came


def prepare(
    batch: Iterable[tuple[str, Event]], now: float, ttl_days: int, raws: Sequence[bytes] | None = None
) -> tuple[Staged, int]:
    """The events to store with their JSON (``raws``, aligned with ``batch``; without
    it the dicts are serialised), by id (the first of repeated ids wins), and how
    many events are already past the retention TTL (the table would drop them)."""
    oldest = now - ttl_days * 86400
    rows: Staged = {}
    expired = 0
    for i, (_, event) in enumerate(batch):
        if event["id"] in rows:
            continue
        if event["ts"] < oldest:
            expired += 1
            continue
        rows[event["id"]] = (event, raws[i] if raws is not None else orjson.dumps(event))
    return rows, expired


def existing_ids(store: Store, rows: Staged) -> set[str]:
    """The ids of ``rows`` already in the store (blocking: call in the loader's thread)."""
    if not rows:
        return set()
    stamps = [event["ts"] for event, _ in rows.values()]
    params = {
        "sites": sorted({event["site"] for event, _ in rows.values()}),
        "lo": _utc(min(stamps) - 0.001),
        "hi": _utc(max(stamps) + 0.001),
        "ids": list(rows),
    }
    return {row[0] for row in store.writer.query(_EXISTING.format(table=store.events), params)}


def insert_new(store: Store, rows: Staged) -> int:
    """Insert the rows whose id is not stored yet; return how many (blocking).

    The events' own JSON goes to ``events_in``, which the engine flattens into
    ``events`` (schema.py): no Python per field. A batch the engine cannot read
    that way (a value of an unexpected JSON type, from an import) is stored field
    by field through rows.to_row, which decides every odd value; the failed insert
    stored nothing, and the ids are looked up again all the same.
    """
    seen = existing_ids(store, rows)
    fresh = [eid for eid in rows if eid not in seen]
    try:
        store.writer.insert_json(store.inputs, [rows[eid][1] for eid in fresh], settings=schema.INPUT_SETTINGS)
    except Exception as exc:  # the engine's parse error; a real outage fails again below
        log.warning("loader: batch of %d not readable as is (%s); storing it field by field",
                    len(fresh), str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__)  # fmt: skip
        again = existing_ids(store, rows)
        store.writer.insert_json(store.events, [orjson.dumps(store_trace(to_row(rows[eid][0]))) for eid in fresh
                                                if eid not in again])  # fmt: skip
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

    def prepare(self, batch: list[tuple[str, Event]], acks: list[str], raws: list[bytes] | None = None
                ) -> tuple[Staged, list[str]]:  # fmt: skip
        rows, expired = prepare(batch, time.time(), self.store.settings.ttl_days, raws)
        if expired:
            self.expired += expired
            log.warning("loader: %d events older than the %d-day retention skipped",
                        expired, self.store.settings.ttl_days)  # fmt: skip
        return rows, acks

    async def send(self, staged: tuple[Staged, list[str]]) -> Coroutine[Any, Any, int]:
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
