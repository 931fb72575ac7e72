"""The beacon signals end to end: a real proxy with the beacon on, a real headless
Chromium whose pages report, and a scripted client that never runs the script; events
read back from a real Redis stream (loopback only)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from load_tests import eval_bots
from proxy.tracking.enrich.botscore import WEIGHTS, Signal

GRACE = 1.0  # enrichment.beacon_grace_seconds, short so the test is fast
pytestmark = pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs /usr/bin/chromium")


async def _wait(redis_client: Any, check: Callable[[list[dict[str, Any]]], bool],
                timeout: float = 15.0) -> list[dict[str, Any]]:  # fmt: skip
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        events = [orjson.loads(f[b"event"]) for _, f in await redis_client.xrange("footfall:events")]
        if check(events) or asyncio.get_running_loop().time() > deadline:
            return events
        await asyncio.sleep(0.05)


def _pages(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["via"] == "proxy" and e["path"].startswith("/p/")]


async def _proxy(proxy_factory: Any, upstream_factory: Any, redis_server: Any, beacon: bool) -> str:
    upstream = await upstream_factory(eval_bots.site_app())
    proxy = await proxy_factory({"upstreams": [upstream], "beacon.enabled": beacon,
                                 "enrichment.beacon_grace_seconds": GRACE}, redis_url=redis_server.url)  # fmt: skip
    return f"http://127.0.0.1:{proxy.port}"


async def test_a_browser_whose_page_reports_is_not_penalised(
    browser: Any, upstream_factory: Any, proxy_factory: Any, redis_server: Any, redis_client: Any
) -> None:
    base = await _proxy(proxy_factory, upstream_factory, redis_server, beacon=True)
    context = await browser.new_context(user_agent=eval_bots.CHROME_UA)  # headless, with a normal UA
    page = await context.new_page()
    ids = []
    for n in (1, 2, 3):
        if n > 1:
            await asyncio.sleep(GRACE + 0.3)  # reads longer than the grace period
        await page.goto(f"{base}/p/{n}")
        await page.wait_for_function("window.footfall !== undefined")
        events = await _wait(redis_client, lambda ev, n=n: len(_pages(ev)) == n)
        ids.append(_pages(events)[-1]["page_id"])
        if n > 1:  # leaving the previous page sent its report (pagehide), after this request
            events = await _wait(redis_client, lambda ev, i=ids[-2]: any(
                e["via"] == "beacon" and e["page_id"] == i for e in ev))  # fmt: skip
            assert any(e["via"] == "beacon" and e["page_id"] == ids[-2] for e in events)
    assert all(ids) and len(set(ids)) == 3
    await context.close()
    await asyncio.sleep(0.3)
    events = await _wait(redis_client, lambda ev: False, timeout=0)
    pages = _pages(events)
    visitor = pages[-1]["visitor"]
    scores = [e.get("bot_score") for e in events if e["visitor"] == visitor]
    # a cookie-keeping, asset-loading browser whose pages report (after the next page's
    # request, on leaving) is never lowered by the beacon: its scores only go up
    assert None not in scores and scores == sorted(scores), [(e["path"], e["via"], e.get("bot_score")) for e in events]
    assert scores[-1] == 99 and min(scores) >= 30


@pytest.mark.parametrize("beacon", [True, False], ids=["beacon-on", "beacon-off"])
async def test_a_script_that_never_runs_the_beacon_gets_the_weak_signal_after_the_grace_period(
    beacon: bool, upstream_factory: Any, proxy_factory: Any, redis_server: Any, redis_client: Any
) -> None:
    base = await _proxy(proxy_factory, upstream_factory, redis_server, beacon=beacon)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
        for path in ("/p/1", "/p/2"):
            async with client.get(base + path, headers=eval_bots.CHROME_FULL) as resp:
                assert (b'data-ff-page="' in await resp.read()) is beacon
        await asyncio.sleep(GRACE + 0.3)
        async with client.get(base + "/p/3", headers=eval_bots.CHROME_FULL) as resp:
            await resp.read()
    events = _pages(await _wait(redis_client, lambda ev: len(_pages(ev)) == 3))
    assert [bool(e["page_id"]) for e in events] == [beacon] * 3
    scores = [e["bot_score"] for e in events]
    # within the grace period nothing changes; after it, only the weak signal is added
    assert scores[2] == scores[1] + (WEIGHTS[Signal.BEACON_MISSING] if beacon else 0)
    assert scores[2] >= 30  # weak: alone it does not make a browser-like client a bot
