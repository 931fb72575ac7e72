"""One upstream HTTP/1.1 connection as an asyncio protocol: the exchange in progress,
parsed by llhttp (``httptools``), and the errors an exchange can end with.

The pool (:mod:`proxy.edge.h1client`) hands a connection one exchange at a time:
``begin`` → ``send`` → ``response_head`` → ``read`` until ``b""`` → ``finish``,
which gives the connection back when the response was complete and allows
keep-alive, and closes it otherwise. Body bytes wait in a buffer for the reader;
past ``HIGH_WATER`` of them the socket stops being read. A response head longer
than ``MAX_HEAD_BYTES`` is a protocol error, so memory stays bounded whatever the
upstream sends.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, Protocol, cast

import httptools

from proxy.edge.headers import connection_tokens

HIGH_WATER = 256 * 1024  # body bytes buffered before the upstream socket is paused
MAX_HEAD_BYTES = 256 * 1024  # a response head past this is refused (nginx's default is 4-8 KiB)


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

class Pool(Protocol):
    """What a connection needs of its pool."""

    loop: asyncio.AbstractEventLoop

    def release(self, conn: UpstreamConnection) -> None:
        """``conn`` finished a reusable exchange: keep it for the next one."""

    def forget(self, conn: UpstreamConnection) -> None:
        """``conn`` is closed: it leaves the pool and frees its place."""


class UpstreamConnection(asyncio.Protocol):
    """One upstream socket; its state is that of the exchange in progress, if any."""

    def __init__(self, pool: Pool, key: tuple[str, int, bool]) -> None:
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

    @property
    def body_complete(self) -> bool:
        """The whole body is in hand: the next read returns all of it."""
        return self._done and self._exc is None

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
                self._broken(ProtocolError(f"response head longer than {MAX_HEAD_BYTES} bytes"))
                return
        try:
            parser.feed_data(data)
        except httptools.HttpParserError as exc:
            error = BodyError if self._head_done else ProtocolError
            self._broken(error(f"invalid response from the upstream: {exc}"))

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
        self._resume_sender()
        self.pool.forget(self)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._resume_sender()

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

    def _broken(self, exc: UpstreamError) -> None:
        """The upstream sent what cannot be relayed: fail the exchange, drop the socket."""
        self._fail(exc)
        assert self.transport is not None
        self.transport.abort()

    def _resume_sender(self) -> None:
        """Wake ``send`` waiting for the socket to drain (or to be gone)."""
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_result(None)

    def _head_keep_alive(self) -> bool:
        """Keep-alive after a HEAD response: llhttp would wait for the body a length-less
        head announces, so only the version and Connection decide."""
        tokens = connection_tokens(value for name, value in self.headers if name.lower() == "connection")
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


