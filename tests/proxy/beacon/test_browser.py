"""The beacon end to end: real headless Chromium through the real proxy to real pages,
events read back from a real Redis stream."""

from __future__ import annotations

import asyncio
import gzip
import re
from typing import Any

import brotli
import orjson
import redis.asyncio as aioredis
from aiohttp import web

TAG = re.compile(rb'<script src="/_ff/[0-9a-f]{12}\.js" defer data-ff-page="([0-9a-f]{32})"( nonce="[^"]*")?></script>')
HEAD = b"<!doctype html><html><head><meta charset=utf-8><title>%s</title>"
BODY = b"</head><body><h1>%s</h1><p>" + b"Words. " * 300 + b"</p></body></html>"


def doc(name: str) -> bytes:
    return HEAD % name.encode() + BODY % name.encode()


PAGES: dict[str, bytes] = {
    "gzip": doc("gzip"),
    "br": doc("br"),
    "chunked": doc("chunked"),
    "script-string": (
        b"<!doctype html><html><head><script>var trap = '</head><body>'; window.trapOk = trap.length;</script>"
        b"<title>script string</title></head><body><p>x</p></body></html>"
    ),
    "nohead": b"<!doctype html><title>no head</title><p>" + b"text " * 100,
    "csp-strict": doc("csp-strict"),
    "csp-nonce": doc("csp-nonce").replace(b"</head>", b"<script nonce=r4nd>window.inlineOk = 1</script></head>"),
    "spa": doc("spa").replace(
        b"<h1>", b'<button id=cta data-footfall-event="cta" data-footfall-prop-color="red">Go</button><h1>'
    ),
    "long": doc("long").replace(b"<p>", b'<p style="height:5000px">'),
}


def site_app(port: list[int]) -> web.Application:
    async def page(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"].split("/")[0]
        body = PAGES.get(name)
        if body is None:
            return web.Response(text="<p>elsewhere</p>", content_type="text/html")
        headers = {"Content-Type": "text/html; charset=utf-8"}
        if name == "long":
            body = body.replace(b"</body>", b'<a id=out href="http://localhost:%d/elsewhere">out</a></body>' % port[0])
        if name == "csp-strict":
            headers["Content-Security-Policy"] = "default-src 'self'; script-src 'none'"
        if name == "csp-nonce":
            headers["Content-Security-Policy"] = "default-src 'self'; script-src 'nonce-r4nd' 'strict-dynamic'"
        if name == "gzip":
            body = gzip.compress(body, mtime=0)  # the same bytes each time: the proxy's splice cache serves it
            return web.Response(body=body, headers={**headers, "Content-Encoding": "gzip"})
        if name == "br":
            return web.Response(body=brotli.compress(body), headers={**headers, "Content-Encoding": "br"})
        if name == "chunked":  # the head split inside "<head>", pieces arriving apart
            resp = web.StreamResponse(headers=headers)
            await resp.prepare(request)
            for piece in (body[:20], body[20:200], body[200:]):
                await resp.write(piece)
                await asyncio.sleep(0.05)
            await resp.write_eof()
            return resp
        return web.Response(body=body, headers=headers)

    app = web.Application()
    app.router.add_get("/{name:.*}", page)
    return app


async def stream(client: aioredis.Redis) -> list[dict[str, Any]]:
    return [orjson.loads(f[b"event"]) for _, f in await client.xrange("footfall:events")]


async def wait_for(client: aioredis.Redis, check: Any, timeout: float = 10.0) -> list[dict[str, Any]]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        events = await stream(client)
        if check(events) or asyncio.get_running_loop().time() > deadline:
            return events
        await asyncio.sleep(0.1)


async def test_beacon_in_a_real_browser(
    browser_context, upstream_factory, proxy_factory, redis_server, redis_client
) -> None:
    port: list[int] = []
    upstream = await upstream_factory(site_app(port))
    proxy = await proxy_factory({"upstreams": [upstream], "beacon.enabled": True}, redis_url=redis_server.url)
    port.append(proxy.port)
    base = f"http://127.0.0.1:{proxy.port}"
    page = await browser_context.new_page()
    received: dict[str, bytes] = {}

    async def visit(name: str) -> bytes:
        response = await page.goto(f"{base}/{name}")
        assert response is not None and response.status == 200
        body = await response.body()
        received[name] = body
        return body

    # --- injected pages: the one tag, nothing else changed; the script runs -------
    page_ids: dict[str, str] = {}
    # The gzip page twice before: compressed whole, then admitted to the splice cache;
    # the visit below is served from it (the page id in a stored block). Chromium
    # decodes both kinds.
    seen_ids = set()
    for _ in range(2):
        body = await visit("gzip")
        match = TAG.search(body)
        assert match is not None and body[: match.start()] + body[match.end() :] == PAGES["gzip"]
        seen_ids.add(match.group(1))
    for name in ("gzip", "br", "chunked", "script-string", "nohead", "csp-nonce"):
        body = await visit(name)
        match = TAG.search(body)
        assert match is not None, (name, body[:300])
        assert body[: match.start()] + body[match.end() :] == PAGES[name], name
        page_ids[name] = match.group(1).decode()
        await page.wait_for_function("window.footfall !== undefined", timeout=5000)
        timing = await page.evaluate(
            "performance.getEntriesByType('navigation')[0].serverTiming.map(t => [t.name, t.description])"
        )
        assert ["ff", page_ids[name]] in timing
    assert b'<head><script src="/_ff/' in received["gzip"]
    assert len(seen_ids | {page_ids["gzip"].encode()}) == 3  # a page id of its own each time
    assert received["nohead"].startswith(b"<!doctype html><script src=")
    assert received["csp-nonce"].count(b'nonce="r4nd"') == 1
    assert await page.evaluate("window.inlineOk") == 1

    # --- strict CSP without a nonce: byte-identical, skipped and counted -----------
    assert await visit("csp-strict") == PAGES["csp-strict"]
    assert await page.evaluate("window.footfall === undefined")
    skipped = proxy.metrics.registry.get_sample_value("footfall_beacon_skipped_total", {"reason": "csp"})
    assert skipped == 1

    # --- an SPA: pushState, popstate, a custom event, a data-footfall-event click ---
    await visit("spa")
    spa_id = TAG.search(received["spa"]).group(1).decode()  # type: ignore[union-attr]
    await page.wait_for_function("window.footfall !== undefined")
    await page.evaluate("history.pushState({}, '', '/spa/step-2')")
    await page.evaluate("footfall.track('signup', {plan: 'pro', seats: 3})")
    await page.click("#cta")
    await page.evaluate("history.back()")
    await page.wait_for_function("location.pathname === '/spa'")

    # --- scrolling and engagement on a long page, then an outbound link ----------
    await visit("long")
    long_id = TAG.search(received["long"]).group(1).decode()  # type: ignore[union-attr]
    await page.wait_for_function("window.footfall !== undefined")
    await page.mouse.move(10, 10)
    await page.mouse.wheel(0, 2500)
    await asyncio.sleep(0.4)
    await page.mouse.move(50, 50)
    await asyncio.sleep(0.4)
    await page.mouse.move(60, 60)
    await page.click("#out")  # leaves the page: outbound click, then vitals and engagement
    await page.wait_for_url(re.compile(r"http://localhost:\d+/elsewhere"))
    await page.goto("about:blank")

    def complete(events: list[dict[str, Any]]) -> bool:
        beacon = [e for e in events if e.get("via") == "beacon"]
        vitals = {e["page_id"] for e in beacon if e["kind"] == "vitals"}
        return set(page_ids.values()) | {spa_id, long_id} <= vitals and any(e["kind"] == "click" for e in beacon)

    events = await wait_for(redis_client, complete)
    by_page: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        if e.get("via") == "beacon":
            by_page.setdefault(e["page_id"], []).append(e)
    proxied = {e["id"]: e for e in events if e["via"] == "proxy" and e["kind"] == "pageview"}

    # every injected page view came back from the script with its own id
    for name, pid in {**page_ids, "spa": spa_id, "long": long_id}.items():
        assert proxied[pid]["page_id"] == pid, name
        kinds = {e["kind"] for e in by_page.get(pid, [])}
        assert {"vitals", "engagement"} <= kinds, (name, kinds)
        vitals = next(e for e in by_page[pid] if e["kind"] == "vitals")["vitals"]
        assert {"ttfb", "fcp"} <= vitals.keys(), (name, vitals)
        assert proxied[pid]["visitor"] and all(e["visitor"] == proxied[pid]["visitor"] for e in by_page[pid])

    routes = [e for e in events if e.get("via") == "beacon" and e["kind"] == "pageview"]
    assert [e["path"] for e in routes] == ["/spa/step-2", "/spa"]
    step2, back = routes[0]["page_id"], routes[1]["page_id"]
    assert len({spa_id, step2, back}) == 3  # a page view of its own each
    assert routes[0]["referrer"]["url"].endswith("/spa") and routes[1]["referrer"]["url"].endswith("/spa/step-2")
    # the custom events happened on the second route: its page id, its path
    custom = [e for e in events if e.get("kind") == "custom"]
    assert {(e["name"], tuple(sorted(e["props"].items()))) for e in custom} == {
        ("signup", (("plan", "pro"), ("seats", "3"))), ("cta", (("color", "red"),)),
    }  # fmt: skip
    assert all(e["page_id"] == step2 and e["path"] == "/spa/step-2" for e in custom)
    assert any(e["kind"] == "engagement" for e in by_page[step2])

    long_events = by_page[long_id]
    engagement = [e for e in long_events if e["kind"] == "engagement"]
    assert max(e["scroll_depth"] for e in engagement) >= 50
    assert sum(e["engaged_ms"] for e in engagement) >= 300
    (click,) = [e for e in long_events if e["kind"] == "click"]
    assert click["name"] == "outbound" and click["props"]["url"] == f"http://localhost:{proxy.port}/elsewhere"
