"""The demo's background visitors: what a plan contains (pure, seeded) and how fast
``drive`` sends it (real sockets, bounded)."""

from __future__ import annotations

import asyncio
import collections
import random
import statistics
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from aiohttp import web

from proxy.demo import DEMO_FUNNELS, DEMO_GOALS, demo_settings, site_host, traffic_base
from proxy.demo_traffic import SOURCES, drive, headers, plan_visit
from proxy.settings import load
from proxy.tasks import spawn


def visits(n: int = 600) -> list[Any]:
    rng = random.Random(1)
    return [plan_visit(rng) for _ in range(n)]


def test_a_few_hundred_visits_fill_every_panel() -> None:
    plans = visits()
    steps = [s for v in plans for s in v.steps]
    paths = collections.Counter(s.path.split("?")[0] for s in steps)
    landing = [v.steps[0] for v in plans]
    assert {s.referer for s in landing} >= {r for _, r, _ in SOURCES}  # every source, direct included
    assert {q for _, _, q in SOURCES if q} <= {s.path.partition("?")[2] for s in landing}  # every campaign
    assert len({v.user_agent for v in plans}) >= 6 and len({v.country for v in plans}) >= 8
    assert paths["/checkout"] >= 30 and paths["/cart"] >= 30  # the goals and the funnel
    assert paths["/slow"] > 0 and paths["/broken"] > 0  # latency and errors
    assert paths["/static/style.css"] > 0 and any(p.startswith("/api/price/") for p in paths)
    assert len({v.visitor for v in plans}) < len(plans)  # returning visitors
    assert all(1 <= len(v.steps) <= 12 for v in plans)
    blocked = sum(v.blocks_script for v in plans) / len(plans)  # the beacon's coverage is not 100 %
    assert 0.08 < blocked < 0.25, blocked


def test_plans_are_deterministic_for_a_seed() -> None:
    assert visits(50) == visits(50)


@pytest.mark.parametrize(
    ("navigation", "expected"),
    [(True, {"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}),
     (False, {"Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"})],  # fmt: skip
)
def test_headers_look_like_a_browser(navigation: bool, expected: dict[str, str]) -> None:
    visit = next(v for v in visits() if any(s.navigation is navigation and s.referer for s in v.steps))
    step = next(s for s in visit.steps if s.navigation is navigation and s.referer)
    out = headers(visit, step, "127.0.0.1", "203.0.113.9")
    assert out.items() >= expected.items()
    assert out["User-Agent"] == visit.user_agent and out["CF-IPCountry"] == visit.country
    assert "{host}" not in out["Referer"]


@pytest.mark.parametrize(
    ("listen", "host", "base"),
    [("127.0.0.1:8080", "127.0.0.1", "http://127.0.0.1:8080"), ("0.0.0.0:8080", "127.0.0.1", "http://127.0.0.1:8080"),
     ("[::1]:8080", "::1", "http://[::1]:8080"), ("10.1.2.3:8080", "10.1.2.3", None)],  # fmt: skip
)
def test_the_demo_only_drives_traffic_on_loopback(listen: str, host: str, base: str | None) -> None:
    settings = load(None, {"listen": listen}, env={})
    assert site_host(settings) == host
    assert traffic_base(settings, 8080) == base


def test_demo_settings_add_goals_and_a_funnel_unless_configured() -> None:
    plain = demo_settings(load(None, {}, env={}))
    assert plain.collectors["goals"] == list(DEMO_GOALS) and plain.collectors["funnels"] == list(DEMO_FUNNELS)
    assert plain.trusted_proxies  # the visitors' country headers count
    own = demo_settings(load(None, {"collectors": {"goals": [{"name": "x", "path": "/x"}]}}, env={}))
    assert own.collectors["goals"] == [{"name": "x", "path": "/x"}]


async def test_drive_sends_visits_at_a_bounded_rate(upstream_factory: Callable[..., Any]) -> None:
    seen: list[tuple[str, str, str]] = []

    async def record(request: web.Request) -> web.Response:
        seen.append((request.method, request.path, request.headers.get("User-Agent", "")))
        if request.method == "POST":
            raise web.HTTPSeeOther("/cart")
        return web.Response(text="<html></html>", content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    base = await upstream_factory(app)
    rate, seconds = 4.0, 3.0
    task = spawn(drive(base, "127.0.0.1", rate=rate, seed=3, warmup_visits=0), name="test-drive")
    await asyncio.sleep(seconds)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert len(seen) >= 3
    # visits start at `rate` request slots per second; one visit's slots may all fall in
    # the window's last moment, so allow one visit beyond the bound.
    assert len(seen) <= rate * seconds + 12, len(seen)
    assert all(ua for _, _, ua in seen)


async def test_the_demo_fills_the_dashboard_within_a_minute(tmp_path: Any) -> None:
    """A real ``footfall demo``: its background visitors reach the query API as people
    (not excluded as bots), so a new user's panels fill."""
    import subprocess
    import sys

    import aiohttp

    from proxy.stream.embedded import free_port
    from tests.proxy.processes import stop, wait_ready

    port, admin = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxy.cli", "demo", "--listen", f"127.0.0.1:{port}",
         "--admin-listen", f"127.0.0.1:{admin}", "--data-dir", str(tmp_path / "data")],  # fmt: skip
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    query = {"site_id": "127.0.0.1", "metrics": ["visitors", "pageviews", "lcp_p75", "ttfb_p75", "beacon_coverage"],
             "date_range": "day"}  # fmt: skip
    got: list[Any] = []
    try:
        await wait_ready(admin, proc)
        async with aiohttp.ClientSession() as client:
            for _ in range(40):
                async with client.post(f"http://127.0.0.1:{admin}/api/v2/query", json=query) as resp:
                    assert resp.status == 200
                    got = (await resp.json())["results"][0]["metrics"]
                if got[0] >= 3 and got[1] >= 5 and got[2] is not None:
                    break
                await asyncio.sleep(1)
        # people, and their pages' Web Vitals from the beacon's endpoint (the script's reports)
        assert got[0] >= 3 and got[1] >= 5, got
        assert got[2] is not None and got[3] is not None and got[2] >= got[3] > 0, got  # LCP comes after TTFB
        assert got[4] is not None and 0 < got[4] <= 100, got
    finally:
        await stop(proc)


def test_the_beacon_reports_are_what_the_endpoint_accepts_and_hang_together() -> None:
    from proxy.beacon.items import parse
    from proxy.demo_traffic import page_report

    rng = random.Random(5)
    ttfb: dict[str, list[float]] = {"desktop": [], "mobile": []}
    for n in range(400):
        device = ("desktop", "mobile")[n % 2]
        server = rng.uniform(1, 900)
        items = page_report(rng, device, "0" * 31 + "a", "/products/1?x=1", "https://www.google.com/", server, 12.5)
        accepted, rejected = parse(orjson.dumps({"items": items}), max_items=20)
        assert rejected == {} and len(accepted) == 2
        v = items[0]["vitals"]
        assert server < v["ttfb"] <= v["fcp"] <= v["lcp"] and 0 <= v["cls"] < 1 and v["inp"] > 0
        assert items[1]["engaged_ms"] == 12_500 and 10 <= items[1]["scroll_depth"] <= 100
        ttfb[device].append(v["ttfb"] - server)  # the network's share
    assert statistics.median(ttfb["mobile"]) > statistics.median(ttfb["desktop"])  # a phone's slower network


def test_the_beacon_is_found_in_the_tag_the_proxy_injects() -> None:
    """``beacon_of`` and ``server_ms`` read the real injector's output (tag and Server-Timing)."""
    import time

    from multidict import CIMultiDict, CIMultiDictProxy
    from prometheus_client import CollectorRegistry

    from proxy.beacon.injector import Injector
    from proxy.beacon.metrics import BeaconMetrics
    from proxy.beacon.settings import BeaconSettings
    from proxy.demo_traffic import beacon_of, server_ms

    injector = Injector(BeaconSettings(enabled=True), "/_ff/3f2a9c.js", BeaconMetrics(CollectorRegistry()))
    request = CIMultiDictProxy(CIMultiDict({"Sec-Fetch-Dest": "document", "Accept": "text/html"}))
    response: CIMultiDict[str] = CIMultiDict({"Content-Type": "text/html; charset=utf-8"})
    injection = injector.choose("shop.example", "GET", request, 200, response, time.perf_counter(), 40.0)
    assert injection is not None
    page = injection.whole(b"<!doctype html><html><head><title>t</title></head><body>hi</body></html>")
    found = beacon_of(page)
    assert found is not None and found[0] == "/_ff/e" and len(found[1]) == 32
    assert f'ff;desc="{found[1]}"' in response["Server-Timing"]
    assert server_ms(response["Server-Timing"]) >= 40.0  # the proxy's share plus the origin's 40 ms
    assert beacon_of(b"<html><head></head><body>no script</body></html>") is None
