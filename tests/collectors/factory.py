"""Realistic event v1 dicts for collector tests, and a helper that XADDs them."""

from __future__ import annotations

import itertools
import time
from typing import Any

import orjson
import redis.asyncio as aioredis

STREAM = "footfall:events"
# The start of the previous hour: recent enough for every retention, hour-aligned.
T0 = float(int(time.time()) // 3600 * 3600 - 3600)
_ids = itertools.count(1)


def event(**overrides: Any) -> dict[str, Any]:
    """A non-bot pageview of ``/`` by visitor v1 in session s1; override any field."""
    n = next(_ids)
    e: dict[str, Any] = {
        "v": 1,
        "id": f"{n:032x}",
        "ts": T0,
        "kind": "pageview",
        "site": "shop.example",
        "method": "GET",
        "path": "/",
        "route": None,
        "query": {},
        "status": 200,
        "bytes_out": 15000,
        "content_type": "text/html",
        "duration_ms": 20.0,
        "upstream_ms": 15.0,
        "visitor": "v1",
        "session": "s1",
        "new_visitor": False,
        "new_session": False,
        "referrer": {"medium": "direct"},
        "utm": {},
        "ua": {"browser": "Firefox", "browser_version": "128", "os": "Linux", "device": "desktop"},
        "bot": False,
        "bot_name": None,
        "channel": "Direct",
        "ip": "203.0.113.0",
        "country": "FR",
        "trace_id": "0" * 32,
        "error": None,
        "consent": "granted",
    }
    e.update(overrides)
    return e


def google_ad(**overrides: Any) -> dict[str, Any]:
    """A pageview landing from a paid Google campaign."""
    base = {
        "referrer": {"url": "https://www.google.com/", "host": "www.google.com",
                     "medium": "search", "source": "Google"},
        "utm": {"source": "google", "medium": "cpc", "campaign": "spring"},
        "channel": "Paid Search",
    }  # fmt: skip
    base.update(overrides)
    return event(**base)


async def xadd_events(redis: aioredis.Redis, events: list[dict[str, Any]]) -> list[bytes]:
    async with redis.pipeline(transaction=False) as pipe:
        for e in events:
            pipe.xadd(STREAM, {"event": orjson.dumps(e)})
        return list(await pipe.execute())


def full_event(**overrides: Any) -> dict[str, Any]:
    """An event with every v1 field set (values the store keeps exactly: ``ts`` in whole
    milliseconds, measures representable as 32-bit floats)."""
    e = event(
        ts=round(time.time() - 120, 3),
        route="/products/{id}",
        path="/products/42",
        query={"q": "shoes", "page": "2"},
        status=201,
        bytes_out=123456789012,
        content_type="text/html",
        duration_ms=12.5,
        upstream_ms=7.25,
        visitor="vis-1",
        session="ses-1",
        new_visitor=True,
        new_session=True,
        referrer={"url": "https://www.google.com/search?q=x", "host": "www.google.com",
                  "medium": "search", "source": "Google", "term": "x"},  # fmt: skip
        utm={"source": "google", "medium": "cpc", "campaign": "spring", "term": "shoes",
             "content": "banner", "click_id": "abc123", "click_id_network": "gclid"},  # fmt: skip
        ua={"browser": "Firefox", "browser_version": "128.0", "os": "Linux", "device": "desktop"},
        bot=True,
        bot_name="Googlebot",
        bot_score=12,
        channel="Paid Search",
        ip="203.0.113.0",
        country="DE",
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
        error="upstream_timeout",
        consent="granted",
        page_id="0192f0c4d4a87d3e9b1c2d3e4f506172",
        via="beacon",
        vitals={"lcp": 1250.5, "inp": 88.0, "cls": 0.125, "fcp": 900.0, "ttfb": 120.25},
        engaged_ms=4500,
        scroll_depth=75,
        name="signup",
        props={"plan": "pro", "seats": "5"},
    )
    e.update(overrides)
    return e
