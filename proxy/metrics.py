"""Prometheus metrics of the proxy process (served on the admin port's ``/metrics``).

Names follow DESIGN.md 3.4. Label values are bounded: ``route`` is a template or a
collapsed path, and every free-form label goes through a :class:`LabelLimiter`.
Per-request metrics are observed in the publisher's flush task from the built
events, not on the response path.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Latency buckets in seconds: sub-millisecond resolution for a proxy hop.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
OTHER = "other"


class LabelLimiter:
    """Admit the first ``limit`` distinct values of a label; fold the rest into ``other``.

    Keeps a Prometheus label bounded whatever the traffic sends (Host headers,
    paths); the first values seen are the busiest ones in practice.
    """

    __slots__ = ("_limit", "_seen")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        if len(self._seen) < self._limit:
            self._seen.add(value)
            return value
        return OTHER


def status_class(status: int) -> str:
    return f"{status // 100}xx" if 100 <= status < 600 else "other"


class ProxyMetrics:
    """All metrics of one proxy process, on their own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry if registry is not None else CollectorRegistry()
        self.request_duration = Histogram(
            "footfall_http_request_duration_seconds",
            "Time from request received to last response byte sent.",
            ["site", "route", "method", "status_class"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_duration = Histogram(
            "footfall_upstream_duration_seconds",
            "Time from upstream request sent to upstream response headers (TTFB).",
            ["site"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.responses = Counter(
            "footfall_http_responses_total",
            "Responses sent to clients, by status code.",
            ["site", "status"],
            registry=r,
        )
        self.response_bytes = Counter(
            "footfall_http_response_bytes_total",
            "Response body bytes sent to clients.",
            ["site"],
            registry=r,
        )
        self.errors = Counter(
            "footfall_http_errors_total",
            "Exchanges that ended in an error, by error type.",
            ["site", "error"],
            registry=r,
        )
        self.refused = Counter(
            "footfall_http_refused_total",
            "Requests refused before forwarding (unknown host, bad target, limits).",
            ["reason"],
            registry=r,
        )
        self.in_flight = Gauge(
            "footfall_http_requests_in_flight",
            "Requests being proxied right now.",
            multiprocess_mode="livesum",
            registry=r,
        )
        self.events_published = Counter(
            "footfall_events_published_total",
            "Events acknowledged by Redis (XADD), including spool replays.",
            registry=r,
        )
        self.events_dropped = Counter(
            "footfall_events_dropped_total",
            "Events lost, by reason (buffer_full, spool_full, spool_error, build_error, shutdown, spool_torn).",
            ["reason"],
            registry=r,
        )
        self.events_spooled = Counter(
            "footfall_events_spooled_total",
            "Events written to the on-disk spool because Redis was unavailable or slow.",
            registry=r,
        )
        self.buffer_depth = Gauge(
            "footfall_event_buffer_depth",
            "Exchanges waiting in the in-memory buffer.",
            multiprocess_mode="livesum",
            registry=r,
        )
        self.spool_bytes = Gauge(
            "footfall_spool_bytes",
            "Bytes of events waiting in the on-disk spool.",
            multiprocess_mode="livesum",
            registry=r,
        )
        self.redis_errors = Counter(
            "footfall_redis_errors_total",
            "Failed Redis operations of the publisher, by kind (connect, timeout, reply).",
            ["kind"],
            registry=r,
        )
        self.flush_duration = Histogram(
            "footfall_publish_flush_duration_seconds",
            "Time to build, encode and write one batch of events.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.site_label = LabelLimiter(100)
        self.route_label = LabelLimiter(500)
        # Pre-create the drop reasons so a dashboard sees zeros, not absent series.
        for reason in ("buffer_full", "spool_full", "spool_error", "build_error", "shutdown", "spool_torn"):
            self.events_dropped.labels(reason)
