"""Request bodies that break or stall mid-stream are the client's fault: 400 or 408,
the upstream exchange aborted, the event's ``error`` naming the client (real sockets)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
import redis.asyncio as aioredis
from aiohttp import web


async def events(client: aioredis.Redis, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        entries = await client.xrange("footfall:events")
        if len(entries) >= n or asyncio.get_running_loop().time() > deadline:
            return [orjson.loads(fields[b"event"]) for _, fields in entries]
        await asyncio.sleep(0.02)


def reading_upstream(seen: list[bytes], closed: asyncio.Event) -> web.Application:
    """An upstream that reads the body as it comes and notes when its request ends."""

    async def sink(request: web.Request) -> web.Response:
        try:
            async for chunk in request.content.iter_any():
                seen.append(chunk)
            return web.Response(text="got it")
        except ConnectionError:  # the proxy aborted the exchange: expected here, not logged
            return web.Response(status=499)
        finally:
            closed.set()  # the body ended, broke off, or the handler was cancelled

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", sink)
    return app


async def read_reply(reader: asyncio.StreamReader, timeout: float) -> bytes:
    """Everything the proxy sends until it closes the connection."""
    return await asyncio.wait_for(reader.read(), timeout)


async def test_chunked_body_malformed_mid_stream_is_400_and_the_clients_fault(
    parser, upstream_factory, proxy_factory, redis_server, redis_client
) -> None:
    seen: list[bytes] = []
    closed = asyncio.Event()
    upstream = await upstream_factory(reading_upstream(seen, closed))
    proxy = await proxy_factory({"upstreams": [upstream]}, redis_url=redis_server.url)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await writer.drain()
        for _ in range(100):  # the head and first chunk have been forwarded
            if seen:
                break
            await asyncio.sleep(0.02)
        assert seen == [b"hello"]
        writer.write(b"0_2e\r\n\r\n")  # a second segment with a bad chunk-size line
        await writer.drain()
        reply = await read_reply(reader, 5.0)  # well before the 60 s upstream deadline
    finally:
        writer.close()
    head = reply.partition(b"\r\n\r\n")[0].lower()
    assert reply.startswith(b"HTTP/1.1 400"), reply[:200]
    assert b"connection: close" in head
    assert b"server:" not in head
    await asyncio.wait_for(closed.wait(), 5.0)  # the upstream exchange was aborted
    assert seen == [b"hello"]  # no terminating chunk: the upstream never saw a "complete" body
    (event,) = await events(redis_client, 1)
    assert event["status"] == 400 and event["error"] == "client_bad_body"
    assert proxy.metrics.refused.labels("client_bad_body")._value.get() == 1


async def rate_limited_proxy(upstream_factory: Any, proxy_factory: Any, redis_server: Any) -> tuple[Any, asyncio.Event]:
    """A proxy that times a body out after 1 s of silence or below 50 B/s, before a reading
    upstream; and the event set when the upstream's request ends."""
    closed = asyncio.Event()
    upstream = await upstream_factory(reading_upstream([], closed))
    proxy = await proxy_factory(
        {"upstreams": [upstream], "limits.client_body_idle_seconds": 1.0, "limits.client_body_min_rate_bytes": 50},
        redis_url=redis_server.url,
    )
    return proxy, closed


async def test_body_trickling_below_the_minimum_rate_is_408(
    parser, upstream_factory, proxy_factory, redis_server, redis_client
) -> None:
    proxy, closed = await rate_limited_proxy(upstream_factory, proxy_factory, redis_server)
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    started = loop.time()

    async def trickle() -> None:  # one byte every 0.25 s: never silent for 1 s, but 4 B/s
        while not writer.is_closing():
            writer.write(b"x")
            await asyncio.sleep(0.25)

    writer.write(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
    sender = asyncio.create_task(trickle())
    try:  # the proxy lingers after the answer, so our trickle cannot reset it away (next test)
        reply = await read_reply(reader, 10.0)
    finally:
        sender.cancel()
        writer.close()
    elapsed = loop.time() - started
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    assert b"connection: close" in reply.partition(b"\r\n\r\n")[0].lower()
    assert 1.0 < elapsed < 6.0  # 1 s grace + a few bytes' worth + a tick (generous: shared CI machines)
    await asyncio.wait_for(closed.wait(), 5.0)  # the upstream connection was released
    (event,) = await events(redis_client, 1)
    assert event["status"] == 408 and event["error"] == "client_timeout"
    assert proxy.metrics.refused.labels("client_timeout")._value.get() == 1


async def test_a_refused_body_lingers_so_a_client_still_sending_reads_its_408(
    parser, upstream_factory, proxy_factory, redis_server, redis_client
) -> None:
    """After the 408 the proxy half-closes and keeps reading (and dropping) for a while, as
    nginx's lingering close does: the client reads the whole answer, and bytes it sends
    after the FIN are not met with a reset; closing a socket with unread bytes would send
    one, which can destroy the answer before the client reads it."""
    proxy, _ = await rate_limited_proxy(upstream_factory, proxy_factory, redis_server)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
    got = b""
    deadline = asyncio.get_running_loop().time() + 10.0
    while not reader.at_eof():  # one byte every 0.1 s (10 B/s) until the proxy answers and sends its FIN
        assert asyncio.get_running_loop().time() < deadline, got[:200]
        writer.write(b"x")
        await writer.drain()
        with contextlib.suppress(TimeoutError):
            got += await asyncio.wait_for(reader.read(4096), 0.1)
    assert got.startswith(b"HTTP/1.1 408"), got[:200]
    for _ in range(5):  # still sending after the FIN: read and dropped, no reset
        writer.write(b"y" * 1000)
        await writer.drain()
        await asyncio.sleep(0.1)
    writer.close()
    await writer.wait_closed()
    assert proxy.metrics.refused.labels("client_timeout")._value.get() == 1


async def test_body_that_stops_is_408_client_timeout_not_504(
    parser, upstream_factory, proxy_factory, redis_server, redis_client
) -> None:
    seen: list[bytes] = []
    closed = asyncio.Event()
    upstream = await upstream_factory(reading_upstream(seen, closed))
    proxy = await proxy_factory(
        {"upstreams": [upstream], "limits.client_body_idle_seconds": 0.5,
         "limits.upstream_read_timeout_seconds": 0.3},  # the upstream deadline is the shorter one
        redis_url=redis_server.url,
    )  # fmt: skip
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"x" * 10)
        await writer.drain()
        reply = await read_reply(reader, 5.0)
    finally:
        writer.close()
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    await asyncio.wait_for(closed.wait(), 5.0)
    assert b"".join(seen) == b"x" * 10
    (event,) = await events(redis_client, 1)
    assert event["status"] == 408 and event["error"] == "client_timeout"


async def test_a_steady_slow_upload_above_the_rate_passes(parser, upstream_factory, proxy_factory) -> None:
    seen: list[bytes] = []
    closed = asyncio.Event()
    upstream = await upstream_factory(reading_upstream(seen, closed))
    proxy = await proxy_factory(
        {"upstreams": [upstream], "limits.client_body_idle_seconds": 0.5, "limits.client_body_min_rate_bytes": 100}
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 1200\r\nConnection: close\r\n\r\n")
        for _ in range(12):  # 1.2 s in all at 1,000 B/s: past the idle grace, above the rate
            await asyncio.sleep(0.1)
            writer.write(b"y" * 100)
        reply = await read_reply(reader, 5.0)
    finally:
        writer.close()
    assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
    assert b"".join(seen) == b"y" * 1200


async def test_client_hanging_up_mid_body_is_a_disconnect_not_an_error_log(
    parser, upstream_factory, proxy_factory, redis_server, redis_client, caplog
) -> None:
    seen: list[bytes] = []
    closed = asyncio.Event()
    upstream = await upstream_factory(reading_upstream(seen, closed))
    proxy = await proxy_factory({"upstreams": [upstream]}, redis_url=redis_server.url)
    _reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"x" * 10)
    await writer.drain()
    for _ in range(100):
        if seen:
            break
        await asyncio.sleep(0.02)
    writer.transport.abort()  # hang up mid-body
    await asyncio.wait_for(closed.wait(), 5.0)  # the upstream exchange was aborted
    (event,) = await events(redis_client, 1)
    assert event["error"] == "client_disconnect"
    assert event["status"] == 499
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]
