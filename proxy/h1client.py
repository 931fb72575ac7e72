"""A lean HTTP/1.1 client for the upstream hop: pooled keep-alive connections,
responses parsed by llhttp (``httptools``), bodies streamed both ways with flow control.

Why not aiohttp's ``ClientSession.request``: profiled, it was ~40 % of a proxied
request's CPU (request and response objects, URL handling, tracing hooks, timers,
cookie and redirect machinery a reverse proxy never uses). This client does only
what the upstream hop needs:

- HTTP/1.1, one exchange at a time per connection (no pipelining); a connection
  goes back to the pool only after a complete response that allows keep-alive.
- The request head is written as the forwarder built it; a body passes as sent
  when the client gave a ``Content-Length``, else it is sent chunked.
- Response bodies are de-chunked (the downstream side frames them again) and never
  decompressed. ``1xx`` interim responses are skipped; a ``HEAD`` response has no
  body whatever its headers say; a body without length ends when the upstream closes.
- A reused idle connection that the upstream closed before answering (the
  keep-alive race) is retried once on a new connection, for bodiless idempotent
  requests only.
- Only the TCP connect (and TLS handshake) is timed here, once per new connection;
  read deadlines belong to the watchdog, which cancels the waiting task.
- Reading is paused while more than ``HIGH_WATER`` bytes of body wait for a slow
  client, and a response head longer than ``MAX_HEAD_BYTES`` is a protocol error,
  so memory stays bounded whatever the upstream sends.

WebSocket upgrades are not handled here (the forwarder uses aiohttp for those).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterator, Iterable
from typing import Any, cast
from urllib.parse import urlsplit

import httptools

from proxy.tasks import spawn

HIGH_WATER = 256 * 1024  # body bytes buffered before the upstream socket is paused
MAX_HEAD_BYTES = 256 * 1024  # a response head past this is refused (nginx's default is 4-8 KiB)
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


class UpstreamError(Exception):
    """The upstream failed the exchange; ``kind`` is the event's ``error`` value."""

    kind = "upstream_error"


class ConnectError(UpstreamError):
    """No connection could be made (refused, unreachable, DNS, TLS)."""

    kind = "upstream_connect"


class ConnectTimeout(UpstreamError):
    """The connect (or TLS handshake) took longer than the connect timeout."""

    kind = "upstream_timeout"


class ProtocolError(UpstreamError):
    """The upstream closed before a complete response head, or sent an invalid one."""

    kind = "upstream_error"


class BodyError(UpstreamError):
    """The response body broke off (closed early, or invalid framing)."""

    kind = "upstream_body"


class Origin:
    """Where an upstream URL points: connection key, TLS, Host and path prefix."""

    __slots__ = ("host", "key", "netloc", "port", "prefix", "tls")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        self.netloc = parts.netloc.rpartition("@")[2]
        self.prefix = parts.path.rstrip("/")
        self.key = (self.host, self.port, self.tls)


def request_head(method: str, target: str, headers: Iterable[tuple[str, str]], *, chunked: bool) -> bytes:
    """The request line and header block. Names and values come from a parsed
    request (no CR/LF can be in them); non-ASCII bytes go back as they came."""
    lines = [f"{method} {target} HTTP/1.1"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("utf-8", "surrogateescape")


class UpstreamResponse:
    """Status and headers of an upstream response; the body is read with :meth:`read`.

    ``close()`` must be called (``async with`` does it): it returns the connection
    to the pool when the body was read to its end, and closes it otherwise.
    """

    __slots__ = ("_conn", "headers", "reason", "status")

    def __init__(self, conn: _Connection) -> None:
        self._conn: _Connection | None = conn
        self.status = conn.status
        self.reason = conn.reason
        self.headers = conn.headers  # [(name, value)] as received, repeats kept

    @property
    def body_ready(self) -> bool:
        """Some body bytes, or the end of the body, are already in hand."""
        return self._conn is not None and self._conn.body_ready

    async def read(self) -> bytes:
        """The body bytes received so far (waiting for some), ``b""`` at the end.
        Raises :class:`BodyError` when the body broke off."""
        if self._conn is None:
            raise RuntimeError("the response is closed")
        return await self._conn.read()

    def close(self) -> None:
        """Idempotent: only the first call hands the connection back (or closes it)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.finish()

    async def __aenter__(self) -> UpstreamResponse:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class _Connection(asyncio.Protocol):
    """One upstream socket; its state is that of the exchange in progress, if any."""

    def __init__(self, pool: UpstreamPool, key: tuple[str, int, bool]) -> None:
        self.pool = pool
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reused = False
        self.idle_since = 0.0
        self._loop = pool.loop
        self._parser: Any = None  # set while an exchange is in progress
        self._head_only = False
        self._interim = False
        self.status = 0
        self.reason = ""
        self.headers: list[tuple[str, str]] = []
        self._head_done = False
        self._done = False
        self._keep_alive = False
        self._got_bytes = False
        self._sent_all = False
        self._head_bytes = 0
        self._exc: UpstreamError | None = None
        self._body: deque[bytes] = deque()
        self._buffered = 0
        self._reading_paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._writing_paused = False
        self._drain: asyncio.Future[None] | None = None

    # --- the exchange, driven by the pool and the response ---------------------------

    def begin(self, head_only: bool) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._head_only = head_only
        self._interim = False
        self.status, self.reason, self.headers = 0, "", []
        self._head_done = self._done = self._keep_alive = self._got_bytes = False
        self._sent_all = False
        self._head_bytes = 0
        self._exc = None

    async def send(self, head: bytes, body: AsyncIterator[bytes] | None, chunked: bool) -> None:
        """Write the request. Stops sending (without error) when the upstream has
        already answered or closed: the response, or its absence, tells the rest."""
        transport = self.transport
        assert transport is not None
        transport.write(head)
        if body is None:
            self._sent_all = True
            return
        async for chunk in body:
            if self.closed or self._head_done:
                return  # answered early: the rest of the body is not sent, nor the connection reused
            if chunked:
                if chunk:
                    transport.writelines((b"%x\r\n" % len(chunk), chunk, b"\r\n"))
            else:
                transport.write(chunk)
            if self._writing_paused:
                self._drain = self._loop.create_future()
                await self._drain
        if chunked and not self.closed:
            transport.write(b"0\r\n\r\n")
        self._sent_all = True

    @property
    def body_ready(self) -> bool:
        return bool(self._body) or self._done

    async def response_head(self) -> None:
        while not self._head_done:
            if self._exc is not None:
                raise self._exc
            await self._wait()

    async def read(self) -> bytes:
        while True:
            body = self._body
            if body:
                data = body.popleft() if len(body) == 1 else b"".join(body)
                body.clear()
                self._buffered = 0
                if self._reading_paused and self.transport is not None:
                    self._reading_paused = False
                    self.transport.resume_reading()
                return data
            if self._done:
                return b""
            if self._exc is not None:
                raise self._exc
            await self._wait()

    async def _wait(self) -> None:
        self._waiter = self._loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def finish(self) -> None:
        """End the exchange: back to the pool when complete and reusable, else closed."""
        reusable = self._done and self._keep_alive and self._sent_all and not self.closed and not self._body
        self._parser = None
        self._body.clear()
        self._buffered = 0
        if reusable:
            self.pool.release(self)
        else:
            self.abort()

    def abort(self) -> None:
        self._parser = None
        if self.transport is not None and not self.closed:
            self.transport.abort()  # connection_lost follows and tells the pool
        elif self.transport is None:
            self.pool.forget(self)

    # --- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        if parser is None:
            # Bytes on an idle connection: nothing can be trusted on it any more.
            assert self.transport is not None
            self.transport.abort()
            return
        self._got_bytes = True
        if not self._head_done:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._fail(ProtocolError(f"response head longer than {MAX_HEAD_BYTES} bytes"))
                assert self.transport is not None
                self.transport.abort()
                return
        try:
            parser.feed_data(data)
        except httptools.HttpParserError as exc:
            error = BodyError if self._head_done else ProtocolError
            self._fail(error(f"invalid response from the upstream: {exc}"))
            assert self.transport is not None
            self.transport.abort()

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._parser is not None and not self._done:
            if not self._head_done:
                self._fail(ProtocolError("the upstream closed the connection before answering"))
            elif self._until_close():
                self._done = True  # a body without length ends with the connection
                self._wake()
            else:
                self._fail(BodyError("the upstream closed the connection mid-body"))
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_result(None)
        self.pool.forget(self)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_result(None)

    # --- httptools callbacks -----------------------------------------------------------

    def on_status(self, reason: bytes) -> None:
        self.reason = reason.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1"), value.decode("utf-8", "surrogateescape")))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self._interim = True  # 100 Continue, 103 Early Hints: the real answer follows
            self.headers = []
            return
        self.status = status
        self._head_done = True
        if self._head_only:
            self._done = True
            self._keep_alive = self._head_keep_alive()
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self._done:
            return  # bytes after a HEAD response's head: never parsed as anything
        self._body.append(body)
        self._buffered += len(body)
        if self._buffered > HIGH_WATER and not self._reading_paused and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        if not self._done:
            self._done = True
            self._keep_alive = self._parser.should_keep_alive()
        self._wake()

    # --- helpers ---------------------------------------------------------------------

    def _fail(self, exc: UpstreamError) -> None:
        if self._exc is None:
            self._exc = exc
        self._wake()

    def _head_keep_alive(self) -> bool:
        """Keep-alive after a HEAD response: llhttp would wait for the body a length-less
        head announces, so only the version and Connection decide."""
        tokens = {
            t.strip().lower() for name, value in self.headers if name.lower() == "connection" for t in value.split(",")
        }
        if self._parser.get_http_version() == "1.1":
            return "close" not in tokens
        return "keep-alive" in tokens

    def _until_close(self) -> bool:
        """The response has neither a length nor chunked framing."""
        for name, value in self.headers:
            low = name.lower()
            if low == "content-length" or (low == "transfer-encoding" and "chunked" in value.lower()):
                return False
        return True

    def retryable(self) -> bool:
        return self.reused and not self._got_bytes and isinstance(self._exc, ProtocolError)


class UpstreamPool:
    """Keep-alive connections to the upstream origins of one proxy process.

    ``limit`` bounds the open connections (a request waits for one beyond it);
    idle connections close after ``idle_timeout`` seconds; a connect gets
    ``connect_timeout`` seconds. ``https`` upstreams are verified against
    ``ssl_context`` (default: the system's CAs, hostname checked). Call
    :meth:`start` inside the loop, :meth:`close` at stop.
    """

    def __init__(
        self, *, limit: int, connect_timeout: float, idle_timeout: float, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self._limit = limit
        self._connect_timeout = connect_timeout
        self._idle_timeout = idle_timeout
        self._idle: dict[tuple[str, int, bool], list[_Connection]] = {}
        self._open: set[_Connection] = set()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._ssl = ssl_context  # None: the system's trust store, made on first use
        self._sweeper: asyncio.Task[None] | None = None
        self.closed = False

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def start(self) -> None:
        self._sweeper = spawn(self._sweep_forever(), name="upstream-pool-sweeper")

    async def request(
        self,
        origin: Origin,
        method: str,
        target: str,
        headers: Iterable[tuple[str, str]],
        body: AsyncIterator[bytes] | None = None,
        *,
        chunked: bool = False,
    ) -> UpstreamResponse:
        """Send one request and return once the response head is in.

        ``target`` is the origin-form path and query (the origin's path prefix is
        added here). ``chunked``: frame ``body`` as chunked (no Content-Length was
        given). Raises an :class:`UpstreamError`; whatever ``body`` raises propagates.
        """
        head = request_head(method, origin.prefix + target, headers, chunked=chunked)
        head_only = method == "HEAD"
        retry = body is None and method in _IDEMPOTENT
        while True:
            conn = await self._acquire(origin)
            conn.begin(head_only)
            try:
                await conn.send(head, body, chunked)
                await conn.response_head()
            except ProtocolError:
                if retry and conn.retryable():
                    retry = False
                    conn.abort()
                    continue
                conn.abort()
                raise
            except BaseException:
                conn.abort()
                raise
            return UpstreamResponse(conn)

    async def _acquire(self, origin: Origin) -> _Connection:
        while True:
            idle = self._idle.get(origin.key)
            while idle:
                conn = idle.pop()
                if not conn.closed and conn.transport is not None and not conn.transport.is_closing():
                    conn.reused = True
                    return conn
            if len(self._open) < self._limit or self._close_one_idle():
                return await self._connect(origin)
            waiter = self.loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake_waiter()  # pass on the place this task was given
                raise

    async def _connect(self, origin: Origin) -> _Connection:
        conn = _Connection(self, origin.key)
        self._open.add(conn)
        ssl_context = None
        if origin.tls:
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            ssl_context = self._ssl
        try:
            async with asyncio.timeout(self._connect_timeout):
                await self.loop.create_connection(lambda: conn, origin.host, origin.port, ssl=ssl_context)
        except TimeoutError:
            self.forget(conn)
            raise ConnectTimeout(f"connecting to {origin.netloc} timed out") from None
        except (OSError, ssl.SSLError) as exc:
            self.forget(conn)
            raise ConnectError(f"cannot connect to {origin.netloc}: {exc}") from exc
        except BaseException:
            self.forget(conn)
            raise
        return conn

    def release(self, conn: _Connection) -> None:
        if self.closed:
            conn.abort()
            return
        conn.idle_since = self.loop.time()
        self._idle.setdefault(conn.key, []).append(conn)
        self._wake_waiter()

    def forget(self, conn: _Connection) -> None:
        """``conn`` is closed: it leaves the pool and frees its place."""
        if conn in self._open:
            self._open.discard(conn)
            idle = self._idle.get(conn.key)
            if idle and conn in idle:
                idle.remove(conn)
            self._wake_waiter()

    def _wake_waiter(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _close_one_idle(self) -> bool:
        """At the limit: close the longest-idle connection (to any origin) to make room."""
        oldest: _Connection | None = None
        for conns in self._idle.values():
            if conns and (oldest is None or conns[0].idle_since < oldest.idle_since):
                oldest = conns[0]
        if oldest is None:
            return False
        self._idle[oldest.key].remove(oldest)
        self._open.discard(oldest)
        oldest.abort()
        return True

    def sweep(self) -> int:
        """Close connections idle longer than ``idle_timeout``; returns how many."""
        deadline = self.loop.time() - self._idle_timeout
        closed = 0
        for conns in self._idle.values():
            while conns and conns[0].idle_since < deadline:
                conn = conns.pop(0)
                self._open.discard(conn)
                conn.abort()
                closed += 1
        return closed

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(max(0.5, self._idle_timeout / 4))
            self.sweep()

    async def close(self) -> None:
        """Close idle connections and stop pooling; exchanges in progress finish."""
        self.closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        for conns in self._idle.values():
            for conn in conns:
                conn.abort()
            conns.clear()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.cancel()
        await asyncio.sleep(0)  # let the transports report connection_lost
