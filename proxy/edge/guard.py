"""Connection-level limits aiohttp does not enforce: the header phase, broken bodies,
and quiet refusals.

aiohttp has no timeout while request headers arrive, so a client that sends one
header line every few seconds — or nothing at all — would hold a connection
forever (slowloris, descriptor exhaustion). This protocol bounds the whole header
phase of each request in time (408) and in size (431), before aiohttp's parser
has a complete message to hand to a handler.

The header phase of a connection's first request starts when the connection
opens; that of a later request on a keep-alive connection with its first byte
(between requests ``limits.keepalive_timeout_seconds`` applies). It ends at the
blank line that ends the headers; the handler calls :meth:`request_done` when the
response is finished so the next request is guarded again. The size bound is
checked here, as bytes arrive; the time bound by
:class:`proxy.edge.watchdog.Watchdog`, which sweeps all connections every tick and
calls :meth:`expire_headers` on the late ones (no timer per request).

A request body whose framing breaks mid-stream (a bad chunk-size line in a later
TCP segment) reaches the body's reader as an exception with either of aiohttp's
parsers (see :meth:`_track_bodies`). Requests aiohttp cannot parse are answered
400 with a page of our own and counted and logged by
:class:`proxy.edge.refusals.Refusals` (one short line, rate-limited) instead of a
traceback at ERROR for each.
"""

from __future__ import annotations

import asyncio
from itertools import islice
from typing import Any, cast

from aiohttp import web, web_protocol, web_server
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.streams import EMPTY_PAYLOAD, StreamReader

from proxy.edge.pages import error_page
from proxy.edge.refusals import parse_error_reason

_END = b"\r\n\r\n"


def _canned(status: int, reason: str, text: str) -> bytes:
    body = text.encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


# How long a connection whose request body was abandoned still reads (and drops) what the
# client sends after the answer went out with a FIN (see _Lingering).
LINGER_SECONDS = 2.0


class _Lingering:
    """A transport whose ``close()`` lingers: nginx's ``lingering_close``, bounded.

    Closing a socket that holds bytes the client sent but nobody read makes the kernel
    answer with a reset, and a reset can destroy the refusal (a 408 for a body that
    trickles) before the client reads it. So ``close()`` first sends what is buffered
    and a FIN (``write_eof``), keeps reading — the protocol drops the data, it is
    closing — and closes for good when the client closes its side or after
    ``LINGER_SECONDS``. A transport without half-close (TLS) closes at once.
    Everything else is the wrapped transport's.
    """

    __slots__ = ("_loop", "_timer", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._timer: asyncio.TimerHandle | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def close(self) -> None:
        transport = self._transport
        if self._timer is not None or transport.is_closing():
            return
        try:
            transport.write_eof()
        except (NotImplementedError, RuntimeError, OSError):
            transport.close()
            return
        self._timer = self._loop.call_later(LINGER_SECONDS, transport.close)


REQUEST_TIMEOUT = _canned(408, "Request Timeout", "request headers not received in time\n")
HEADERS_TOO_LARGE = _canned(431, "Request Header Fields Too Large", "request headers too large\n")


class GuardedRequestHandler(web_protocol.RequestHandler):
    """aiohttp's protocol plus a per-request header-phase size bound and start time."""

    # Set by GuardedServer: max header bytes, and the refusal recorder
    # ``on_refused(reason, detail, peer)`` (a :class:`proxy.edge.refusals.Refusals`).
    max_header_bytes: int = 16384
    on_refused: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_headers = True
        self._header_bytes = 0
        self._tail = b""
        # Loop time the current header phase started; None outside it.
        self.header_started: float | None = None
        self._body: StreamReader | None = None  # the last request body handed to a handler

    def connection_made(self, transport: Any) -> None:
        # A connection that never sends a byte is in its header phase from the start.
        self.header_started = self._loop.time()
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._in_headers and data:
            if self.header_started is None:
                self.header_started = self._loop.time()
            end = (self._tail + data if self._tail else data).find(_END)
            if end < 0:
                self._header_bytes += len(data)
                self._tail = data[-3:]
            else:
                self._header_bytes += end - len(self._tail) + 4
                self._in_headers = False
                self.header_started = None
            if self._header_bytes > self.max_header_bytes:
                self._refuse(HEADERS_TOO_LARGE, "headers_too_large")
                return
        queued = len(self._messages)
        super().data_received(data)
        if len(self._messages) > queued:
            self._track_bodies(queued)

    def _track_bodies(self, first: int) -> None:
        """Note the body of each new request; hand a parse error to the body in progress.

        aiohttp's C parser reports framing that breaks inside a body as a new 400
        "message" queued behind the request whose handler is still reading that
        body, which would then wait forever (the pure-Python parser sets the error on
        the body itself). Here the error reaches the body's reader either way.
        """
        for message, payload in islice(self._messages, first, None):
            if isinstance(message, web_protocol._ErrInfo):
                body = self._body
                if body is not None and not body.is_eof():
                    self.end_body(body, message.exc)
            elif payload is not EMPTY_PAYLOAD:
                self._body = payload

    def end_body(self, body: StreamReader, exc: BaseException | None = None) -> None:
        """Abandon the request body being received (broken, too slow): its reader gets
        ``exc`` if given; nothing more is read or parsed on this connection, aiohttp
        does not linger to drain the rest, and the connection closes after the response,
        lingering briefly so the client can read it (:class:`_Lingering`)."""
        self.close()
        transport = self.transport
        if transport is not None and not isinstance(transport, _Lingering) and not transport.is_closing():
            self.transport = cast(asyncio.Transport, _Lingering(transport, self._loop))
        if exc is not None and body.exception() is None:
            body.set_exception(exc)
        body.feed_eof()

    def request_done(self, request: web.BaseRequest) -> None:
        """The handler finished a response: the next bytes start a new header phase."""
        self._in_headers = True
        self._header_bytes = 0
        self._tail = b""
        self._body = None
        body = request.content
        if body.exception() is not None and not body.is_eof():
            self.end_body(body)  # broken while nobody read it: draining it would only raise

    def expire_headers(self) -> None:
        """Called by the watchdog when the header phase outlived its deadline."""
        if self._in_headers and self.header_started is not None:
            self._refuse(REQUEST_TIMEOUT, "header_timeout")

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """aiohttp's error answer, without a traceback per malformed request and
        without aiohttp's ``Server`` header; a handler's own bug keeps its traceback."""
        if isinstance(exc, HttpProcessingError):
            if self.on_refused is not None:
                self.on_refused(parse_error_reason(exc), message or exc.message, request.remote)
        else:
            self.log_exception("Error handling request from %s", request.remote, exc_info=exc)
        if request.writer.output_size > 0:
            raise ConnectionError("the response has started: no error page can follow")
        titles = {400: "Bad Request", 500: "Internal Server Error", 504: "Gateway Timeout"}
        page = error_page(status, titles.get(status, "Error"), "The request could not be handled.")
        page.force_close()
        return page

    def _refuse(self, response: bytes, reason: str) -> None:
        self.header_started = None
        self._in_headers = False
        transport = self.transport
        if self.on_refused is not None:
            peer = transport.get_extra_info("peername") if transport is not None else None
            peer_ip = peer[0] if isinstance(peer, tuple) else None
            self.on_refused(reason, f"after {self._header_bytes} header bytes", peer_ip)
        if transport is not None and not transport.is_closing():
            transport.write(response)
            transport.close()
        self.force_close()


class GuardedServer(web_server.Server):
    """``aiohttp.web.Server`` (the low-level server, no router) with guarded connections."""

    def __init__(
        self,
        handler: Any,
        *,
        max_header_bytes: int,
        on_refused: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, **kwargs)
        self._guard = type(
            "BoundGuardedRequestHandler",
            (GuardedRequestHandler,),
            {
                "max_header_bytes": max_header_bytes,
                "on_refused": staticmethod(on_refused) if on_refused else None,
            },
        )

    def __call__(self) -> web_protocol.RequestHandler:
        handler: web_protocol.RequestHandler = self._guard(self, loop=self._loop, **self._kwargs)
        return handler
