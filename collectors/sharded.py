"""One group's consumer on a sharded stream: a :class:`Consumer` per leased shard.

The group reads every shard; this process reads the shards whose lease it holds
(:mod:`collectors.leases`). Every ``ttl / 3`` the coordinator heartbeats, computes
the shards assigned to it, and:

- stops the readers of shards no longer assigned, waits for their batch in hand
  (applied and acked), then releases those leases;
- renews the leases it keeps; one it failed to renew (taken, or Redis
  unreachable for half the TTL) has its reader stopped at once;
- takes the free leases of newly assigned shards and starts a reader on each.

Each reader is the ordinary :class:`collectors.runtime.Consumer` on one shard
key, so pending-entry claiming (a dead consumer's entries are claimed after
``claim_idle_ms``), dead letters (``<shard key>:dead``, same slot as the shard)
and trim accounting all work per shard, unchanged.

A reader is stopped before its lease can lapse: its lease is given up (or left
to expire) only after its task ended, and the TTL (default 10 s) is far above
the renewal period plus one batch and one ``block_ms``. Leases are not fenced:
a process frozen for longer than the TTL (a stopped VM, SIGSTOP) may read one
more batch of a shard that another consumer leased meanwhile before it notices.
Both readers still get distinct entries (XREADGROUP), every entry is applied
at least once, and sinks dedupe by event id; only that visitor's event order
can be off for that batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
from typing import Any

from redis.exceptions import RedisError

from collectors.leases import Leases, assignment
from collectors.runtime import Consumer, Sink
from collectors.runtime_metrics import RuntimeMetrics
from collectors.settings import CollectorSettings
from proxy.tasks import spawn

log = logging.getLogger(__name__)
LEASE_TTL_MS = 10_000
READER_STOP_TIMEOUT = 10.0


def shard_view(sink: Sink, shard_key: str) -> Sink:
    """The sink as the reader of ``shard_key`` uses it: acking on that key.

    A sink acks on its ``stream_key``. One that defines ``for_stream(key)`` says
    itself how to view another key; otherwise the view is a shallow copy with
    ``stream_key`` replaced, sharing the sink's state (its containers), which
    suits sinks whose state lives in mutable containers or in a store.
    """
    for_stream = getattr(sink, "for_stream", None)
    if for_stream is not None:
        view: Sink = for_stream(shard_key)
        return view
    view = copy.copy(sink)
    view.stream_key = shard_key  # type: ignore[attr-defined]
    return view


class ShardedConsumer:
    """Same surface as :class:`Consumer` (``group``, ``ensure_group``, ``run``, ``stop``)."""

    def __init__(
        self,
        redis: Any,
        stream_key: str,
        shard_keys: list[str],
        sink: Sink,
        settings: CollectorSettings,
        name: str,
        metrics: RuntimeMetrics,
        lease_ttl_ms: int = LEASE_TTL_MS,
    ) -> None:
        self.redis = redis
        self.shard_keys = shard_keys
        self.sink = sink
        self.group = sink.group
        self.settings = settings
        self.name = name
        self.metrics = metrics
        self.leases = Leases(redis, stream_key, sink.group, name, lease_ttl_ms)
        self._period = lease_ttl_ms / 3000
        self._readers: dict[int, tuple[Consumer, asyncio.Task[None]]] = {}
        self._renewed: dict[int, float] = {}  # shard -> monotonic time of the last renewal
        self._stopping = asyncio.Event()
        self._round_problem: str | None = "starting"

    @property
    def ready(self) -> bool:
        """The last lease round succeeded and every shard reader is consuming."""
        return self._round_problem is None and all(c.ready for c, _ in self._readers.values())

    @property
    def problem(self) -> str:
        """Why not :attr:`ready` (for ``/readyz``), or ``""``."""
        if self._round_problem is not None:
            return self._round_problem
        return "; ".join(f"shard {i}: {c.problem}" for i, (c, _) in sorted(self._readers.items()) if not c.ready)

    @property
    def reading(self) -> set[int]:
        """The shards this process reads now."""
        return {i for i, (_, task) in self._readers.items() if not task.done()}

    def _reader(self, shard: int) -> Consumer:
        key = self.shard_keys[shard]
        return Consumer(self.redis, key, shard_view(self.sink, key), self.settings, self.name, self.metrics)

    async def ensure_group(self) -> None:
        for i in range(len(self.shard_keys)):
            await self._reader(i).ensure_group()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Coordinate until :meth:`stop`; then stop the readers, release, leave."""
        try:
            while not self._stopping.is_set():
                try:
                    await self._round()
                    self._round_problem = None
                except RedisError as exc:
                    self._round_problem = f"lease round failed: {exc}"
                    log.warning("collector %s/%s: lease round failed: %s", self.group, self.name, exc)
                    self._stop_unrenewed()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self._period)
        finally:
            for shard in list(self._readers):
                await self._stop_reader(shard)
            with contextlib.suppress(RedisError):
                for shard in list(self._renewed):
                    await self.leases.release(self.shard_keys[shard])
                await self.leases.leave()
            self._renewed.clear()
            log.info("collector %s/%s stopped (sharded)", self.group, self.name)

    async def _round(self) -> None:
        members = await self.leases.heartbeat()
        want = assignment(len(self.shard_keys), members, self.name)
        for shard in sorted(set(self._renewed) - want):
            await self._stop_reader(shard)
            await self.leases.release(self.shard_keys[shard])
            del self._renewed[shard]
            log.info("collector %s/%s handed shard %d over", self.group, self.name, shard)
        for shard in sorted(want):
            key = self.shard_keys[shard]
            held = shard in self._renewed
            started = time.monotonic()
            ok = await (self.leases.renew(key) if held else self.leases.acquire(key))
            if ok:
                self._renewed[shard] = started
                reader = self._readers.get(shard)
                if reader is None or reader[1].done():
                    self._start_reader(shard)
            elif held:
                log.warning("collector %s/%s lost the lease of shard %d", self.group, self.name, shard)
                del self._renewed[shard]
                await self._stop_reader(shard)

    def _stop_unrenewed(self) -> None:
        """Redis is unreachable: stop reading shards whose lease may lapse before it is back."""
        limit = time.monotonic() - self.leases.ttl_ms / 2000
        for shard, renewed in list(self._renewed.items()):
            if renewed < limit and shard in self._readers:
                self._readers[shard][0].stop()
                del self._renewed[shard]

    def _start_reader(self, shard: int) -> None:
        consumer = self._reader(shard)
        task = spawn(consumer.run(), name=f"collector-{self.group}-shard-{shard}")
        self._readers[shard] = (consumer, task)
        log.info("collector %s/%s reading shard %d (%s)", self.group, self.name, shard, consumer.stream_key)

    async def _stop_reader(self, shard: int) -> None:
        reader = self._readers.pop(shard, None)
        if reader is None:
            return
        consumer, task = reader
        consumer.stop()
        _, late = await asyncio.wait([task], timeout=READER_STOP_TIMEOUT)
        for t in late:
            t.cancel()
        await asyncio.gather(task, return_exceptions=True)
