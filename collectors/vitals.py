"""Web Vitals and beacon events from the stream, as Prometheus metrics (part of the
performance sink, :mod:`collectors.performance`).

- ``footfall_site_web_vitals_seconds`` histogram {site, route, vital}: ``lcp``,
  ``inp``, ``fcp``, ``ttfb`` of page loads, as the first-party script measured them;
  the buckets include Google's good / poor thresholds of each (0.2/0.5 s INP,
  0.8/1.8 s TTFB, 1.8/3 s FCP, 2.5/4 s LCP).
- ``footfall_site_web_vitals_cls`` histogram {site, route}: cumulative layout shift
  (unitless; good ≤ 0.1, poor > 0.25).
- ``footfall_site_beacon_events_total`` {site, kind}: events the script sent.

Routes are the events' route templates through the sink's label limiter, so the
label sets stay bounded. Events not sent by the script are ignored here.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

from collectors.events import Event

VITAL_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.0, 1.8, 2.5, 3.0, 4.0, 6.0, 10.0, 30.0)
CLS_BUCKETS = (0.01, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.0)
_MS_VITALS = ("lcp", "inp", "fcp", "ttfb")
_KINDS = frozenset({"pageview", "vitals", "engagement", "custom", "click"})


class _Buckets:
    """label tuple → [bucket counts..., sum] for fixed bucket bounds."""

    def __init__(self, bounds: tuple[float, ...], labels: list[str]) -> None:
        self.bounds = bounds
        self.labels = labels
        self.le = [*(f"{b}" for b in bounds), "+Inf"]
        self.data: dict[tuple[str, ...], list[float]] = {}

    def observe(self, key: tuple[str, ...], value: float) -> None:
        row = self.data.get(key)
        if row is None:
            row = self.data[key] = [0.0] * (len(self.bounds) + 2)
        row[bisect_left(self.bounds, value)] += 1
        row[-1] += value

    def family(self, name: str, doc: str) -> HistogramMetricFamily:
        fam = HistogramMetricFamily(name, doc, labels=self.labels)
        for key, row in self.data.items():
            cumulative, buckets = 0.0, []
            for le, n in zip(self.le, row[:-1], strict=True):
                cumulative += n
                buckets.append((le, cumulative))
            fam.add_metric(list(key), buckets, row[-1])
        return fam


class VitalsMetrics:
    def __init__(self) -> None:
        self.seconds = _Buckets(VITAL_BUCKETS, ["site", "route", "vital"])
        self.cls = _Buckets(CLS_BUCKETS, ["site", "route"])
        self.events: dict[tuple[str, str], float] = defaultdict(float)

    def observe(self, e: Event, site: str, route_label: Callable[[str], str]) -> None:
        """Account one event sent by the script (``via: beacon``); odd fields count as absent."""
        kind = e.get("kind")
        self.events[(site, kind if kind in _KINDS else "other")] += 1
        vitals = e.get("vitals")
        if kind != "vitals" or not isinstance(vitals, dict):
            return
        route = e.get("route")
        route = route_label(route) if isinstance(route, str) and route else "other"
        for name in _MS_VITALS:
            value = vitals.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
                self.seconds.observe((site, route, name), value / 1000)
        cls = vitals.get("cls")
        if isinstance(cls, int | float) and not isinstance(cls, bool) and cls >= 0:
            self.cls.observe((site, route), cls)

    def collect(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        yield self.seconds.family("footfall_site_web_vitals_seconds",
                                  "Web Vitals of page loads (LCP, INP, FCP, TTFB), first-party script.")  # fmt: skip
        yield self.cls.family("footfall_site_web_vitals_cls",
                              "Cumulative Layout Shift of page loads from the first-party script.")  # fmt: skip
        fam = CounterMetricFamily("footfall_site_beacon_events", "Events sent by the first-party script, by kind.",
                                  labels=["site", "kind"])  # fmt: skip
        for key, n in self.events.items():
            fam.add_metric(list(key), n)
        yield fam
