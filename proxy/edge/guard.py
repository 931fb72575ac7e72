"""Connection-level limits aiohttp does not enforce: the header phase.

aiohttp has no timeout while request headers arrive, so a client that sends one
header line every few seconds would hold a connection forever (slowloris). This
protocol bounds the whole header phase of each request in time (408) and in size
(431), before aiohttp's parser has a complete message to hand to a handler.

The header phase of a request starts with its first byte and ends at the blank
line that ends its headers; the handler calls :meth:`request_done` when the
response is finished so the next request on a keep-alive connection is guarded
again. The size bound is checked here, as bytes arrive; the time bound by
:class:`proxy.edge.watchdog.Watchdog`, which sweeps all connections every tick and
calls :meth:`expire_headers` on the late ones (no timer per request).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web_protocol, web_server

_END = b"\r\n\r\n"


def _canned(status: int, reason: str, text: str) -> bytes:
    body = text.encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


REQUEST_TIMEOUT = _canned(408, "Request Timeout", "request headers not received in time\n")
HEADERS_TOO_LARGE = _canned(431, "Request Header Fields Too Large", "request headers too large\n")


class GuardedRequestHandler(web_protocol.RequestHandler):
    """aiohttp's protocol plus a per-request header-phase size bound and start time."""

    # Set by GuardedServer: max header bytes, refusal counter callback.
    max_header_bytes: int = 16384
    on_refused: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_headers = True
        self._header_bytes = 0
        self._tail = b""
        # Loop time of the first byte of the current header phase; None outside it.
        self.header_started: float | None = None

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
        super().data_received(data)

    def request_done(self) -> None:
        """The handler finished a response: the next bytes start a new header phase."""
        self._in_headers = True
        self._header_bytes = 0
        self._tail = b""

    def expire_headers(self) -> None:
        """Called by the watchdog when the header phase outlived its deadline."""
        if self._in_headers and self.header_started is not None:
            self._refuse(REQUEST_TIMEOUT, "header_timeout")

    def _refuse(self, response: bytes, reason: str) -> None:
        self.header_started = None
        self._in_headers = False
        if self.on_refused is not None:
            self.on_refused(reason)
        transport = self.transport
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
