"""The forwarding path against real upstream servers on real sockets (tracking off)."""

from __future__ import annotations

import asyncio
import gzip

import aiohttp
import pytest
from aiohttp import web
from yarl import URL


def echo_app(hits: list[web.Request] | None = None) -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        if hits is not None:
            hits.append(request)
        body = await request.read()
        resp = web.json_response(
            {"method": request.method, "path": request.raw_path, "headers": list(request.headers.items()),
             "body_len": len(body)}  # fmt: skip
        )
        resp.headers.add("Set-Cookie", "a=1; Path=/")
        resp.headers.add("Set-Cookie", "b=2; Path=/; HttpOnly")
        resp.headers["Keep-Alive"] = "timeout=99"
        resp.headers["X-Upstream"] = "yes"
        return resp

    async def gz(_: web.Request) -> web.Response:
        body = gzip.compress(b"hello " * 1000)
        return web.Response(body=body, headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"})

    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.Response(text="late")

    async def redirect(_: web.Request) -> web.Response:
        raise web.HTTPFound("/elsewhere")

    app = web.Application()
    app.router.add_get("/gz", gz)
    app.router.add_get("/slow", slow)
    app.router.add_get("/redirect", redirect)
    app.router.add_route("*", "/{tail:.*}", echo)
    return app


async def raw_request(port: int, data: bytes, *, read_timeout: float = 5.0) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(65536), read_timeout)
    finally:
        writer.close()


async def test_forwards_method_path_query_body_and_headers(upstream_factory, proxy_factory) -> None:
    upstream = await upstream_factory(echo_app())
    proxy = await proxy_factory({"upstreams": [upstream]})
    async with aiohttp.ClientSession() as client:
        async with client.post(
            URL(f"http://127.0.0.1:{proxy.port}/a/b%20c?x=1&y=%2F", encoded=True),
            data=b"z" * 5000,
            headers={"Connection": "keep-alive, X-Private", "X-Private": "p", "TE": "trailers",
                     "X-Forwarded-For": "6.6.6.6", "Proxy-Authorization": "Basic eA=="},  # fmt: skip
        ) as resp:
            assert resp.status == 200
            seen = await resp.json()
            assert resp.headers.getall("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/; HttpOnly"]
            assert resp.headers["X-Upstream"] == "yes"
            assert "Keep-Alive" not in resp.headers
    assert seen["method"] == "POST"
    assert seen["path"] == "/a/b%20c?x=1&y=%2F"  # not re-encoded
    assert seen["body_len"] == 5000
    names = {k.lower() for k, _ in seen["headers"]}
    assert not names & {"x-private", "te", "proxy-authorization"}
    hdrs = dict(seen["headers"])
    assert hdrs["X-Forwarded-For"] == "6.6.6.6, 127.0.0.1"
    assert hdrs["X-Forwarded-Proto"] == "http"
    assert hdrs["X-Forwarded-Host"] == f"127.0.0.1:{proxy.port}"
    assert hdrs["traceparent"].startswith("00-") and len(hdrs["traceparent"]) == 55
    assert hdrs["Content-Length"] == "5000" and "Transfer-Encoding" not in hdrs  # framing kept


async def test_a_slow_upload_is_progress_not_a_silent_upstream(upstream_factory, proxy_factory) -> None:
    upstream = await upstream_factory(echo_app())
    proxy = await proxy_factory({"upstreams": [upstream], "limits.upstream_read_timeout_seconds": 0.3})

    async def trickle():
        for _ in range(8):  # 0.8 s in all, well past the 0.3 s read deadline
            await asyncio.sleep(0.1)
            yield b"y" * 100

    async with aiohttp.ClientSession() as client:
        async with client.post(f"http://127.0.0.1:{proxy.port}/up", data=trickle()) as resp:
            assert resp.status == 200
            assert (await resp.json())["body_len"] == 800


async def test_compressed_response_passes_untouched(upstream_factory, proxy_factory) -> None:
    upstream = await upstream_factory(echo_app())
    proxy = await proxy_factory({"upstreams": [upstream]})
    async with aiohttp.ClientSession(auto_decompress=False) as client:
        async with client.get(f"http://127.0.0.1:{proxy.port}/gz", headers={"Accept-Encoding": "gzip"}) as resp:
            body = await resp.read()
            assert resp.headers["Content-Encoding"] == "gzip"
            assert int(resp.headers["Content-Length"]) == len(body)
    assert gzip.decompress(body) == b"hello " * 1000


async def test_redirects_are_relayed_not_followed(upstream_factory, proxy_factory) -> None:
    upstream = await upstream_factory(echo_app())
    proxy = await proxy_factory({"upstreams": [upstream]})
    async with aiohttp.ClientSession() as client:
        async with client.get(f"http://127.0.0.1:{proxy.port}/redirect", allow_redirects=False) as resp:
            assert resp.status == 302
            assert resp.headers["Location"] == "/elsewhere"


async def test_unknown_host_is_refused_and_never_forwarded(upstream_factory, proxy_factory) -> None:
    hits: list[web.Request] = []
    upstream = await upstream_factory(echo_app(hits))
    proxy = await proxy_factory({"upstreams": [f"shop.example={upstream}"]})
    async with aiohttp.ClientSession() as client:
        async with client.get(f"http://127.0.0.1:{proxy.port}/", headers={"Host": "evil.example"}) as resp:
            assert resp.status == 421
        async with client.get(f"http://127.0.0.1:{proxy.port}/", headers={"Host": "SHOP.example:8080"}) as resp:
            assert resp.status == 200
        async with client.get(f"http://127.0.0.1:{proxy.port}/", headers={"Host": "shop.example."}) as resp:
            assert resp.status == 200  # the fully qualified form of the same name
    assert len(hits) == 2


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET http://evil.example/ HTTP/1.1\r\nHost: shop.example\r\n\r\n",
        b"GET http://shop.example/ HTTP/1.1\r\nHost: shop.example\r\n\r\n",
        b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\nHost: shop.example\r\n\r\n",
        b"POST / HTTP/1.0\r\nHost: shop.example\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n",
    ],
)
async def test_refuses_non_origin_targets_and_te_on_http10(upstream_factory, proxy_factory, request_bytes) -> None:
    hits: list[web.Request] = []
    upstream = await upstream_factory(echo_app(hits))
    proxy = await proxy_factory({"upstreams": [f"shop.example={upstream}"]})
    reply = await raw_request(proxy.port, request_bytes)
    assert reply.startswith(b"HTTP/1.1 400") or reply.startswith(b"HTTP/1.0 400"), reply[:80]
    assert hits == []


async def test_upstream_down_is_502(proxy_factory) -> None:
    from proxy.stream.embedded import free_port

    proxy = await proxy_factory({"upstreams": [f"http://127.0.0.1:{free_port()}"]})
    async with aiohttp.ClientSession() as client:
        async with client.get(f"http://127.0.0.1:{proxy.port}/") as resp:
            assert resp.status == 502
            assert "text/html" in resp.headers["Content-Type"]


async def test_upstream_silence_is_504(upstream_factory, proxy_factory) -> None:
    upstream = await upstream_factory(echo_app())
    proxy = await proxy_factory({"upstreams": [upstream], "limits.upstream_read_timeout_seconds": 0.3})
    async with aiohttp.ClientSession() as client:
        async with client.get(f"http://127.0.0.1:{proxy.port}/slow") as resp:
            assert resp.status == 504


async def test_slow_header_phase_gets_408(upstream_factory, proxy_factory) -> None:
    upstream = await upstream_factory(echo_app())
    proxy = await proxy_factory({"upstreams": [upstream], "limits.header_timeout_seconds": 0.3})
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
    for _ in range(2):  # slowloris: header lines trickle in, the blank line never comes
        await asyncio.sleep(0.1)
        writer.write(b"X-A: b\r\n")
        await writer.drain()
    reply = await asyncio.wait_for(reader.read(1000), 3)
    writer.close()
    assert reply.startswith(b"HTTP/1.1 408")


async def test_keepalive_requests_each_get_a_fresh_header_deadline(upstream_factory, proxy_factory) -> None:
    upstream = await upstream_factory(echo_app())
    proxy = await proxy_factory({"upstreams": [upstream], "limits.header_timeout_seconds": 0.3})
    async with aiohttp.ClientSession() as client:
        for _ in range(3):  # one connection, spaced beyond the header deadline
            async with client.get(f"http://127.0.0.1:{proxy.port}/k") as resp:
                assert resp.status == 200
            await asyncio.sleep(0.4)


async def test_oversized_headers_get_431(upstream_factory, proxy_factory) -> None:
    upstream = await upstream_factory(echo_app())
    proxy = await proxy_factory({"upstreams": [upstream], "limits.max_header_bytes": 2048})
    big = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 100) for i in range(40))
    reply = await raw_request(proxy.port, b"GET / HTTP/1.1\r\nHost: x\r\n" + big + b"\r\n")
    assert reply.startswith(b"HTTP/1.1 431")


async def test_body_limit_by_content_length_and_while_streaming(upstream_factory, proxy_factory) -> None:
    upstream = await upstream_factory(echo_app())
    proxy = await proxy_factory({"upstreams": [upstream], "limits.max_body_bytes": 10_000})

    async def chunks():
        for _ in range(20):
            yield b"x" * 1000

    async with aiohttp.ClientSession() as client:
        async with client.post(f"http://127.0.0.1:{proxy.port}/up", data=b"x" * 20_000) as resp:
            assert resp.status == 413
        async with client.post(f"http://127.0.0.1:{proxy.port}/up", data=chunks()) as resp:
            assert resp.status == 413
        async with client.post(f"http://127.0.0.1:{proxy.port}/up", data=b"x" * 9_000) as resp:
            assert resp.status == 200
            assert (await resp.json())["body_len"] == 9_000


async def test_head_and_204_have_no_body(upstream_factory, proxy_factory) -> None:
    async def nothing(_: web.Request) -> web.Response:
        return web.Response(status=204)

    app = web.Application()
    app.router.add_get("/none", nothing)
    async def hello(_: web.Request) -> web.Response:
        return web.Response(text="hello")

    app.router.add_route("*", "/{tail:.*}", hello)
    upstream = await upstream_factory(app)
    proxy = await proxy_factory({"upstreams": [upstream]})
    reply = await raw_request(proxy.port, b"HEAD /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"Content-Length: 5" in head and body == b""
    reply = await raw_request(proxy.port, b"GET /none HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 204") and reply.endswith(b"\r\n\r\n")


async def test_websocket_passes_through(upstream_factory, proxy_factory) -> None:
    async def ws_echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=("chat.v1",))
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                await ws.send_str(f"echo:{msg.data}")
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await ws.send_bytes(msg.data[::-1])
        return ws

    app = web.Application()
    app.router.add_get("/ws", ws_echo)
    upstream = await upstream_factory(app)
    proxy = await proxy_factory({"upstreams": [upstream]})
    async with aiohttp.ClientSession() as client:
        async with client.ws_connect(f"http://127.0.0.1:{proxy.port}/ws", protocols=("chat.v1",)) as ws:
            assert ws.protocol == "chat.v1"
            await ws.send_str("hi")
            assert (await ws.receive(timeout=5)).data == "echo:hi"
            await ws.send_bytes(b"abc")
            assert (await ws.receive(timeout=5)).data == b"cba"


async def test_head_is_relayed_before_a_slow_body_and_with_a_ready_one(upstream_factory, proxy_factory) -> None:
    async def slow_body(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await asyncio.sleep(0.6)
        await resp.write(b"data: late\n\n")
        await resp.write_eof()
        return resp

    async def ready(_: web.Request) -> web.Response:
        return web.Response(text="x" * 20_000)

    app = web.Application()
    app.router.add_get("/events", slow_body)
    app.router.add_get("/ready", ready)
    proxy = await proxy_factory({"upstreams": [await upstream_factory(app)]})
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as client:
        started = loop.time()
        async with client.get(f"http://127.0.0.1:{proxy.port}/events") as resp:
            head_at = loop.time() - started
            assert resp.status == 200 and resp.headers["Content-Type"] == "text/event-stream"
            assert await resp.read() == b"data: late\n\n"
            body_at = loop.time() - started
        assert head_at < 0.4 <= 0.6 <= body_at + 0.05  # the head did not wait for the body
        async with client.get(f"http://127.0.0.1:{proxy.port}/ready") as resp:
            assert resp.status == 200 and await resp.text() == "x" * 20_000


async def test_expect_100_continue_is_answered_by_the_proxy(upstream_factory, proxy_factory) -> None:
    hits: list[web.Request] = []
    proxy = await proxy_factory({"upstreams": [await upstream_factory(echo_app(hits))]})
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-Continue\r\n\r\n")
        await writer.drain()
        # the client holds its body back until it hears 100 Continue (curl would wait 1 s)
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2.0)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"hello")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
        assert head.startswith(b"HTTP/1.1 200")
    finally:
        writer.close()
    assert hits[0].headers.get("Expect") is None and hits[0].headers["Content-Length"] == "5"
    reply = await raw_request(
        proxy.port, b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: magic\r\nConnection: close\r\n\r\n"
    )
    assert reply.startswith(b"HTTP/1.1 417") and len(hits) == 1


@pytest.mark.parametrize(("server_line", "expected"), [(b"", None), (b"Server: upstream/1.0\r\n", b"upstream/1.0")])
async def test_the_proxy_does_not_announce_itself(proxy_factory, server_line, expected) -> None:
    async def bare(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\n" + server_line + b"Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    upstream = await asyncio.start_server(bare, "127.0.0.1", 0)
    try:
        proxy = await proxy_factory({"upstreams": [f"http://127.0.0.1:{upstream.sockets[0].getsockname()[1]}"]})
        reply = await raw_request(proxy.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    finally:
        upstream.close()
        await upstream.wait_closed()
    head, _, body = reply.partition(b"\r\n\r\n")
    servers = [line.split(b":", 1)[1].strip() for line in head.split(b"\r\n") if line.lower().startswith(b"server:")]
    assert head.startswith(b"HTTP/1.1 200") and body == b"ok"
    assert servers == ([expected] if expected else [])
