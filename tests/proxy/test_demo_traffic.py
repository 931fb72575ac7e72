"""The demo's background visitors: what a plan contains (pure, seeded) and how fast
``drive`` sends it (real sockets, bounded)."""

from __future__ import annotations

import asyncio
import collections
import random
from collections.abc import Callable
from typing import Any

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
    query = {"site_id": "127.0.0.1", "metrics": ["visitors", "pageviews"], "date_range": "day"}
    got: list[Any] = []
    try:
        await wait_ready(admin, proc)
        async with aiohttp.ClientSession() as client:
            for _ in range(40):
                async with client.post(f"http://127.0.0.1:{admin}/api/v2/query", json=query) as resp:
                    assert resp.status == 200
                    got = (await resp.json())["results"][0]["metrics"]
                if got[0] >= 3 and got[1] >= 5:
                    break
                await asyncio.sleep(1)
        assert got[0] >= 3 and got[1] >= 5, got
    finally:
        await stop(proc)
