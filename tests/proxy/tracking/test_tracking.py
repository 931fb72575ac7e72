"""Events produced by the real proxy, read back from a real Redis stream."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp import web

V1_FIELDS = {
    "v", "id", "ts", "kind", "site", "method", "path", "route", "query", "status", "bytes_out",
    "content_type", "duration_ms", "upstream_ms", "visitor", "session", "new_visitor", "new_session",
    "referrer", "utm", "ua", "bot", "bot_name", "channel", "ip", "country", "trace_id", "error", "consent",
}  # fmt: skip
SCHEMA = jsonschema.Draft202012Validator(
    orjson.loads((Path(__file__).resolve().parents[3] / "config" / "event.schema.json").read_bytes())
)
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
NAV = {"User-Agent": CHROME, "Sec-Fetch-Dest": "document", "Sec-Fetch-Mode": "navigate", "Accept": "text/html"}


def browser() -> aiohttp.ClientSession:
    """A client that keeps cookies like a browser (also for IP-address hosts)."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


def site_app() -> web.Application:
    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<html><body>" + "x" * 500 + "</body></html>", content_type="text/html")

    async def css(_: web.Request) -> web.Response:
        return web.Response(text="body{}", content_type="text/css")

    app = web.Application()
    app.router.add_get("/static/app.css", css)
    app.router.add_get("/{tail:.*}", page)
    return app


async def events(client: aioredis.Redis, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    """Wait until the stream holds at least ``n`` events; return them all, oldest first."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        entries = await client.xrange("footfall:events")
        if len(entries) >= n or asyncio.get_running_loop().time() > deadline:
            return [orjson.loads(fields[b"event"]) for _, fields in entries]
        await asyncio.sleep(0.02)


async def test_pageview_and_asset_events_carry_every_v1_field(
    upstream_factory, proxy_factory, redis_server, redis_client
) -> None:
    upstream = await upstream_factory(site_app())
    proxy = await proxy_factory(
        {"upstreams": [upstream], "routes": ["/products/{id}"]}, redis_url=redis_server.url
    )
    base = f"http://127.0.0.1:{proxy.port}"
    async with browser() as client:
        async with client.get(
            f"{base}/products/42?utm_source=Newsletter&utm_medium=Email&utm_campaign=Black+Friday"
            "&email=jo@example.com&token=abc&q=shoes",
            headers={**NAV, "Referer": "https://www.google.com/"},
        ) as resp:
            assert resp.status == 200
            await resp.read()
        trace = "4bf92f3577b34da6a3ce929d0e0e4736"
        async with client.get(f"{base}/static/app.css", headers={"User-Agent": CHROME,
                              "traceparent": f"00-{trace}-00f067aa0ba902b7-01"}) as resp:  # fmt: skip
            await resp.read()
    page, asset = await events(redis_client, 2)
    # A trace started at the proxy is named by the event's id (the store keeps it in no
    # bytes); a continued trace keeps its own id, and the event has its own.
    assert page["trace_id"] == page["id"]
    assert asset["trace_id"] == trace and asset["id"] != trace
    for event in (page, asset):
        assert event.keys() >= V1_FIELDS, V1_FIELDS - event.keys()
        SCHEMA.validate(event)
        assert event["v"] == 1 and len(event["id"]) == 32 and len(event["trace_id"]) == 32
        assert event["site"] == "127.0.0.1" and event["consent"] == "granted"
        assert event["ip"] == "127.0.0.0"  # anonymised /24
        assert event["duration_ms"] > 0 and event["upstream_ms"] > 0
        assert event["visitor"] and event["session"]
    assert page["kind"] == "pageview" and asset["kind"] == "request"
    assert page["path"] == "/products/42" and page["route"] == "/products/{id}"
    assert page["status"] == 200 and page["content_type"] == "text/html" and page["bytes_out"] > 500
    assert page["method"] == "GET" and page["error"] is None
    assert "token" not in page["query"] and "email" not in page["query"]
    assert page["query"]["q"] == "shoes"
    assert page["utm"]["source"] == "newsletter" and page["utm"]["campaign"] == "black friday"
    assert page["ua"]["browser"] == "Chrome" and page["ua"]["device"] == "desktop" and page["bot"] is False
    assert page["new_visitor"] is True and page["new_session"] is True
    assert asset["content_type"] == "text/css" and asset["route"] == "/static/app.css"
    # the asset came with the cookies the pageview set: same visitor, same session
    assert asset["visitor"] == page["visitor"] and asset["session"] == page["session"]
    assert asset["new_visitor"] is False and asset["new_session"] is False


async def test_first_party_cookies_and_their_flags(upstream_factory, proxy_factory, redis_server) -> None:
    upstream = await upstream_factory(site_app())
    proxy = await proxy_factory(
        {"upstreams": [upstream], "trusted_proxies": ["127.0.0.1/32"]}, redis_url=redis_server.url
    )
    async with browser() as client:
        async with client.get(f"http://127.0.0.1:{proxy.port}/", headers=NAV) as resp:
            cookies = resp.headers.getall("Set-Cookie")
        async with client.get(f"http://127.0.0.1:{proxy.port}/", headers=NAV) as resp:
            # a pageview seconds after the last refresh sends no cookie (refreshed at most once a minute)
            assert "Set-Cookie" not in resp.headers
    async with browser() as client:
        async with client.get(
            f"http://127.0.0.1:{proxy.port}/", headers={**NAV, "X-Forwarded-Proto": "https"}
        ) as resp:
            secure_cookies = resp.headers.getall("Set-Cookie")
    visitor = next(c for c in cookies if c.startswith("ff_vid="))
    session = next(c for c in cookies if c.startswith("ff_sid="))
    for cookie in (visitor, session):
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
        assert "Secure" not in cookie
    assert "Max-Age=34560000" in visitor  # 400 days
    assert "Max-Age=1800" in session  # 30 minutes, sliding
    # behind a trusted TLS terminator the cookies are Secure
    assert any(c.startswith("ff_sid=") and "Secure" in c for c in secure_cookies)
    assert any(c.startswith("ff_vid=") and "Secure" in c for c in secure_cookies)


async def test_gpc_and_dnt_mean_no_cookie_and_no_visitor(
    upstream_factory, proxy_factory, redis_server, redis_client
) -> None:
    upstream = await upstream_factory(site_app())
    proxy = await proxy_factory({"upstreams": [upstream]}, redis_url=redis_server.url)
    async with browser() as client:
        for header in ({"Sec-GPC": "1"}, {"DNT": "1"}):
            async with client.get(f"http://127.0.0.1:{proxy.port}/", headers={**NAV, **header}) as resp:
                assert resp.status == 200
                assert not [c for c in resp.headers.getall("Set-Cookie", []) if c.startswith("ff_")]
    got = await events(redis_client, 2)
    assert len(got) == 2  # the hits are still counted
    for event in got:
        assert event["consent"] == "denied" and event["visitor"] is None and event["session"] is None


async def test_client_ip_from_trusted_proxy_only(upstream_factory, proxy_factory, redis_factory, tmp_path) -> None:
    upstream = await upstream_factory(site_app())
    results = {}
    for trusted in (["127.0.0.1/32"], []):
        server = redis_factory()
        proxy = await proxy_factory(
            {"upstreams": [upstream], "trusted_proxies": trusted, "data_dir": str(tmp_path / str(len(results)))},
            redis_url=server.url,
        )
        async with browser() as client:
            async with client.get(
                f"http://127.0.0.1:{proxy.port}/", headers={"X-Forwarded-For": "6.6.6.6, 198.51.100.77"}
            ) as resp:
                await resp.read()
        redis = aioredis.Redis.from_url(server.url)
        results[bool(trusted)] = (await events(redis, 1))[0]["ip"]
        await redis.aclose()
    assert results == {True: "198.51.100.0", False: "127.0.0.0"}


async def test_upstream_failure_is_recorded(proxy_factory, redis_server, redis_client) -> None:
    from proxy.stream.embedded import free_port

    proxy = await proxy_factory({"upstreams": [f"http://127.0.0.1:{free_port()}"]}, redis_url=redis_server.url)
    async with browser() as client:
        async with client.get(f"http://127.0.0.1:{proxy.port}/x", headers=NAV) as resp:
            assert resp.status == 502
    (event,) = await events(redis_client, 1)
    assert event["status"] == 502 and event["error"] == "upstream_connect" and event["upstream_ms"] is None


async def test_client_disconnect_is_recorded_not_raised(
    upstream_factory, proxy_factory, redis_server, redis_client
) -> None:
    async def endless(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        for _ in range(200):
            await resp.write(b"x" * 65536)
            await asyncio.sleep(0.01)
        return resp

    app = web.Application()
    app.router.add_get("/big", endless)
    upstream = await upstream_factory(app)
    proxy = await proxy_factory({"upstreams": [upstream]}, redis_url=redis_server.url)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
    await reader.read(1024)
    writer.transport.abort()  # hang up mid-body
    (event,) = await events(redis_client, 1)
    assert event["error"] == "client_disconnect"
    assert 0 < event["bytes_out"] < 200 * 65536


@pytest.mark.parametrize("body", [b"<html>small</html>", b"<p>" + b"x" * (4 << 20)], ids=["small", "4MiB"])
@pytest.mark.parametrize("reset", [True, False], ids=["reset", "fin"])
async def test_a_page_abandoned_while_the_origin_thinks_is_a_pageview_with_its_upstream_time(
    upstream_factory, proxy_factory, redis_server, redis_client, body: bytes, reset: bool
) -> None:
    """The visitor gives up before the origin answers: the proxy still waits for the head
    (aiohttp does not cancel the handler), so the event is the pageview it was, with its
    ``upstream_ms`` and ``client_disconnect`` — what abandonment by upstream latency counts."""

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.6)
        return web.Response(body=body, content_type="text/html")

    app = web.Application()
    app.router.add_get("/slow", slow)
    upstream = await upstream_factory(app)
    proxy = await proxy_factory({"upstreams": [upstream]}, redis_url=redis_server.url)
    _reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    head = "".join(f"{k}: {v}\r\n" for k, v in NAV.items())
    writer.write(f"GET /slow HTTP/1.1\r\nHost: x\r\n{head}\r\n".encode())
    await writer.drain()
    await asyncio.sleep(0.2)
    if reset:  # the visitor leaves
        writer.transport.abort()
    else:
        writer.close()
    (event,) = await events(redis_client, 1)
    assert event["kind"] == "pageview" and event["error"] == "client_disconnect", event
    assert event["upstream_ms"] >= 550


async def test_route_collapsing_without_templates(
    upstream_factory, proxy_factory, redis_server, redis_client
) -> None:
    upstream = await upstream_factory(site_app())
    proxy = await proxy_factory({"upstreams": [upstream]}, redis_url=redis_server.url)
    async with browser() as client:
        for path in ("/orders/123/items/9", "/u/0b5c6f4e-8a8e-4c1f-9a40-2f7c0f3f1a11"):
            async with client.get(f"http://127.0.0.1:{proxy.port}{path}") as resp:
                await resp.read()
    routes = [e["route"] for e in await events(redis_client, 2)]
    assert routes == ["/orders/{id}/items/{id}", "/u/{uuid}"]


async def test_upstream_stalling_mid_body_is_cut_and_recorded(
    upstream_factory, proxy_factory, redis_server, redis_client
) -> None:
    async def stalls(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Length": "100000"})
        await resp.prepare(request)
        await resp.write(b"x" * 1000)
        await asyncio.sleep(1.5)  # silent far beyond the proxy's read deadline
        return resp

    app = web.Application()
    app.router.add_get("/stall", stalls)
    upstream = await upstream_factory(app)
    proxy = await proxy_factory(
        {"upstreams": [upstream], "limits.upstream_read_timeout_seconds": 0.3}, redis_url=redis_server.url
    )
    async with browser() as client:
        async with client.get(f"http://127.0.0.1:{proxy.port}/stall") as resp:
            assert resp.status == 200
            with pytest.raises(aiohttp.ClientPayloadError):
                await resp.read()  # the connection is closed before Content-Length is reached
    (event,) = await events(redis_client, 1)
    assert event["error"] == "upstream_timeout" and event["bytes_out"] == 1000


async def test_proxy_metrics_count_every_request(upstream_factory, proxy_factory, redis_server, redis_client) -> None:
    from prometheus_client import generate_latest

    upstream = await upstream_factory(site_app())
    proxy = await proxy_factory({"upstreams": [upstream], "routes": ["/products/{id}"]}, redis_url=redis_server.url)
    async with browser() as client:
        for i in range(7):
            async with client.get(f"http://127.0.0.1:{proxy.port}/products/{i}", headers=NAV) as resp:
                await resp.read()
        for _ in range(3):
            async with client.get(f"http://127.0.0.1:{proxy.port}/static/app.css") as resp:
                await resp.read()
    await events(redis_client, 10)
    text = generate_latest(proxy.metrics.registry).decode()
    assert (
        'footfall_http_request_duration_seconds_count{method="GET",route="/products/{id}",'
        'site="127.0.0.1",status_class="2xx"} 7.0'
    ) in text
    assert 'footfall_http_responses_total{site="127.0.0.1",status="200"} 10.0' in text
    assert "footfall_events_published_total 10.0" in text
    bytes_line = next(line for line in text.splitlines() if line.startswith("footfall_http_response_bytes_total{"))
    assert float(bytes_line.split()[-1]) == 7 * len("<html><body>" + "x" * 500 + "</body></html>") + 3 * len("body{}")


async def test_cookieless_mode_sets_no_cookie_and_keeps_the_session(
    upstream_factory, proxy_factory, redis_server, redis_client
) -> None:
    upstream = await upstream_factory(site_app())
    proxy = await proxy_factory(
        {"upstreams": [upstream], "identity.mode": "cookieless"}, redis_url=redis_server.url
    )
    async with browser() as client:
        for path in ("/", "/about", "/static/app.css"):
            async with client.get(f"http://127.0.0.1:{proxy.port}{path}", headers=NAV) as resp:
                assert "Set-Cookie" not in resp.headers
                await resp.read()
        firefox = {**NAV, "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"}
        async with client.get(f"http://127.0.0.1:{proxy.port}/", headers=firefox) as resp:
            await resp.read()
    first, second, asset, other = await events(redis_client, 4)
    assert first["visitor"] == second["visitor"] == asset["visitor"]  # same IP + UA + day
    assert first["session"] == second["session"] == asset["session"]
    assert first["new_visitor"] and first["new_session"] and not second["new_session"]
    assert other["visitor"] != first["visitor"]  # another browser on the same IP
    assert first["visitor"] and len(first["visitor"]) == 32  # keyed BLAKE2b, hex
    salts = await redis_client.keys("footfall:cl:salt:*")
    assert len(salts) == 1 and len(bytes.fromhex((await redis_client.get(salts[0])).decode())) == 16
