"""Web Vitals histograms from beacon events, in the performance sink."""

from __future__ import annotations

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from collectors.performance import PerformanceSink
from tests.collectors.conftest import settings
from tests.collectors.factory import event


def test_vitals_histograms_by_site_and_route_and_no_request_metrics(redis_client: aioredis.Redis) -> None:
    sink = PerformanceSink(redis_client, "x", settings(top_routes=2))
    registry = CollectorRegistry()
    sink.register(registry)
    beacon = {"via": "beacon", "duration_ms": 0.0, "status": 200}
    sink.observe(event(kind="vitals", route="/a", vitals={"lcp": 2400, "inp": 180, "cls": 0.12, "ttfb": 90}, **beacon))
    sink.observe(event(kind="vitals", route="/a", vitals={"lcp": 4100, "fcp": "bad", "cls": True}, **beacon))
    sink.observe(event(kind="vitals", route="/b", vitals={"lcp": 100}, **beacon))
    sink.observe(event(kind="vitals", route="/c", vitals={"lcp": 100}, **beacon))  # folded into "other"
    sink.observe(event(kind="engagement", route="/a", engaged_ms=5000, scroll_depth=50, **beacon))
    site = event()["site"]

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    lcp = {"site": site, "route": "/a", "vital": "lcp"}
    assert value("footfall_site_web_vitals_seconds_count", **lcp) == 2
    assert value("footfall_site_web_vitals_seconds_bucket", **lcp, le="2.5") == 1
    assert value("footfall_site_web_vitals_seconds_bucket", **lcp, le="4.0") == 1
    assert value("footfall_site_web_vitals_seconds_sum", **lcp) == 6.5
    assert value("footfall_site_web_vitals_seconds_count", site=site, route="/a", vital="fcp") is None
    assert value("footfall_site_web_vitals_cls_count", site=site, route="/a") == 1
    assert value("footfall_site_web_vitals_cls_bucket", site=site, route="/a", le="0.15") == 1
    assert value("footfall_site_web_vitals_seconds_count", site=site, route="other", vital="lcp") == 1
    assert value("footfall_site_beacon_events_total", site=site, kind="vitals") == 4
    assert value("footfall_site_beacon_events_total", site=site, kind="engagement") == 1
    # beacon events are not requests: no latency, no Apdex from them
    assert sink.duration.data == {} and list(sink.apdex_values()) == []
