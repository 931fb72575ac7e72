"""Performance metrics from the stream: histogram counts, errors, Apdex."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from prometheus_client import generate_latest

from collectors.performance import PerformanceSink, apdex, request_kind
from tests.collectors.conftest import ServiceFactory, drained, settings
from tests.collectors.factory import event, xadd_events
from tests.collectors.population import SITE, population

H = "footfall_site_request_duration_seconds"


@pytest.mark.parametrize(
    ("fields", "kind"),
    [({"kind": "pageview"}, "pageview"), ({"kind": "request", "content_type": "text/css"}, "asset"),
     ({"kind": "request", "content_type": "image/png"}, "asset"),
     ({"kind": "request", "content_type": "application/json"}, "api"),
     ({"kind": "request", "content_type": None}, "api")],
)  # fmt: skip
def test_request_kind(fields: dict[str, object], kind: str) -> None:
    assert request_kind(fields) == kind


@pytest.mark.parametrize(("s", "t", "n", "score"), [(8, 2, 10, 0.9), (0, 0, 4, 0.0), (0, 0, 0, None)])
def test_apdex(s: int, t: int, n: int, score: float | None) -> None:
    assert apdex(s, t, n) == score


def test_apdex_window_and_route_limit(redis_client: aioredis.Redis) -> None:
    sink = PerformanceSink(redis_client, "x", settings(apdex_threshold_ms=100, top_routes=2))
    now = 1_800_000_000.0
    for ms, route in [(50, "/a"), (150, "/a"), (900, "/a"), (20, "/b"), (20, "/c"), (20, "/d")]:
        sink.observe(event(ts=now - 10, duration_ms=ms, route=route))
    sink.observe(event(ts=now - 1000, duration_ms=5000, route="/a"))  # outside the window
    scores = {route: score for _, route, score in sink.apdex_values(now)}
    assert scores == {"/a": 0.5, "/b": 1.0, "other": 1.0}  # (1 + 1/2) / 3; /c, /d folded


async def test_histograms_from_the_population(
    redis_client: aioredis.Redis, start_service: ServiceFactory
) -> None:
    events = population()
    await xadd_events(redis_client, events + events[:3])  # duplicates count once
    service = await start_service(frozenset({"performance"}), batch_size=5)
    await drained(redis_client, ("performance",))
    r = service.registry

    def count(**labels: str) -> float:
        total = 0.0
        for metric in r.collect():
            for sample in metric.samples:
                if sample.name == f"{H}_count" and labels.items() <= sample.labels.items():
                    total += sample.value
        return total

    assert count(kind="pageview") == 12  # ten pageviews and two bot hits
    assert count(kind="asset") == 1
    assert count(kind="api", method="POST", status_class="3xx") == 1
    assert count(route="/", kind="pageview") == 4
    assert count(route="/blog/{slug}", status_class="5xx") == 1
    le = r.get_sample_value(f"{H}_bucket", {"site": SITE, "route": "/blog/{slug}", "method": "GET",
                                            "status_class": "2xx", "kind": "pageview", "le": "0.1"})  # fmt: skip
    assert le == 2
    assert r.get_sample_value("footfall_site_errors_total", {"site": SITE, "error": "http_5xx"}) == 1
    assert r.get_sample_value("footfall_collector_events_processed_total",
                              {"group": "performance"}) == len(events)  # fmt: skip
    assert b"footfall_site_upstream_duration_seconds_bucket" in generate_latest(r)
