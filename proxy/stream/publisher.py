"""The publisher: bounded buffer → batched XADD to the stream, or the on-disk spool.

Flow. ``submit()`` appends to an in-memory deque (O(1), never awaits). One flush
task wakes when a batch is full or every ``flush_interval_ms``, takes up to
``batch_size`` items, turns them into payloads with ``prepare`` and sends them
with one pipelined XADD (:mod:`proxy.stream.rediswire`). If Redis fails or is slow
(``redis_timeout_seconds``) the batch goes to the spool (:mod:`proxy.stream.spool`).
While the spool holds anything, new batches are appended to it too, and it is
replayed oldest first, one chunk per step, so the stream keeps the order.

Full buffer policy ("overflow to disk"): above half of ``buffer_size`` the flush
task is behind, so it stops waiting on Redis (no replay, no XADD) and sends
batches straight to the spool, which only costs a disk write. Items are dropped
(``buffer_full``) only when the buffer is full anyway, i.e. when preparing and
spooling cannot keep up with the traffic; the spool drops (``spool_full``) only
when it is at ``spool_max_bytes``, and (``spool_error``) when the disk write
fails (disk full, I/O error, directory gone). Every drop is counted in
``footfall_events_dropped_total``; ``submit`` never raises.

Delivery is at-least-once: a batch whose XADD failed half-way is spooled and
sent again (consumers dedupe on the event id). A dead Redis never slows the
site: connecting happens in a separate task with backoff (0.1 s doubling to
5 s), and the flush task never waits on Redis longer than the timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Generic, TypeVar

from proxy.metrics import ProxyMetrics
from proxy.settings import PublisherSettings
from proxy.stream.cluster import StreamWire
from proxy.stream.rediswire import RedisWire, WireError
from proxy.stream.spool import Spool
from proxy.tasks import spawn

log = logging.getLogger(__name__)
T = TypeVar("T")

BACKOFF_MIN_SECONDS = 0.1
BACKOFF_MAX_SECONDS = 5.0


class Publisher(Generic[T]):
    """Owns the buffer, the spool and the Redis connection of one proxy process."""

    def __init__(
        self,
        *,
        redis_url: str,
        stream_key: str,
        maxlen: int,
        settings: PublisherSettings,
        spool_dir: Path,
        metrics: ProxyMetrics,
        prepare: Callable[[list[T]], Awaitable[list[bytes]]],
        connect: Callable[[], Awaitable[StreamWire]] | None = None,
    ) -> None:
        self._url = redis_url
        self._key = stream_key
        self._maxlen = maxlen
        self._settings = settings
        self._metrics = metrics
        self._prepare = prepare
        # The sharded / Redis Cluster wire (proxy.stream.cluster.connect_stream), else one node.
        self._connect = connect or (lambda: RedisWire.connect(redis_url, settings.redis_timeout_seconds))
        self._spool = Spool(
            spool_dir,
            max_bytes=settings.spool_max_bytes,
            segment_bytes=settings.spool_segment_bytes,
        )
        self._buffer: deque[T] = deque()
        self._capacity = settings.buffer_size
        self._high_water = max(settings.batch_size, settings.buffer_size // 2)
        self._batch = settings.batch_size
        self._interval = settings.flush_interval_ms / 1000.0
        self._timeout = settings.redis_timeout_seconds
        self._wire: StreamWire | None = None
        self._wake = asyncio.Event()
        self._accepting = True  # items submitted before start() wait in the buffer
        self._replay_stalled = False
        self._closing = False
        self._flush_task: asyncio.Task[None] | None = None
        self._connect_task: asyncio.Task[None] | None = None
        self._torn_counted = 0
        # Totals for the shutdown log line.
        self.published = 0
        self.spooled = 0
        self.dropped = 0

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Open the spool (raises ``SpoolLocked``), try Redis once, start the flush task.

        Redis being down is not fatal: events go to the spool until it is back.
        """
        self._spool.open()
        self._metrics.spool_bytes.set(self._spool.pending_bytes)
        try:
            self._wire = await self._connect()
        except WireError as exc:
            self._metrics.redis_errors.labels(exc.kind).inc()
            log.warning("Redis unavailable at start (%s); spooling events until it is back", exc)
            self._reconnect()
        self._flush_task = spawn(self._run(), name="publisher-flush")

    async def close(self) -> None:
        """Stop accepting, drain the buffer to Redis or else the spool, fsync, log counts.

        Whatever is left in the spool is replayed by the next process on this data dir.
        """
        if self._closing:
            return
        self._accepting = False
        self._closing = True
        self._wake.set()
        if self._flush_task is not None:
            # The flush task ends by itself once the buffer is empty.
            await asyncio.shield(self._flush_task)
        if self._connect_task is not None:
            self._connect_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connect_task
        if self._wire is not None:
            self._wire.close()
            self._wire = None
        self._spool.close()
        self._metrics.buffer_depth.set(len(self._buffer))
        log.info(
            "publisher closed: %d published, %d spooled, %d dropped; %d bytes left in the spool",
            self.published, self.spooled, self.dropped, self._spool.pending_bytes,
        )  # fmt: skip

    def ready(self) -> bool:
        """True when events are safe: Redis is connected, or the spool has room and
        its last write did not fail."""
        if self._closing:
            return False
        return self._wire is not None or self._spool.writable()

    # -- the hot path ----------------------------------------------------------------

    def submit(self, item: T) -> None:
        """Queue one item for publishing. O(1), never awaits, never raises.

        Dropped and counted (``buffer_full``) only when the buffer is at
        ``buffer_size``, or (``shutdown``) after ``close()`` began.
        """
        buf = self._buffer
        if len(buf) >= self._capacity or not self._accepting:
            self._drop(1, "buffer_full" if self._accepting else "shutdown")
            return
        buf.append(item)
        if len(buf) >= self._batch and not self._wake.is_set():
            self._wake.set()

    # -- the flush task --------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            if not self._buffer:
                if self._closing:
                    return
                if self._replay_stalled or not (self._spool and self._wire is not None):
                    # Nothing to replay either: sleep until a batch fills or the interval.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self._interval):
                            await self._wake.wait()
            self._wake.clear()
            if len(self._buffer) < self._batch and not self._closing:
                # Woken early by replay work or a partial batch: let it fill a little.
                await asyncio.sleep(0)
            try:
                await self._step()
            except Exception:
                # A bug here must not stop publishing: log, keep the loop alive.
                log.exception("publisher flush step failed")
                await asyncio.sleep(self._interval)

    async def _step(self) -> None:
        """One round: flush one batch of new items, then replay one chunk of the spool."""
        # At close the traffic has stopped: send to Redis, the site's latency is moot.
        behind = len(self._buffer) > self._high_water and not self._closing
        if self._buffer:
            started = time.perf_counter()
            n = min(self._batch, len(self._buffer))
            items = [self._buffer.popleft() for _ in range(n)]
            self._metrics.buffer_depth.set(len(self._buffer))
            try:
                payloads = await self._prepare(items)
            except Exception:
                log.exception("building %d events failed; dropped", n)
                self._drop(n, "build_error")
                payloads = []
            # While the spool holds anything, new payloads queue behind it (order).
            direct = payloads and not (self._spool or self._wire is None or behind)
            if direct and await self._send(payloads):
                pass
            elif payloads:
                self._to_spool(payloads)
            self._metrics.flush_duration.observe(time.perf_counter() - started)
        if self._spool and self._wire is not None and not behind and not self._closing:
            await self._replay_chunk()
        self._count_torn()

    async def _send(self, payloads: list[bytes]) -> bool:
        wire = self._wire
        if wire is None:
            return False
        try:
            await wire.xadd_many(self._key, self._maxlen, payloads, timeout=self._timeout)
        except WireError as exc:
            self._lost_connection(exc)
            return False
        self._metrics.events_published.inc(len(payloads))
        self.published += len(payloads)
        return True

    async def _replay_chunk(self) -> None:
        records, token = self._spool.read_chunk(self._batch)
        if records and not await self._send(records):
            return  # cursor unchanged: the chunk is sent again later
        # No progress (nothing readable yet): don't spin; wait for the next interval.
        self._replay_stalled = not records and token == self._spool.cursor
        self._spool.commit(token)
        self._metrics.spool_bytes.set(self._spool.pending_bytes)
        if not self._spool:
            log.info("spool replayed; publishing directly to Redis again")

    def _to_spool(self, payloads: list[bytes]) -> None:
        not_written = self._spool.append(payloads)
        written = len(payloads) - not_written
        if written:
            self._metrics.events_spooled.inc(written)
            self.spooled += written
        if not_written:
            self._drop(not_written, "spool_error" if self._spool.failing else "spool_full")
        self._metrics.spool_bytes.set(self._spool.pending_bytes)

    def _drop(self, n: int, reason: str) -> None:
        self._metrics.events_dropped.labels(reason).inc(n)
        self.dropped += n

    def _count_torn(self) -> None:
        torn = self._spool.torn_records - self._torn_counted
        if torn:
            self._torn_counted += torn
            self._drop(torn, "spool_torn")

    # -- connection ------------------------------------------------------------------

    def _lost_connection(self, exc: WireError) -> None:
        self._metrics.redis_errors.labels(exc.kind).inc()
        log.warning("publishing to Redis failed (%s); spooling until it is back", exc)
        if self._wire is not None:
            self._wire.close()
            self._wire = None
        self._reconnect()

    def _reconnect(self) -> None:
        if self._closing or (self._connect_task is not None and not self._connect_task.done()):
            return
        self._connect_task = spawn(self._connect_loop(), name="publisher-reconnect")

    async def _connect_loop(self) -> None:
        delay = BACKOFF_MIN_SECONDS
        while not self._closing:
            await asyncio.sleep(delay)
            try:
                wire = await self._connect()
            except WireError as exc:
                self._metrics.redis_errors.labels(exc.kind).inc()
                log.debug("Redis still unavailable: %s", exc)
                delay = min(delay * 2, BACKOFF_MAX_SECONDS)
                continue
            if self._closing:
                wire.close()
                return
            self._wire = wire
            log.info("Redis is back at %s", self._url)
            self._wake.set()  # replay the spool now
            return
