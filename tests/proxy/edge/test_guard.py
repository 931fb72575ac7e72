"""The listener's own limits on real sockets: idle connections, malformed requests
(counted, logged briefly), and the proxy's pages naming no server."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiohttp import web

from tests.proxy.edge.test_forward import echo_app, raw_request


async def test_a_connection_that_never_sends_a_byte_is_closed(upstream_factory, proxy_factory) -> None:
    proxy = await proxy_factory({"upstreams": [await upstream_factory(echo_app())],
                                 "limits.header_timeout_seconds": 0.5})  # fmt: skip
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    started = loop.time()
    try:
        reply = await asyncio.wait_for(reader.read(), 3.0)  # returns at EOF: the proxy closed
    finally:
        writer.close()
    assert 0.5 <= loop.time() - started < 2.0  # the deadline plus a tick or two (and a busy CI machine)
    assert reply.startswith(b"HTTP/1.1 408")
    assert proxy.metrics.refused.labels("header_timeout")._value.get() == 1


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"G\x01T / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/9.9x\r\nHost: x\r\n\r\n",
    ],
)
async def test_malformed_requests_are_counted_and_logged_briefly(
    parser, upstream_factory, proxy_factory, caplog, request_bytes
) -> None:
    proxy = await proxy_factory({"upstreams": [await upstream_factory(echo_app())]})
    caplog.set_level(logging.DEBUG)
    for _ in range(100):
        reply = await raw_request(proxy.port, request_bytes)
        head = reply.partition(b"\r\n\r\n")[0]
        assert head.startswith((b"HTTP/1.1 400", b"HTTP/1.0 400")), reply[:120]
        assert b"server:" not in head.lower()
    counted = {s.labels["reason"]: s.value for m in proxy.metrics.refused.collect() for s in m.samples
               if s.name.endswith("_total")}  # fmt: skip
    assert sum(counted.values()) == 100, counted
    records = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert 1 <= len(records) <= 2, [r.getMessage() for r in records]  # one line per 10 s per reason
    for r in records:
        line = r.getMessage()
        assert r.exc_info is None and "\n" not in line and len(line) < 300, line
        assert line.startswith("refused "), line
    assert set(counted) <= {"bad_header", "bad_method", "bad_request_line", "bad_request"}, counted


async def test_the_proxys_own_pages_name_no_server(upstream_factory, proxy_factory) -> None:
    async def silent(_: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.Response(text="late")

    async def ws(request: web.Request) -> web.WebSocketResponse:
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        await sock.close()
        return sock

    app = web.Application()
    app.router.add_get("/slow", silent)
    app.router.add_get("/ws", ws)
    upstream = await upstream_factory(app)
    from proxy.stream.embedded import free_port

    proxy = await proxy_factory({"upstreams": [f"shop.example={upstream}", f"down.example=http://127.0.0.1:{free_port()}"],
                                 "limits.upstream_read_timeout_seconds": 0.3, "limits.max_body_bytes": 10})  # fmt: skip
    cases = {
        b"GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n": b"421",
        b"GET http://x/ HTTP/1.1\r\nHost: shop.example\r\n\r\n": b"400",
        b"POST / HTTP/1.1\r\nHost: shop.example\r\nContent-Length: 11\r\n\r\nhello world": b"413",
        b"GET / HTTP/1.1\r\nHost: down.example\r\n\r\n": b"502",
        b"GET /slow HTTP/1.1\r\nHost: shop.example\r\n\r\n": b"504",
        b"GET / HTTP/1.1\r\nHost: shop.example\r\nX: \x00\r\n\r\n": b"400",
        b"GET /ws HTTP/1.1\r\nHost: shop.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n": b"101",
    }
    for request_bytes, status in cases.items():
        reply = await raw_request(proxy.port, request_bytes)
        head = reply.partition(b"\r\n\r\n")[0]
        assert head[:12] in (b"HTTP/1.1 " + status, b"HTTP/1.0 " + status), (request_bytes, reply[:120])
        assert b"\r\nserver:" not in head.lower(), head
