"""Runtime metrics of the consumer groups, and the task that samples stream state.

Counters are incremented by :mod:`collectors.runtime`; gauges (lag, pending,
stream length) are sampled every few seconds by :func:`monitor` from
``XINFO GROUPS`` and ``XRANGE``, so they are right even for consumers in other
processes.

Trimming: ``MAXLEN ~ N`` drops the oldest entries whatever the groups have read.
``footfall_collector_entries_trimmed_total{group, state}`` counts, cumulatively,
the entries lost that way: ``pending`` (delivered, not acknowledged) and
``unread`` (never delivered; Redis >= 7), see :mod:`collectors.trimming`. Any
increase is lost data: alert on it. Size N as peak events/s x the longest
collector outage to ride out (see README.md "Collectors").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


class RuntimeMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        g = ["group"]
        self.processed = Counter("footfall_collector_events_processed_total",
                                 "Events applied and acknowledged.", g, registry=r)  # fmt: skip
        self.failed = Counter("footfall_collector_events_failed_total",
                              "Events whose apply failed (left pending, retried).", g, registry=r)  # fmt: skip
        self.dead_lettered = Counter(
            "footfall_collector_events_dead_lettered_total",
            "Entries moved to the dead-letter stream, by reason "
            "(bad_json, not_v1, missing_fields, max_deliveries, apply_error, trimmed).",
            ["group", "reason"], registry=r,
        )  # fmt: skip
        self.duplicates = Counter("footfall_collector_events_duplicate_total",
                                  "Events skipped because their id was already applied.",
                                  g, registry=r)  # fmt: skip
        self.claimed = Counter("footfall_collector_entries_claimed_total",
                               "Idle pending entries claimed from a (dead) consumer.",
                               g, registry=r)  # fmt: skip
        self.entries_trimmed = Counter(
            "footfall_collector_entries_trimmed_total",
            "Entries trimmed from the stream (MAXLEN) before the group applied them: "
            "state=pending (delivered, not acknowledged) or unread (never delivered).",
            ["group", "state"], registry=r,
        )  # fmt: skip
        self.lag_seconds = Gauge("footfall_collector_lag_seconds",
                                 "Age of the oldest entry not yet delivered to the group.",
                                 g, registry=r)  # fmt: skip
        self.lag_entries = Gauge("footfall_collector_lag_entries",
                                 "Entries not yet delivered to the group (Redis >= 7 only).",
                                 g, registry=r)  # fmt: skip
        self.pending = Gauge("footfall_collector_pending_entries",
                             "Entries delivered but not acknowledged.", g, registry=r)  # fmt: skip
        self.stream_length = Gauge("footfall_stream_length_entries",
                                   "Entries in the event stream.", registry=r)  # fmt: skip
        self.batch_seconds = Histogram(
            "footfall_collector_batch_duration_seconds", "Time to apply one batch.", g,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )  # fmt: skip


def _id_tuple(entry_id: Any) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


async def sample(redis: aioredis.Redis, stream_key: str, groups: list[str],
                 metrics: RuntimeMetrics) -> None:  # fmt: skip
    """Read group and stream state once into the gauges."""
    infos: dict[str, Any] = {}
    groups_info: Any = await redis.xinfo_groups(stream_key)
    for info in groups_info:
        name = info["name"].decode() if isinstance(info["name"], bytes) else info["name"]
        infos[name] = info
    async with redis.pipeline(transaction=False) as pipe:
        pipe.xlen(stream_key)
        for group in groups:
            last = infos.get(group, {}).get("last-delivered-id", b"0-0")
            pipe.xrange(stream_key, b"(" + (last if isinstance(last, bytes) else last.encode()),
                        "+", count=1)  # fmt: skip
        length, *unread = await pipe.execute()
    metrics.stream_length.set(length)
    now_ms = time.time() * 1000
    for group, oldest in zip(groups, unread, strict=True):
        info = infos.get(group)
        if info is None:
            continue
        metrics.pending.labels(group).set(info.get("pending", 0))
        if info.get("lag") is not None:
            metrics.lag_entries.labels(group).set(info["lag"])
        lag = max(0.0, (now_ms - _id_tuple(oldest[0][0])[0]) / 1000) if oldest else 0.0
        metrics.lag_seconds.labels(group).set(lag)


async def every(sample: Callable[[], Awaitable[None]], stop: asyncio.Event, interval: float = 5.0) -> None:
    """``await sample()`` every ``interval`` s until ``stop`` is set; a Redis error skips one
    sample (:func:`sample` for one stream key, ``shard_monitor.sample_shards`` for shards).

    Ended by the event rather than by cancellation: redis-py may swallow a
    cancellation that lands inside a command.
    """
    while not stop.is_set():
        try:
            await sample()
        except RedisError as exc:
            log.debug("stream sampling failed: %s", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
