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
from urllib.parse import urlsplit

from proxy.edge.h1connection import (
    HIGH_WATER,
    MAX_HEAD_BYTES,
    BodyError,
    ConnectError,
    ConnectTimeout,
    ProtocolError,
    UpstreamConnection,
    UpstreamError,
)
from proxy.tasks import spawn

__all__ = [
    "HIGH_WATER", "MAX_HEAD_BYTES", "BodyError", "ConnectError", "ConnectTimeout", "Origin",
    "ProtocolError", "UpstreamError", "UpstreamPool", "UpstreamResponse", "request_head",
]  # fmt: skip

_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


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

    def __init__(self, conn: UpstreamConnection) -> None:
        self._conn: UpstreamConnection | None = conn
        self.status = conn.status
        self.reason = conn.reason
        self.headers = conn.headers  # [(name, value)] as received, repeats kept

    @property
    def body_ready(self) -> bool:
        """Some body bytes, or the end of the body, are already in hand."""
        return self._conn is not None and self._conn.body_ready

    @property
    def body_complete(self) -> bool:
        """The whole body is in hand (it ended, and nothing of it was read yet or
        since): the next :meth:`read` returns all of it, the one after ``b""``."""
        return self._conn is not None and self._conn.body_complete

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
        self._idle: dict[tuple[str, int, bool], list[UpstreamConnection]] = {}
        self._open: set[UpstreamConnection] = set()
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

    async def _acquire(self, origin: Origin) -> UpstreamConnection:
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

    async def _connect(self, origin: Origin) -> UpstreamConnection:
        conn = UpstreamConnection(self, origin.key)
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

    def release(self, conn: UpstreamConnection) -> None:
        if self.closed:
            conn.abort()
            return
        conn.idle_since = self.loop.time()
        self._idle.setdefault(conn.key, []).append(conn)
        self._wake_waiter()

    def forget(self, conn: UpstreamConnection) -> None:
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
        oldest: UpstreamConnection | None = None
        for conns in self._idle.values():
            if conns and (oldest is None or conns[0].idle_since < oldest.idle_since):
                oldest = conns[0]
        if oldest is None:
            return False
        self._idle[oldest.key].remove(oldest)
        self._drop(oldest)
        return True

    def _drop(self, conn: UpstreamConnection) -> None:
        """Close an idle ``conn`` taken off its list; its place is free at once."""
        self._open.discard(conn)
        conn.abort()

    def sweep(self) -> int:
        """Close connections idle longer than ``idle_timeout``; returns how many."""
        deadline = self.loop.time() - self._idle_timeout
        closed = 0
        for conns in self._idle.values():
            while conns and conns[0].idle_since < deadline:
                self._drop(conns.pop(0))
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
