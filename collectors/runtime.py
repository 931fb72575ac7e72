"""The consumer-group loop every collector runs: read, decode, apply + ack, recover.

Contract of a :class:`Sink`: ``apply(batch, acks)`` applies the decoded events
and XACKs ``acks`` so that either both happen or neither does (for the Redis
aggregates: one Lua script; for in-memory metrics: observe only after the XACK
succeeded). The loop:

1. creates the group at the stream's start if missing (``BUSYGROUP`` tolerated);
2. every ``claim_idle_ms / 2`` claims entries idle for ``claim_idle_ms`` (a dead
   or stuck consumer's, or our own failed batches) with XAUTOCLAIM; an entry
   delivered ``max_deliveries`` times goes to the dead-letter stream instead;
3. otherwise XREADGROUP ``>`` in batches of ``batch_size``;
4. entries that are not event v1 go to the dead-letter stream at once
   (``<stream>:dead``, fields ``event reason group entry``) and are acked;
5. on a Redis error the batch stays pending (claimed again later) and the loop
   backs off; it never exits on a bad entry.

A :class:`BatchingSink` (the analytics loader) sets its own batch size and a
fill time: a read that returns fewer entries keeps reading until the batch is
full or ``flush_seconds`` passed since the first entry, so a quiet stream still
makes few, large applies (each insert is a part the store merges later).

A :class:`StagedSink` (the analytics loader) is pipelined: the loop reads batch
N+1, sends batch N's apply, then prepares N+1 in Python while Redis or the store
runs N, and awaits N's
reply before sending N+1. Applies stay one at a time and in order, each still
acking only its own entries, so the guarantees above are unchanged; a crash can
leave two batches pending instead of one.

:meth:`Consumer.stop` lets the batch in hand finish (apply and ack) and returns
within about ``block_ms`` plus that batch's time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from typing import Any, Protocol, runtime_checkable

import orjson
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from collectors.events import Event, decode
from collectors.runtime_metrics import RuntimeMetrics
from collectors.settings import CollectorSettings

log = logging.getLogger(__name__)
_TRANSIENT = (RedisConnectionError, RedisTimeoutError, OSError)


class Sink(Protocol):
    group: str

    async def apply(self, batch: list[tuple[str, Event]], acks: list[str]) -> int:
        """Apply events and XACK ``acks`` atomically; return how many events were new."""


@runtime_checkable
class BatchingSink(Sink, Protocol):
    """A sink that wants batches of ``batch_size`` entries, or what came in ``flush_seconds``."""

    batch_size: int
    flush_seconds: float


@runtime_checkable
class StagedSink(Sink, Protocol):
    """A sink whose apply splits into pure preparation and one Redis round trip."""

    def prepare(self, batch: list[tuple[str, Event]], acks: list[str]) -> Any:
        """Everything ``apply`` computes before its I/O; no I/O, no side effects."""

    async def send(self, staged: Any) -> Coroutine[Any, Any, int]:
        """Write the apply for ``staged``; the coroutine awaits it (as ``apply`` returns)."""


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Consumer:
    """One consumer of one group; run :meth:`run` as a task, end it with :meth:`stop`."""

    def __init__(
        self,
        redis: aioredis.Redis,
        stream_key: str,
        sink: Sink,
        settings: CollectorSettings,
        name: str,
        metrics: RuntimeMetrics,
    ) -> None:
        self.redis = redis
        self.stream_key = stream_key
        self.dead_key = f"{stream_key}:dead"
        self.sink = sink
        self.group = sink.group
        self.settings = settings
        self.name = name
        self.metrics = metrics
        self._stopping = asyncio.Event()
        self._claim_cursor = "0-0"
        self._next_claim = 0.0
        self._count_per_read = sink.batch_size if isinstance(sink, BatchingSink) else settings.batch_size
        self._fill_seconds = sink.flush_seconds if isinstance(sink, BatchingSink) else 0.0

    async def ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.stream_key, self.group, id="0", mkstream=True)
            log.info("created consumer group %s on %s", self.group, self.stream_key)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Consume until :meth:`stop`; Redis outages are waited out with backoff."""
        backoff = 0.1
        group_ready = False
        staged = isinstance(self.sink, StagedSink)
        while not self._stopping.is_set():
            try:
                if not group_ready:
                    await self.ensure_group()
                    group_ready = True
                if staged:
                    await self._pipelined()
                else:
                    entries = await self._next_entries()
                    if entries:
                        await self.handle(entries)
                backoff = 0.1
            except (RedisError, *_TRANSIENT) as exc:
                if isinstance(exc, ResponseError) and "NOGROUP" in str(exc):
                    group_ready = False  # the stream was deleted: recreate
                log.warning("collector %s/%s: %s; retrying in %.1fs",
                            self.group, self.name, exc, backoff)  # fmt: skip
                await self._sleep(backoff)
                backoff = min(backoff * 2, 5.0)
        log.info("collector %s/%s stopped", self.group, self.name)

    async def _pipelined(self) -> None:
        """Read, send the staged batch, prepare the read one meanwhile, await the send.

        Returns on :meth:`stop` with nothing in hand; an error propagates with the
        batches in hand left pending (claimed again after ``claim_idle_ms``).
        """
        sink = self.sink
        assert isinstance(sink, StagedSink)
        held: tuple[list[tuple[str, Event]], Any, float] | None = None
        while True:
            stopping = self._stopping.is_set()
            if stopping and held is None:
                return
            # Nothing is running in Redis now. With a batch in hand, do not block:
            # an idle stream must not delay its apply.
            entries = [] if stopping else await self._next_entries(block=held is None)
            reply = None
            if held is not None:
                try:
                    reply = await sink.send(held[1])
                except Exception:
                    await self._fallback(held[0])  # transient: raises, batch stays pending
                    held = None
            nxt = None
            if entries:
                started = time.perf_counter()
                batch = await self._decode(entries)
                if batch:
                    nxt = (batch, sink.prepare(batch, [eid for eid, _ in batch]), started)
            if reply is not None and held is not None:
                try:
                    applied = await reply
                except Exception:
                    await self._fallback(held[0])
                else:
                    self._count(len(held[0]), applied)
                self.metrics.batch_seconds.labels(self.group).observe(time.perf_counter() - held[2])
            held = nxt

    async def _fallback(self, batch: list[tuple[str, Event]]) -> None:
        """A staged apply failed: redo it through :meth:`_apply` (isolating a poison
        event), or re-raise a transient error so the loop backs off."""
        await self._apply(batch)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _next_entries(self, block: bool = True) -> list[tuple[Any, Any]]:
        now = time.monotonic()
        if now >= self._next_claim:
            self._next_claim = now + max(self.settings.claim_idle_ms / 2000, 0.05)
            claimed = await self._claim()
            if claimed:
                return claimed
        count = self._count_per_read
        reply: Any = await self.redis.xreadgroup(
            self.group, self.name, {self.stream_key: ">"},
            count=count, block=self.settings.block_ms if block else None,
        )  # fmt: skip
        entries = list(reply[0][1]) if reply else []
        if entries and self._fill_seconds and len(entries) < count:
            await self._fill(entries, count)
        return entries

    async def _fill(self, entries: list[tuple[Any, Any]], count: int) -> None:
        """Read on until ``count`` entries or ``flush_seconds`` after the first (BatchingSink)."""
        deadline = time.monotonic() + self._fill_seconds
        while len(entries) < count and not self._stopping.is_set():
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0:
                return
            reply: Any = await self.redis.xreadgroup(
                self.group, self.name, {self.stream_key: ">"},
                count=count - len(entries), block=min(left_ms, self.settings.block_ms),
            )  # fmt: skip
            if reply:
                entries.extend(reply[0][1])

    async def _claim(self) -> list[tuple[Any, Any]]:
        """Dead-letter over-delivered idle entries, then XAUTOCLAIM the other idle ones."""
        idle = self.settings.claim_idle_ms
        pending: Any = await self.redis.xpending_range(
            self.stream_key, self.group, min="-", max="+",
            count=self.settings.batch_size, idle=idle,
        )  # fmt: skip
        over = [_s(p["message_id"]) for p in pending
                if p["times_delivered"] >= self.settings.max_deliveries]  # fmt: skip
        if over:
            async with self.redis.pipeline(transaction=False) as pipe:
                for eid in over:
                    pipe.xrange(self.stream_key, eid, eid)
                found = await pipe.execute()
            entries = [(eid, rows[0][1] if rows else None) for eid, rows in zip(over, found, strict=True)]
            await self.dead_letter([(eid, f, "max_deliveries") for eid, f in entries])
        reply: Any = await self.redis.xautoclaim(
            self.stream_key, self.group, self.name, min_idle_time=idle,
            start_id=self._claim_cursor, count=self.settings.batch_size,
        )  # fmt: skip
        self._claim_cursor = _s(reply[0])
        if self._claim_cursor != "0-0":
            self._next_claim = 0.0  # more to claim: keep going next round
        claimed = list(reply[1])
        if claimed:
            log.info("collector %s/%s claimed %d idle entries", self.group, self.name, len(claimed))
            self.metrics.claimed.labels(self.group).inc(len(claimed))
        return claimed

    async def handle(self, entries: list[tuple[Any, Any]]) -> None:
        """Decode, dead-letter the invalid, apply the rest (atomically with their XACK)."""
        started = time.perf_counter()
        batch = await self._decode(entries)
        if batch:
            await self._apply(batch)
        self.metrics.batch_seconds.labels(self.group).observe(time.perf_counter() - started)

    async def _decode(self, entries: list[tuple[Any, Any]]) -> list[tuple[str, Event]]:
        """The valid events of ``entries``; the others are dead-lettered (and acked)."""
        batch: list[tuple[str, Event]] = []
        rejects: list[tuple[str, dict[Any, Any] | None, str]] = []
        for eid, fields in entries:
            eid = _s(eid)
            if not fields:  # trimmed while pending: XAUTOCLAIM returns no fields
                self.metrics.trimmed_unread.labels(self.group).inc()
                rejects.append((eid, None, "trimmed"))
                continue
            event = decode(fields.get(b"event"))
            if isinstance(event, str):
                rejects.append((eid, fields, event))
            else:
                batch.append((eid, event))
        if rejects:
            await self.dead_letter(rejects)
        return batch

    async def _apply(self, batch: list[tuple[str, Event]]) -> None:
        try:
            applied = await self.sink.apply(batch, [eid for eid, _ in batch])
        except _TRANSIENT:
            self.metrics.failed.labels(self.group).inc(len(batch))
            raise
        except Exception:
            # A poison event inside a good batch: apply one by one, dead-letter the bad.
            log.exception("collector %s: batch of %d failed; isolating", self.group, len(batch))
            if len(batch) == 1:
                self.metrics.failed.labels(self.group).inc()
                raise
            for one in batch:
                try:
                    await self.sink.apply([one], [one[0]])
                except _TRANSIENT:
                    raise
                except Exception:
                    self.metrics.failed.labels(self.group).inc()
                    await self.dead_letter([(one[0], None, "apply_error")], raw=one[1])
                else:
                    self.metrics.processed.labels(self.group).inc()
            return
        self._count(len(batch), applied)

    def _count(self, n: int, applied: int) -> None:
        self.metrics.processed.labels(self.group).inc(applied)
        if applied < n:
            self.metrics.duplicates.labels(self.group).inc(n - applied)

    async def dead_letter(
        self, rejects: list[tuple[str, dict[Any, Any] | None, str]], raw: Event | None = None
    ) -> None:
        """Copy rejected entries to ``<stream>:dead`` and XACK them, in one transaction."""
        async with self.redis.pipeline(transaction=True) as pipe:
            for eid, fields, reason in rejects:
                body: Any = b""
                if fields:
                    body = fields.get(b"event", b"")
                elif raw is not None:
                    body = orjson.dumps(raw)
                pipe.xadd(
                    self.dead_key,
                    {"event": body, "reason": reason, "group": self.group, "entry": eid},
                    maxlen=self.settings.dead_letter_maxlen, approximate=True,
                )  # fmt: skip
            pipe.xack(self.stream_key, self.group, *[eid for eid, _, _ in rejects])
            await pipe.execute()
        for _, _, reason in rejects:
            self.metrics.dead_lettered.labels(self.group, reason).inc()
        log.warning("collector %s: %d entries to %s", self.group, len(rejects), self.dead_key)
