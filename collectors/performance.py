"""The performance sink: Prometheus metrics computed from the event stream.

Exactly once, as far as in-process counters allow: a batch is observed only
after its XACK succeeded, so a failed or retried batch is never counted, and
event ids seen recently (an in-memory window of ``DEDUPE_IDS``) are skipped, so
the proxy's at-least-once retries are not counted twice. A crash loses the
in-memory counters anyway; Prometheus sees that as a counter reset, which
``rate()`` and ``increase()`` handle. Nothing is persisted on purpose.

Metrics (labels bounded: route templates only, sites and routes through a
top-N :class:`proxy.metrics.LabelLimiter` that folds the rest into ``other``):

- ``footfall_site_request_duration_seconds`` histogram {site, route, method, status_class, kind}
- ``footfall_site_upstream_duration_seconds`` histogram, same labels (TTFB)
- ``footfall_site_response_bytes_total`` {site, kind}
- ``footfall_site_errors_total`` {site, error}
- ``footfall_site_apdex`` gauge {site, route}: over the last ``apdex_window_seconds``
- Web Vitals and beacon events (``via: beacon``): see :mod:`collectors.vitals`;
  those events are not requests and count in none of the metrics above.

``kind`` is ``pageview``, ``asset`` (images, CSS, JS, fonts, media) or ``api``
(anything else), so page latency is never averaged with asset latency.
Histograms are plain bucket arrays exposed by a custom collector: observing is
one bisect and two additions, about 20 x cheaper than prometheus_client's
per-label ``observe``.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import OrderedDict, defaultdict
from collections.abc import Iterator

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from collectors.events import Event
from collectors.settings import CollectorSettings
from collectors.vitals import VitalsMetrics
from proxy.metrics import LATENCY_BUCKETS, LabelLimiter, status_class

DEDUPE_IDS = 200_000
_ASSET_PREFIXES = ("image/", "text/css", "font/", "audio/", "video/")
_ASSET_TYPES = frozenset({"application/javascript", "text/javascript", "application/font-woff",
                          "application/wasm", "image/svg+xml"})  # fmt: skip
_LE = [*(f"{b}" for b in LATENCY_BUCKETS), "+Inf"]
_HLABELS = ["site", "route", "method", "status_class", "kind"]


def request_kind(event: Event) -> str:
    """``pageview``, ``asset`` or ``api`` (see module docstring)."""
    if event.get("kind") == "pageview":
        return "pageview"
    ctype = event.get("content_type")
    if isinstance(ctype, str) and (ctype in _ASSET_TYPES or ctype.startswith(_ASSET_PREFIXES)):
        return "asset"
    return "api"


def apdex(satisfied: int, tolerating: int, total: int) -> float | None:
    return (satisfied + tolerating / 2) / total if total else None


class _Histograms:
    """label tuple → [bucket counts..., sum]; cumulative only when exposed."""

    def __init__(self) -> None:
        self.data: dict[tuple[str, ...], list[float]] = {}

    def observe(self, labels: tuple[str, ...], seconds: float) -> None:
        row = self.data.get(labels)
        if row is None:
            row = self.data[labels] = [0.0] * (len(LATENCY_BUCKETS) + 2)
        row[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        row[-1] += seconds

    def family(self, name: str, doc: str) -> HistogramMetricFamily:
        fam = HistogramMetricFamily(name, doc, labels=_HLABELS)
        for labels, row in self.data.items():
            cumulative, buckets = 0.0, []
            for le, n in zip(_LE, row[:-1], strict=True):
                cumulative += n
                buckets.append((le, cumulative))
            fam.add_metric(list(labels), buckets, row[-1])
        return fam


class PerformanceSink(Collector):
    """Consumer group ``performance``; register on a registry to expose the metrics."""

    group = "performance"

    def __init__(self, redis: aioredis.Redis, stream_key: str, settings: CollectorSettings):
        self.redis = redis
        self.stream_key = stream_key
        self.apdex_t = settings.apdex_threshold_ms
        self.window = settings.apdex_window_seconds
        self.slot = max(1, self.window // 30)  # the window slides in 30 steps
        self.site_label = LabelLimiter(settings.top_sites)
        self.route_label = LabelLimiter(settings.top_routes)
        self.duration = _Histograms()
        self.upstream = _Histograms()
        self.bytes: dict[tuple[str, str], float] = defaultdict(float)
        self.errors: dict[tuple[str, str], float] = defaultdict(float)
        # (site, route) → slot → [satisfied, tolerating, total]
        self.apdex_slots: dict[tuple[str, str], dict[int, list[int]]] = defaultdict(dict)
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.vitals = VitalsMetrics()

    def register(self, registry: CollectorRegistry) -> PerformanceSink:
        registry.register(self)
        return self

    async def apply(self, batch: list[tuple[str, Event]], acks: list[str]) -> int:
        """XACK ``acks`` first; observe the events only once that succeeded."""
        if acks:
            await self.redis.xack(self.stream_key, self.group, *acks)
        applied = 0
        for _, event in batch:
            eid = event["id"]
            if eid in self._seen:
                continue
            self._seen[eid] = None
            if len(self._seen) > DEDUPE_IDS:
                self._seen.popitem(last=False)
            self.observe(event)
            applied += 1
        return applied

    def observe(self, e: Event) -> None:
        """Account one event (pure in-memory; errors in odd fields count as absent)."""
        site = self.site_label(e["site"])
        if e.get("via") == "beacon":
            self.vitals.observe(e, site, self.route_label)
            return
        route = e.get("route")
        route = self.route_label(route) if isinstance(route, str) and route else "other"
        status = e.get("status")
        status = status if isinstance(status, int) else 0
        kind = request_kind(e)
        method = e.get("method")
        method = method if method in _METHODS else "other"
        labels = (site, route, method, status_class(status), kind)
        duration = e.get("duration_ms")
        if isinstance(duration, int | float):
            self.duration.observe(labels, duration / 1000)
        upstream = e.get("upstream_ms")
        if isinstance(upstream, int | float):
            self.upstream.observe(labels, upstream / 1000)
        out = e.get("bytes_out")
        if isinstance(out, int):
            self.bytes[(site, kind)] += out
        error = e.get("error")
        failed = bool(error) or status >= 500
        if failed:
            self.errors[(site, error if isinstance(error, str) and error in _ERRORS
                         else ("other" if error else "http_5xx"))] += 1  # fmt: skip
        if isinstance(duration, int | float):
            slots = self.apdex_slots[(site, route)]
            slot = int(e["ts"]) // self.slot
            row = slots.get(slot)
            if row is None:
                row = slots[slot] = [0, 0, 0]
                self._prune(slots, slot)
            row[2] += 1
            if not failed:
                if duration <= self.apdex_t:
                    row[0] += 1
                elif duration <= 4 * self.apdex_t:
                    row[1] += 1

    def _prune(self, slots: dict[int, list[int]], newest: int) -> None:
        oldest = newest - self.window // self.slot
        for s in [s for s in slots if s < oldest]:
            del slots[s]

    def apdex_values(self, now: float | None = None) -> Iterator[tuple[str, str, float]]:
        """(site, route, score) over the window ending at ``now`` (wall clock)."""
        now = time.time() if now is None else now
        oldest = int(now - self.window) // self.slot
        for (site, route), slots in self.apdex_slots.items():
            s = t = n = 0
            for slot, row in slots.items():
                if slot > oldest:
                    s, t, n = s + row[0], t + row[1], n + row[2]
            score = apdex(s, t, n)
            if score is not None:
                yield site, route, score

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
        yield self.duration.family("footfall_site_request_duration_seconds",
                                   "Request duration seen by clients, from the event stream.")  # fmt: skip
        yield self.upstream.family("footfall_site_upstream_duration_seconds",
                                   "Upstream time to response headers (TTFB), from the stream.")  # fmt: skip
        out = CounterMetricFamily("footfall_site_response_bytes",
                                  "Response body bytes sent, from the stream.",
                                  labels=["site", "kind"])  # fmt: skip
        for key, n in self.bytes.items():
            out.add_metric(list(key), n)
        yield out
        err = CounterMetricFamily("footfall_site_errors", "Failed exchanges by error type.",
                                  labels=["site", "error"])  # fmt: skip
        for key, n in self.errors.items():
            err.add_metric(list(key), n)
        yield err
        gauge = GaugeMetricFamily("footfall_site_apdex",
                                  f"Apdex (T={self.apdex_t:g} ms, errors frustrated) over "
                                  f"the last {self.window} s.", labels=["site", "route"])  # fmt: skip
        for site, route, score in self.apdex_values():
            gauge.add_metric([site, route], score)
        yield gauge
        yield from self.vitals.collect()


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_ERRORS = frozenset({"upstream_connect", "upstream_timeout", "client_disconnect",
                     "upstream_reset", "upstream_tls", "body_too_large"})  # fmt: skip
