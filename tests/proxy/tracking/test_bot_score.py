"""bot_score end to end: real Chromium and scripted HTTP clients through a real proxy,
events read back from a real Redis stream (loopback only)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import orjson
import pytest

from load_tests import eval_bots

SCHEMA = jsonschema.Draft202012Validator(
    orjson.loads((Path(__file__).resolve().parents[3] / "config" / "event.schema.json").read_bytes())
)
pytestmark = pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs /usr/bin/chromium")


async def _events(redis_client: Any, n: int) -> list[dict[str, Any]]:
    for _ in range(200):
        entries = await redis_client.xrange("footfall:events")
        if len(entries) >= n:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # let the last flush land
    return [orjson.loads(f[b"event"]) for _, f in await redis_client.xrange("footfall:events")]


@pytest.mark.timeout(120)
async def test_browsers_stay_above_the_threshold_and_naive_scripts_fall_below(
    upstream_factory: Any, proxy_factory: Any, redis_server: Any, redis_client: Any
) -> None:
    upstream = await upstream_factory(eval_bots.site_app())
    proxy = await proxy_factory({"upstreams": [upstream], "trusted_proxies": ["127.0.0.1/32"]},
                                redis_url=redis_server.url)  # fmt: skip
    members = await eval_bots.run_population(f"http://127.0.0.1:{proxy.port}", humans=3, scripts_per_kind=1,
                                             think=(0.05, 0.3), parallel=9)  # fmt: skip
    events = await _events(redis_client, 60)
    for event in events:
        SCHEMA.validate(event)
    report = eval_bots.evaluate(events, members, threshold=30)
    assert report.flagged_humans == []
    assert report.sessions.fp == 0
    humans = report.by_kind["chromium"]
    assert all(score is not None and score >= 30 for score in humans), humans
    for kind in ("urllib-ua-only", "aiohttp-copied", "aiohttp-copied-jar", "aiohttp-chrome-random"):
        assert all(score is not None and score < 30 for score in report.by_kind[kind]), (kind, report.by_kind)
    assert all(e["bot"] is False for e in events)  # the UA alone says "Chrome" for everyone


async def test_robots_txt_then_pages_scores_the_client_low(
    upstream_factory: Any, proxy_factory: Any, redis_server: Any, redis_client: Any
) -> None:
    upstream = await upstream_factory(eval_bots.site_app())
    proxy = await proxy_factory({"upstreams": [upstream]}, redis_url=redis_server.url)
    base = f"http://127.0.0.1:{proxy.port}"
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
        for path in ("/robots.txt", "/p/1", "/p/2"):
            async with client.get(base + path, headers=eval_bots.CHROME_FULL) as resp:
                await resp.read()
    events = await _events(redis_client, 3)
    assert [e["path"] for e in events] == ["/robots.txt", "/p/1", "/p/2"]
    assert all(e.get("bot_score", 99) < 30 for e in events[1:]), [e.get("bot_score") for e in events]


async def test_no_bot_score_when_disabled(
    upstream_factory: Any, proxy_factory: Any, redis_server: Any, redis_client: Any
) -> None:
    upstream = await upstream_factory(eval_bots.site_app())
    proxy = await proxy_factory({"upstreams": [upstream], "enrichment.bot_score": False}, redis_url=redis_server.url)
    async with aiohttp.ClientSession() as client:
        async with client.get(f"http://127.0.0.1:{proxy.port}/p/1", headers=eval_bots.COPIED) as resp:
            await resp.read()
    (event,) = await _events(redis_client, 1)
    assert "bot_score" not in event
