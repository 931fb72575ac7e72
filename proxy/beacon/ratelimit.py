"""Token buckets per client, bounded in memory. Pure (the clock is passed in)."""

from __future__ import annotations

from collections import OrderedDict


class TokenBuckets:
    """``allow(key, now)``: one token per call, ``rate`` tokens a second refill up to
    ``burst``. At most ``capacity`` keys are kept; the least recently seen go first
    (a forgotten client starts again with a full bucket, which errs on letting
    traffic through)."""

    def __init__(self, rate: float, burst: int, capacity: int) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._capacity = capacity
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()  # key → [tokens, last]

    def allow(self, key: str, now: float) -> bool:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._capacity:
                self._buckets.popitem(last=False)
            self._buckets[key] = [self._burst - 1.0, now]
            return True
        self._buckets.move_to_end(key)
        tokens = min(self._burst, bucket[0] + (now - bucket[1]) * self._rate)
        bucket[1] = now
        if tokens < 1.0:
            bucket[0] = tokens
            return False
        bucket[0] = tokens - 1.0
        return True
