"""Stream-state gauges of a sharded stream: :func:`collectors.runtime_metrics.sample` per
shard key, folded into the group's gauges.

Lengths, pending entries and undelivered entries add up over the shards; the lag
in seconds is the worst shard's (an alert on lag must fire when any shard falls
behind). Counters (processed, claimed, entries trimmed…) need no
folding: each shard's reader increments the group's counters itself.
"""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import CollectorRegistry
from redis.exceptions import RedisError

from collectors.runtime_metrics import RuntimeMetrics, sample

log = logging.getLogger(__name__)

_SUMMED = ("footfall_collector_pending_entries", "footfall_collector_lag_entries")
_WORST = ("footfall_collector_lag_seconds",)


async def sample_shards(redis: Any, keys: list[str], groups: list[str], metrics: RuntimeMetrics) -> None:
    """Sample every shard into scratch gauges, then set the group's gauges once."""
    length = 0.0
    folded: dict[tuple[str, str], float] = {}
    for key in keys:
        scratch = CollectorRegistry()
        shard = RuntimeMetrics(scratch)
        try:
            await sample(redis, key, groups, shard)
        except RedisError as exc:
            if "no such key" not in str(exc):
                raise
            continue  # a shard nothing was published to yet
        length += scratch.get_sample_value("footfall_stream_length_entries") or 0.0
        for group in groups:
            for name in (*_SUMMED, *_WORST):
                value = scratch.get_sample_value(name, {"group": group})
                if value is None:
                    continue
                old = folded.get((name, group))
                if old is None:
                    folded[(name, group)] = value
                else:
                    folded[(name, group)] = old + value if name in _SUMMED else max(old, value)
    metrics.stream_length.set(length)
    gauges = {
        "footfall_collector_pending_entries": metrics.pending,
        "footfall_collector_lag_entries": metrics.lag_entries,
        "footfall_collector_lag_seconds": metrics.lag_seconds,
    }
    for (name, group), value in folded.items():
        gauges[name].labels(group).set(value)
