"""The proxy's own answers: small HTML error pages, one table of them by error kind.

Every page Footfall writes itself goes through :func:`error_page`, so none of them
names the proxy's software (aiohttp would add ``Server: Python/… aiohttp/…``):
README promises the proxy adds no ``Server`` header of its own.
"""

from __future__ import annotations

from aiohttp import web

# The answer to an exchange that failed before a response head was relayed, by the
# event's ``error`` kind. Client faults are the client's doing (README "Limits and
# refusals"); the others are the upstream's.
PAGES: dict[str, tuple[int, str, str]] = {
    "upstream_timeout": (504, "Gateway Timeout", "The site did not answer in time."),
    "upstream_connect": (502, "Bad Gateway", "The site could not be reached."),
    "upstream_error": (502, "Bad Gateway", "The site sent an invalid response."),
    "body_too_large": (413, "Content Too Large", "The request body is too large."),
    "client_bad_body": (400, "Bad Request", "The request body is malformed."),
    "client_timeout": (408, "Request Timeout", "The request body was not received in time."),
    # Recorded, never sent (the client is gone); nginx logs the same 499.
    "client_disconnect": (499, "Client Closed Request", "The client closed the connection."),
}
CLIENT_FAULTS = frozenset({"body_too_large", "client_bad_body", "client_timeout"})


class ErrorPage(web.Response):
    """A response of the proxy's own; like relayed ones, it names no server."""

    async def _prepare_headers(self) -> None:
        await super()._prepare_headers()
        self.headers.popall("Server", None)


class QuietWebSocketResponse(web.WebSocketResponse):
    """The proxy's side of a relayed WebSocket handshake; it names no server either."""

    async def _prepare_headers(self) -> None:
        await super()._prepare_headers()
        self.headers.popall("Server", None)


def error_page(status: int, title: str, detail: str) -> web.Response:
    html = (
        f"<!doctype html><html><head><meta charset=utf-8><title>{status} {title}</title>"
        f"</head><body><h1>{status} {title}</h1><p>{detail}</p></body></html>\n"
    )
    return ErrorPage(status=status, text=html, content_type="text/html")


def page_for(error: str) -> web.Response:
    """The page for an error kind of :data:`PAGES` (unknown kinds: 502)."""
    return error_page(*PAGES.get(error, PAGES["upstream_error"]))
