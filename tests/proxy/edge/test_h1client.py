"""The upstream HTTP/1.1 client against real loopback servers: raw asyncio servers
where the exact bytes on the wire matter, aiohttp apps where a normal server will do."""

from __future__ import annotations

import asyncio
import hashlib
import random
import socket
import ssl
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import pytest
import trustme
from aiohttp import web

from proxy.edge.h1client import (
    HIGH_WATER,
    MAX_HEAD_BYTES,
    BodyError,
    ConnectError,
    ConnectTimeout,
    Origin,
    ProtocolError,
    UpstreamPool,
    UpstreamResponse,
    request_head,
)

END = b"\r\n\r\n"  # of a head
HOST = (("Host", "upstream"),)
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
INTERIM = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
READ_SIZE = 256 * 1024  # asyncio's largest socket read: the most one data_received can add

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


class RawServer:
    """Runs ``handler(reader, writer, index)`` for each accepted connection (``index``
    counts from 0) and closes the connection when it returns; counts both."""

    def __init__(self, handler: Handler) -> None:
        self.handler, self.accepted, self.ended, self.url = handler, 0, 0, ""
        self.tasks: set[Any] = set()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index, self.accepted = self.accepted, self.accepted + 1
        self.tasks.add(task := asyncio.current_task())
        try:
            await self.handler(reader, writer, index)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client closed (between requests or not): the test looks at the client side
        finally:
            writer.close()
            self.ended += 1
            self.tasks.discard(task)


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[[Handler], Awaitable[RawServer]]]:
    """``await make(handler)`` serves a :class:`RawServer` on loopback; all stop at teardown."""
    started: list[tuple[asyncio.Server, RawServer]] = []

    async def make(handler: Handler) -> RawServer:
        raw = RawServer(handler)
        server = await asyncio.start_server(raw.serve, "127.0.0.1", 0)
        raw.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        started.append((server, raw))
        return raw

    yield make
    for server, raw in started:
        server.close()
        for task in raw.tasks:
            task.cancel()
        await asyncio.gather(*raw.tasks, return_exceptions=True)
        await server.wait_closed()
    await asyncio.sleep(0)  # the closed transports release their sockets


@pytest.fixture
async def make_pool() -> AsyncIterator[Callable[..., UpstreamPool]]:
    """``make(limit=, idle_timeout=, connect_timeout=, start=)``; pools are closed at teardown."""
    pools: list[UpstreamPool] = []

    def make(*, limit: int = 10, idle_timeout: float = 30.0, connect_timeout: float = 2.0,
             start: bool = True, ssl_context: ssl.SSLContext | None = None) -> UpstreamPool:  # fmt: skip
        pools.append(UpstreamPool(limit=limit, connect_timeout=connect_timeout, idle_timeout=idle_timeout,
                                  ssl_context=ssl_context))  # fmt: skip
        if start:
            pools[-1].start()
        return pools[-1]

    yield make
    for pool in pools:
        await pool.close()


@pytest.fixture
async def pool(make_pool: Callable[..., UpstreamPool]) -> UpstreamPool:
    return make_pool()


async def app_origin(upstream_factory: Callable[..., Awaitable[str]], method: str,
                     handler: Callable[..., Awaitable[web.StreamResponse]], path: str = "/") -> Origin:  # fmt: skip
    """Serve one aiohttp ``handler`` for ``method`` and ``path``; the server's origin."""
    app = web.Application()
    app.router.add_route(method, path, handler)
    return Origin(await upstream_factory(app))


def serve(respond: bytes | Callable[[bytes], bytes], *, close: bool = False,
          heads: list[bytes] | None = None) -> Handler:  # fmt: skip
    """Answer each request head with ``respond`` (or ``respond(head)``), keeping the
    connection open unless ``close``. Request bodies are not read."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
        while True:  # until the client closes
            head = await reader.readuntil(END)
            if heads is not None:
                heads.append(head)
            writer.write(respond(head) if callable(respond) else respond)
            if close:
                return

    return handler


async def read_all(resp: UpstreamResponse, into: list[bytes] | None = None) -> bytes:
    """The whole body; ``into`` keeps the pieces read, for a body that breaks off."""
    into = [] if into is None else into
    while part := await resp.read():
        into.append(part)
    return b"".join(into)


async def fetch(pool: UpstreamPool, origin: Origin, method: str = "GET", target: str = "/",
                headers: Iterable[tuple[str, str]] = HOST, body: AsyncIterator[bytes] | None = None,
                *, chunked: bool = False) -> tuple[int, list[tuple[str, str]], bytes]:  # fmt: skip
    """One exchange, bounded in time: status, headers and the whole body."""
    async with asyncio.timeout(5):
        async with await pool.request(origin, method, target, headers, body, chunked=chunked) as resp:
            return resp.status, resp.headers, await read_all(resp)


async def parts(*chunks: bytes, fail: Exception | None = None) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk
    if fail is not None:
        raise fail


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while not condition():  # noqa: ASYNC110 -- pool and server counters have no event to wait on
            await asyncio.sleep(0.005)


# --- pure parts ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "target", "headers", "chunked", "expected"),
    [
        ("GET", "/", [], False, b"GET / HTTP/1.1\r\n\r\n"),
        ("GET", "/a%20b?x=1", [("Host", "shop"), ("Accept", "*/*")], False,
         b"GET /a%20b?x=1 HTTP/1.1\r\nHost: shop\r\nAccept: */*\r\n\r\n"),
        ("PUT", "/u", [("Content-Length", "3")], False, b"PUT /u HTTP/1.1\r\nContent-Length: 3\r\n\r\n"),
        ("POST", "/up", [("Host", "shop"), ("Cookie", "a=1"), ("Cookie", "b=2")], True,
         b"POST /up HTTP/1.1\r\nHost: shop\r\nCookie: a=1\r\nCookie: b=2\r\nTransfer-Encoding: chunked\r\n\r\n"),
        ("GET", "/", [("X-Name", "café")], False, b"GET / HTTP/1.1\r\nX-Name: caf\xc3\xa9\r\n\r\n"),
        ("GET", "/", [("X-Raw", b"\xe9\xff".decode("utf-8", "surrogateescape"))], False,
         b"GET / HTTP/1.1\r\nX-Raw: \xe9\xff\r\n\r\n"),
    ],
    ids=["bare", "headers-in-order", "content-length", "chunked-and-repeats", "utf8", "raw-bytes"],
)  # fmt: skip
def test_request_head_bytes(method, target, headers, chunked, expected) -> None:
    assert request_head(method, target, headers, chunked=chunked) == expected


@pytest.mark.parametrize(
    ("url", "host", "port", "tls", "netloc", "prefix"),
    [
        ("http://example.com", "example.com", 80, False, "example.com", ""),
        ("https://example.com/", "example.com", 443, True, "example.com", ""),
        ("http://127.0.0.1:8080/api/", "127.0.0.1", 8080, False, "127.0.0.1:8080", "/api"),
        ("https://user:pw@Shop.Example:8443/a/b//", "shop.example", 8443, True, "Shop.Example:8443", "/a/b"),
        ("http://[::1]:81/x", "::1", 81, False, "[::1]:81", "/x"),
    ],
    ids=["http", "https", "port-and-prefix", "userinfo-and-case", "ipv6"],
)
def test_origin(url, host, port, tls, netloc, prefix) -> None:
    origin = Origin(url)
    assert (origin.host, origin.port, origin.tls, origin.netloc, origin.prefix) == (host, port, tls, netloc, prefix)
    assert origin.key == (host, port, tls)


@pytest.mark.parametrize("url", ["", "example.com", "ftp://example.com/", "http:///path", "http://example.com:99999/"])
def test_origin_rejects_what_is_not_an_http_url(url) -> None:
    with pytest.raises(ValueError, match=r"not an http|[Pp]ort"):
        Origin(url)


# --- responses -----------------------------------------------------------------------


async def test_get_with_length_repeated_headers_and_path_prefix(upstream_factory, pool) -> None:
    payload = random.Random(1).randbytes(100_000)

    async def page(request: web.Request) -> web.Response:
        return web.Response(body=payload, headers=[("X-Path", request.raw_path), ("Set-Cookie", "a=1"),
                                                   ("Set-Cookie", "b=2")])  # fmt: skip

    base = await app_origin(upstream_factory, "GET", page, "/api/x")
    origin = Origin(f"http://{base.netloc}/api/")
    async with await pool.request(origin, "GET", "/x?y=%2F", HOST) as resp:
        assert (resp.status, resp.reason) == (200, "OK")
        assert await read_all(resp) == payload
    assert ("Content-Length", "100000") in resp.headers
    assert ("X-Path", "/api/x?y=%2F") in resp.headers
    assert [v for k, v in resp.headers if k == "Set-Cookie"] == ["a=1", "b=2"]


@pytest.mark.parametrize(
    ("method", "response", "status", "body", "reused"),
    [
        ("GET", OK, 200, b"ok", True),
        ("GET", CHUNKED, 200, b"hello world", True),
        ("GET", b"HTTP/1.1 204 No Content\r\n\r\n", 204, b"", True),
        ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", 200, b"", True),  # a body would hang
        ("HEAD", b"HTTP/1.1 200 OK\r\n\r\n", 200, b"", True),  # no length: still no body
        ("HEAD", b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", 200, b"", False),
        ("GET", INTERIM + b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal", 200, b"final", True),
        ("GET", b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", 200, b"ok", False),
        ("GET", b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 200, b"ok", False),
        ("GET", b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", 200, b"ok", True),
    ],
    ids=["length", "chunked", "204", "head", "head-no-length", "head-close", "interim-1xx", "connection-close",
         "http10", "http10-keep-alive"],
)
async def test_framing_and_keep_alive_follow_the_response(raw_server, pool, method, response, status, body,
                                                          reused) -> None:  # fmt: skip
    # The server never closes: whether the connection is reused is the client's decision.
    server = await raw_server(serve(response))
    origin = Origin(server.url)
    for _ in range(2):
        got = await fetch(pool, origin, method)
        assert (got[0], got[2]) == (status, body)
    assert server.accepted == (1 if reused else 2)
    assert pool.open_connections == 1


async def test_interim_responses_leave_only_the_final_head(raw_server, pool) -> None:
    server = await raw_server(serve(INTERIM + b"HTTP/1.1 201 Created\r\nX-Final: 1\r\nContent-Length: 0\r\n\r\n"))
    status, headers, _ = await fetch(pool, Origin(server.url))
    assert (status, headers) == (201, [("X-Final", "1"), ("Content-Length", "0")])


async def test_body_without_length_ends_at_close_and_is_not_reused(raw_server, pool) -> None:
    payload = random.Random(2).randbytes(300_000)
    server = await raw_server(serve(b"HTTP/1.1 200 OK\r\n\r\n" + payload, close=True))
    origin = Origin(server.url)
    for _ in range(2):
        assert await fetch(pool, origin) == (200, [], payload)
    assert server.accepted == 2


async def test_a_response_closed_before_its_end_closes_the_connection(raw_server, pool) -> None:
    server = await raw_server(serve(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100_000))
    origin = Origin(server.url)
    async with await pool.request(origin, "GET", "/", HOST) as resp:
        assert resp.status == 200  # the body is left unread
    assert (await fetch(pool, origin))[2] == b"x" * 100_000
    assert server.accepted == 2


async def test_non_ascii_header_bytes_round_trip(raw_server, pool) -> None:
    heads: list[bytes] = []
    response = b"HTTP/1.1 200 OK\r\nX-Name: caf\xc3\xa9 \xff\r\nContent-Length: 0\r\n\r\n"
    server = await raw_server(serve(response, heads=heads))
    origin = Origin(server.url)
    value = dict((await fetch(pool, origin))[1])["X-Name"]
    assert value == "café \udcff"
    await fetch(pool, origin, headers=[*HOST, ("X-Name", value)])
    assert heads[1].endswith(b"\r\nX-Name: caf\xc3\xa9 \xff\r\n\r\n")


# --- request bodies ------------------------------------------------------------------


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_request_body_reaches_the_upstream(upstream_factory, pool, chunked) -> None:
    blocks = [random.Random(i).randbytes(64 * 1024) for i in range(16)]  # more than the socket buffers hold

    async def digest(request: web.Request) -> web.Response:
        body = await request.read()
        return web.Response(text=f"{hashlib.sha256(body).hexdigest()} {request.headers.get('Transfer-Encoding')}")

    origin = await app_origin(upstream_factory, "POST", digest)
    headers = HOST if chunked else (*HOST, ("Content-Length", str(16 * 64 * 1024)))
    status, _, got = await fetch(pool, origin, "POST", "/", headers, parts(*blocks), chunked=chunked)
    assert status == 200
    assert got.decode() == f"{hashlib.sha256(b''.join(blocks)).hexdigest()} {'chunked' if chunked else None}"


async def test_chunked_request_framing_on_the_wire(raw_server, pool) -> None:
    received: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
        received.append(await reader.readuntil(END))
        received.append(await reader.readuntil(b"0\r\n\r\n"))
        writer.write(OK)

    server = await raw_server(handler)
    await fetch(pool, Origin(server.url), "POST", "/up", HOST, parts(b"hello", b"", b" world!"), chunked=True)
    assert received == [
        b"POST /up HTTP/1.1\r\nHost: upstream\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"5\r\nhello\r\n7\r\n world!\r\n0\r\n\r\n",  # the empty chunk is not sent: it would end the body
    ]


async def test_a_failing_request_body_propagates_and_closes_the_connection(raw_server, pool) -> None:
    received: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
        await reader.readuntil(END)
        received.append(await reader.read())  # up to EOF

    server = await raw_server(handler)
    body = parts(b"part", fail=RuntimeError("the client went away"))
    with pytest.raises(RuntimeError, match="went away"):
        await pool.request(Origin(server.url), "POST", "/", (*HOST, ("Content-Length", "100")), body)
    await until(lambda: server.ended == 1)
    assert received == [b"part"]
    assert pool.open_connections == 0


async def test_an_early_answer_stops_the_upload_and_the_connection_is_not_reused(raw_server, pool) -> None:
    server = await raw_server(serve(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n"))
    origin = Origin(server.url)

    async def endless() -> AsyncIterator[bytes]:
        while True:  # only the client's stopping ends it (fetch has a deadline)
            yield b"a" * 1000
            await asyncio.sleep(0.01)

    assert (await fetch(pool, origin, "POST", "/", (*HOST, ("Content-Length", "10000000")), endless()))[0] == 413
    assert (await fetch(pool, origin))[0] == 413
    assert server.accepted == 2


# --- failures ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "kind"),
    [(ConnectError, "upstream_connect"),
     pytest.param(ConnectTimeout, "upstream_timeout", marks=pytest.mark.skipif(
         sys.platform != "linux", reason="relies on Linux dropping SYNs to a full accept queue"))],
    ids=["refused", "timeout"],
)  # fmt: skip
async def test_connect_failures(make_pool, error, kind) -> None:
    pool = make_pool(connect_timeout=0.2)
    with socket.socket() as listener, socket.socket() as filler:
        listener.bind(("127.0.0.1", 0))  # bound, not listening: a connect is refused
        if error is ConnectTimeout:
            listener.listen(0)
            filler.settimeout(2)
            filler.connect(listener.getsockname())  # the accept queue is full: the next SYN is dropped
        with pytest.raises(error) as caught:
            await fetch(pool, Origin(f"http://127.0.0.1:{listener.getsockname()[1]}"))
    assert caught.value.kind == kind
    assert pool.open_connections == 0


@pytest.mark.parametrize(
    ("response", "close"),
    [(b"", True), (b"HTTP/1.1 200 OK\r\nContent-Le", True), (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", False),
     (b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (MAX_HEAD_BYTES + 1), False)],
    ids=["closed-before-answering", "closed-mid-head", "garbage", "head-too-long"],
)
async def test_no_valid_response_head_is_protocol_error(raw_server, pool, response, close) -> None:
    server = await raw_server(serve(response, close=close))
    with pytest.raises(ProtocolError) as caught:
        await fetch(pool, Origin(server.url))
    assert caught.value.kind == "upstream_error"
    assert server.accepted == 1  # a new connection's failure is not retried
    await until(lambda: pool.open_connections == 0)


@pytest.mark.parametrize(
    ("rest", "close", "received"),
    [
        (b"Content-Length: 100\r\n\r\n" + b"x" * 40, True, b"x" * 40),
        (b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3\r\nab", True, b"helloab"),
        (b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n", False, b"hello"),
    ],
    ids=["length-cut", "chunked-cut", "chunked-invalid"],
)
async def test_a_broken_body_raises_after_the_bytes_received(raw_server, pool, rest, close, received) -> None:
    server = await raw_server(serve(b"HTTP/1.1 200 OK\r\n" + rest, close=close))
    got: list[bytes] = []
    async with asyncio.timeout(5), await pool.request(Origin(server.url), "GET", "/", HOST) as resp:
        with pytest.raises(BodyError) as caught:
            await read_all(resp, got)
    assert b"".join(got) == received
    assert caught.value.kind == "upstream_body"
    await until(lambda: pool.open_connections == 0)


@pytest.mark.parametrize(
    ("method", "body", "retried"),
    [("GET", None, True), ("POST", None, False), ("POST", b"data", False)],
    ids=["bodiless-get-retried", "post-not-retried", "body-not-retried"],
)
async def test_keep_alive_race_retries_bodiless_idempotent_requests(raw_server, pool, method, body, retried) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
        answered = 0
        while await reader.readuntil(END):
            if index == 0 and answered == 1:
                return  # the idle connection times out just as the next request arrives
            writer.write(OK)
            answered += 1

    server = await raw_server(handler)
    origin = Origin(server.url)
    assert (await fetch(pool, origin))[2] == b"ok"
    headers = HOST if body is None else (*HOST, ("Content-Length", str(len(body))))
    second = fetch(pool, origin, method, "/", headers, None if body is None else parts(body))
    if retried:
        assert (await second)[2] == b"ok"
    else:
        with pytest.raises(ProtocolError):
            await second
    assert server.accepted == (2 if retried else 1)


# --- flow control and the pool -------------------------------------------------------


async def test_a_large_response_read_slowly_is_complete_and_buffering_is_bounded(upstream_factory, pool) -> None:
    payload = random.Random(3).randbytes(8 * 1024 * 1024)

    async def big(_: web.Request) -> web.Response:
        return web.Response(body=payload)

    origin = await app_origin(upstream_factory, "GET", big)
    digest, peak, paused = hashlib.sha256(), 0, False
    async with asyncio.timeout(30), await pool.request(origin, "GET", "/", HOST) as resp:
        conn = resp._conn
        while True:
            await asyncio.sleep(0.002)  # a slow client: the upstream gets ahead
            peak, paused = max(peak, conn._buffered), paused or conn._reading_paused
            if not (chunk := await resp.read()):
                break
            digest.update(chunk)
    assert digest.digest() == hashlib.sha256(payload).digest()
    assert paused
    assert peak <= HIGH_WATER + READ_SIZE
    assert pool.open_connections == 1  # read to its end: kept for the next request


async def test_limit_one_serves_concurrent_requests_in_turn_on_one_connection(upstream_factory, make_pool) -> None:
    pool = make_pool(limit=1)
    peers: set[object] = set()
    in_flight = peak = 0

    async def slow(request: web.Request) -> web.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        peers.add(request.transport.get_extra_info("peername"))  # type: ignore[union-attr]
        await asyncio.sleep(0.05)
        in_flight -= 1
        return web.Response(text="done")

    origin = await app_origin(upstream_factory, "GET", slow)
    results = await asyncio.gather(*(fetch(pool, origin) for _ in range(3)))
    assert [(status, body) for status, _, body in results] == [(200, b"done")] * 3
    assert (peak, len(peers)) == (1, 1)
    assert pool.open_connections == 1


@pytest.mark.parametrize("cancel_after_wake", [False, True], ids=["while-waiting", "just-woken"])
async def test_a_cancelled_waiter_does_not_leak_the_slot(raw_server, make_pool, cancel_after_wake) -> None:
    pool = make_pool(limit=1)
    server = await raw_server(serve(OK))
    origin = Origin(server.url)
    first = await pool.request(origin, "GET", "/", HOST)
    cancelled = asyncio.create_task(fetch(pool, origin))
    later = asyncio.create_task(fetch(pool, origin))
    await asyncio.sleep(0.01)
    assert not cancelled.done() and not later.done()  # both wait for the one connection
    if not cancel_after_wake:
        cancelled.cancel()
    assert await read_all(first) == b"ok"
    first.close()  # back to the pool: the first waiter is woken...
    if cancel_after_wake:
        cancelled.cancel()  # ...and cancelled before it could run
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert (await later)[2] == b"ok"
    assert server.accepted == 1
    assert pool.open_connections == 1


async def test_sweep_closes_connections_idle_past_the_timeout(raw_server, make_pool) -> None:
    pool = make_pool(idle_timeout=0.2, start=False)
    server = await raw_server(serve(OK))
    origin = Origin(server.url)
    await fetch(pool, origin)
    assert pool.sweep() == 0  # just released
    await asyncio.sleep(0.3)
    assert pool.sweep() == 1
    assert pool.open_connections == 0
    await until(lambda: server.ended == 1)  # the upstream saw it close
    await fetch(pool, origin)
    assert server.accepted == 2


async def test_close_closes_idle_connections_and_busy_ones_when_done(raw_server, pool) -> None:
    server = await raw_server(serve(OK))
    origin = Origin(server.url)
    busy = await pool.request(origin, "GET", "/", HOST)
    await fetch(pool, origin)  # a second connection, idle after this
    assert (server.accepted, pool.open_connections) == (2, 2)
    await pool.close()
    assert pool.open_connections == 1  # the exchange in progress goes on
    await until(lambda: server.ended == 1)
    assert await read_all(busy) == b"ok"
    busy.close()
    await until(lambda: pool.open_connections == 0 and server.ended == 2)


async def test_close_twice_hands_the_connection_back_once(pool, upstream_factory) -> None:
    async def hello(_: web.Request) -> web.Response:
        return web.Response(text="hi")

    app = web.Application()
    app.router.add_get("/", hello)
    origin = Origin(await upstream_factory(app))
    resp = await pool.request(origin, "GET", "/", [("Host", "x")])
    assert await resp.read() == b"hi" and await resp.read() == b""
    resp.close()
    resp.close()
    assert sum(len(conns) for conns in pool._idle.values()) == 1
    with pytest.raises(RuntimeError):
        await resp.read()


async def test_https_upstream_is_verified_and_pooled(make_pool) -> None:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)

    async def hello(_: web.Request) -> web.Response:
        return web.Response(text="over tls")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
    await site.start()
    try:
        origin = Origin(f"https://127.0.0.1:{runner.addresses[0][1]}")
        trusting = ssl.create_default_context()
        ca.configure_trust(trusting)
        pool = make_pool(ssl_context=trusting)
        for _ in range(2):
            status, _, body = await fetch(pool, origin)
            assert (status, body) == (200, b"over tls")
        assert pool.open_connections == 1  # the TLS connection was kept and reused
        # the system's trust store does not know this CA: the handshake fails, nothing is sent
        with pytest.raises(ConnectError):
            await fetch(make_pool(), origin)
    finally:
        await runner.cleanup()
