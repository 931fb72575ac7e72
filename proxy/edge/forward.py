"""The hot path: forward one request, stream the response back, hand off a snapshot.

Reads top to bottom: refuse what must not be forwarded, pick the upstream from
the host map, send the request with the body streaming through, relay status,
headers and body chunks as they come, set the first-party cookies, then queue an
:class:`~proxy.tracking.event.Exchange` with ``put_nowait`` semantics. Event building,
enrichment, encoding and Redis I/O happen later in the publisher's flush task.
Tracking never fails a request: the exchange snapshot is plain data.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import ClientError, ClientSession, WSMsgType, hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import CIMultiDict
from yarl import URL

from proxy.edge.guard import GuardedRequestHandler
from proxy.edge.h1client import BodyError, Origin, UpstreamError, UpstreamPool
from proxy.edge.headers import (
    TrustedProxies,
    client_ip,
    downstream_response_headers,
    is_pageview,
    split_host,
    trace_context,
    upstream_request_headers,
)
from proxy.edge.pages import CLIENT_FAULTS, PAGES, QuietWebSocketResponse, error_page, page_for
from proxy.edge.redirects import client_origin, rewrite_headers, upstream_prefixes
from proxy.edge.refusals import Refusals
from proxy.edge.upstreams import UpstreamMap
from proxy.edge.watchdog import Watch, Watchdog
from proxy.metrics import ProxyMetrics
from proxy.settings import Settings
from proxy.tracking.event import Exchange
from proxy.tracking.identity import CookieIdentity, consent_denied

if TYPE_CHECKING:
    from proxy.beacon.service import Beacon

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
_WS_HANDSHAKE = frozenset(
    {"sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions",
     "sec-websocket-protocol", "sec-websocket-accept"}
)  # fmt: skip


class ClientFault(Exception):
    """The client's request body failed while it was relayed; ``kind`` is the
    event's ``error`` (and the refusal reason), answered from :data:`PAGES`."""

    kind = "client_bad_body"


class BodyTooLarge(ClientFault):
    """The client's request body passed ``limits.max_body_bytes`` while streaming."""

    kind = "body_too_large"


class ClientGone(ClientFault):
    """The client closed the connection while its body was being relayed."""

    kind = "client_disconnect"


class ProxiedResponse(web.StreamResponse):
    """A relayed response, as the upstream sent it.

    Its head goes out with the first body bytes when those are already in hand: one
    write instead of two; when the body is not there yet (a slow page, server-sent
    events) the head is sent at once. ``_send_headers_immediately`` is aiohttp's own
    switch (``web.Response`` turns it off the same way). aiohttp would also add a
    ``Server`` header naming Python and aiohttp when the upstream sent none: the
    proxy does not announce itself, so it is taken out again.
    """

    def __init__(self, *, status: int, reason: str | None, headers: CIMultiDict[str], coalesce: bool) -> None:
        super().__init__(status=status, reason=reason, headers=headers)
        self._send_headers_immediately = not coalesce
        self._upstream_server = "Server" in headers

    async def _prepare_headers(self) -> None:
        await super()._prepare_headers()
        if not self._upstream_server:
            self.headers.popall("Server", None)


class Forwarder:
    """The request handler of the proxy listener (aiohttp low-level server).

    HTTP exchanges go through ``pool`` (:mod:`proxy.edge.h1client`); WebSocket
    upgrades through aiohttp's ``session``.
    """

    def __init__(
        self,
        settings: Settings,
        pool: UpstreamPool,
        session: ClientSession,
        metrics: ProxyMetrics,
        sink: Callable[[Exchange], None] | None,
        watchdog: Watchdog,
        beacon: Beacon | None = None,
    ) -> None:
        self._beacon = beacon  # None: beacon off for every site
        self._pool = pool
        self._session = session
        self._watchdog = watchdog
        self._metrics = metrics
        self._sink = sink  # None: tracking off, forward only
        self._upstreams = UpstreamMap(settings.upstreams)
        self._origins = {u.url: Origin(u.url) for u in settings.upstreams}
        self._redirects = (
            {u.url: upstream_prefixes(u.url) for u in settings.upstreams} if settings.rewrite_redirects else None
        )
        self._trusted = TrustedProxies(settings.trusted_proxies)
        self._limits = settings.limits
        self._identity_settings = settings.identity
        self._cookies = (
            CookieIdentity(settings.identity)
            if sink is not None and settings.identity.mode == "cookie"
            else None
        )
        self._max_body = settings.limits.max_body_bytes
        # Counts and (briefly, rate-limited) logs every refusal, the listener's too.
        self.refusals = Refusals(metrics.refused)

    def _refuse(self, status: int, title: str, detail: str, reason: str) -> web.Response:
        self.refusals(reason, detail)
        return error_page(status, title, detail)

    def _failed(self, request: web.BaseRequest, error: str) -> web.Response:
        """The page for an exchange that failed before a response head was relayed.

        A client fault is a refusal too, and ends the connection: the rest of its
        body is never read (a body too large is still drained for a while by aiohttp,
        so the client sees the 413 rather than a reset)."""
        page = page_for(error)
        if error in CLIENT_FAULTS:
            self.refusals(error, PAGES[error][2], request.remote)
            page.force_close()
            protocol = request.protocol
            if error != "body_too_large" and isinstance(protocol, GuardedRequestHandler):
                protocol.end_body(request.content)
        return page

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        try:
            return await self._handle(request)
        finally:
            protocol = request.protocol
            if isinstance(protocol, GuardedRequestHandler):
                protocol.request_done(request)

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        ts = time.time()
        t0 = time.perf_counter()
        raw_path = request.raw_path
        # Origin-form only: aiohttp accepts absolute-form ("GET http://x/ HTTP/1.1")
        # and would report its host as request.host; a reverse proxy must not.
        if not raw_path.startswith("/"):
            return self._refuse(400, "Bad Request", "Only origin-form request targets are accepted.", "absolute_uri")
        headers = request.headers
        if request.version < (1, 1) and "Transfer-Encoding" in headers:
            return self._refuse(400, "Bad Request", "Transfer-Encoding is not valid in HTTP/1.0.", "te_http10")
        site = split_host(headers.get("Host"))
        upstream = self._upstreams.match(site)
        if upstream is None:
            return self._refuse(421, "Misdirected Request", "This host is not served here.", "unknown_host")
        length = request.content_length
        if length is not None and length > self._max_body:
            return self._refuse(413, "Content Too Large", "The request body is too large.", "body_too_large")
        expect = False
        if "Expect" in headers and request.version >= (1, 1):  # HTTP/1.0 clients' Expect is ignored
            if headers["Expect"].strip().lower() != "100-continue":
                return self._refuse(417, "Expectation Failed", "Only 100-continue is supported.", "expectation")
            expect = True

        transport = request.transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        peer_ip = peer[0] if peer else None
        ip, peer_trusted = client_ip(peer_ip, headers, self._trusted)
        scheme = request.scheme
        if peer_trusted:
            scheme = headers.get("X-Forwarded-Proto", scheme).partition(",")[0].strip() or scheme
        beacon = self._beacon
        if beacon is not None and raw_path.startswith(beacon.prefix) and beacon.on_for(site):
            return await beacon.endpoint.handle(request, site, ip, peer_trusted, scheme)  # never forwarded
        trace_id, trace_header, trace_started = trace_context(headers.get("traceparent"))
        up_headers = upstream_request_headers(
            headers, peer_ip=peer_ip, scheme=scheme, host=headers.get("Host", ""), traceparent=trace_header
        )

        if headers.get("Upgrade", "").lower() == "websocket":
            url = URL(upstream.url + raw_path, encoded=True)
            return await self._websocket(request, url, up_headers, ts, t0, site, ip, peer_trusted, scheme, trace_id)

        method = request.method
        status, bytes_out, content_type, upstream_ms, error = 502, 0, None, None, None
        response: web.StreamResponse
        pageview = False
        identity = None
        transform = None  # the beacon's body transform, when this page gets the script
        watch = self._watchdog.watch()
        origin = self._origins[upstream.url]
        if "Host" not in up_headers:  # HTTP/1.0 clients may omit it; the upstream needs one
            up_headers["Host"] = origin.netloc
        # A body is relayed chunk by chunk; the Content-Length header, when the client
        # sent one, passes upstream unchanged, otherwise the body goes chunked.
        data = self._relay_body(request, watch, expect) if request.body_exists else None
        try:
            t_up = time.perf_counter()
            try:
                upstream_response = await self._pool.request(
                    origin, method, raw_path, up_headers.items(), data,
                    chunked=data is not None and "Content-Length" not in up_headers,
                )  # fmt: skip
            except (asyncio.CancelledError, UpstreamError, ClientFault) as exc:
                error = _failure_kind(exc, watch)  # re-raises a cancellation that is not ours
                response = self._failed(request, error)
                status = response.status
                return response
            upstream_ms = (time.perf_counter() - t_up) * 1000.0
            async with upstream_response:
                status = upstream_response.status
                out_headers = downstream_response_headers(upstream_response.headers)
                if self._redirects is not None:
                    origin_seen = client_origin(scheme, headers.get("Host"))
                    rewrite_headers(out_headers, self._redirects[upstream.url], origin_seen)
                response = ProxiedResponse(
                    status=status,
                    reason=upstream_response.reason or None,
                    headers=out_headers,
                    coalesce=upstream_response.body_ready,
                )
                whole = None  # the transformed body, when it was all in hand at once
                if beacon is not None:
                    transform = beacon.injector.choose(
                        site, method, headers, status, response.headers, t0, upstream_ms
                    )
                    if transform is not None and upstream_response.body_complete:
                        # A small page arrives with its head: transformed in one go and
                        # sent with its exact length, in one write with the head.
                        whole = transform.whole(await upstream_response.read())
                        response.headers[hdrs.CONTENT_LENGTH] = str(len(whole))
                if self._sink is not None:
                    # The media type by hand: aiohttp's content_type parses parameters too.
                    ctype = response.headers.get("Content-Type")
                    content_type = ctype.partition(";")[0].strip().lower() if ctype else None
                    pageview = is_pageview(method, headers, status, content_type)
                    identity = self._identity(headers, ts, pageview, scheme == "https")
                    if identity is not None:
                        for cookie in identity.set_cookies:
                            response.headers.add("Set-Cookie", cookie)
                try:
                    await response.prepare(request)
                    now = self._watchdog.now
                    held = b""  # transformed bytes not yet written
                    stream = transform  # the transform, fed chunk by chunk
                    if whole is not None:  # the body was read already: no read left to await
                        held, bytes_out, stream = whole, len(whole), None
                    while whole is None and (chunk := await upstream_response.read()):
                        watch.since = now()
                        if stream is not None:
                            # More body already in hand: the transform need not flush its
                            # encoder yet, and one write goes out with it (and the end of the
                            # body, often); a write per piece costs a syscall each.
                            more = upstream_response.body_ready
                            held += stream.feed(chunk, more)
                            if not held or (more and len(held) < CHUNK):
                                continue
                            chunk, held = held, b""
                        await response.write(chunk)
                        bytes_out += len(chunk)
                    if stream is not None:
                        held += stream.finish()
                        bytes_out += len(held)
                    await response.write_eof(held)
                except (ConnectionResetError, ConnectionError):
                    error = "client_disconnect"
                except BodyError:
                    error = "upstream_body"
                except asyncio.CancelledError:
                    if watch.expired is None:
                        raise
                    watch.task.uncancel()
                    error = watch.expired
                if error is not None and error != "client_disconnect" and request.protocol is not None:
                    # The upstream broke off or stalled mid-body: the status is already
                    # sent, so closing the connection is the only honest signal.
                    request.protocol.force_close()
                return response
        except asyncio.CancelledError:
            error = "client_disconnect"
            raise
        finally:
            self._watchdog.unwatch(watch)
            page_id = None if transform is None or beacon is None else beacon.injector.done(transform)
            if self._sink is not None:
                self._sink(
                    Exchange(
                        ts, method, raw_path, site, scheme, headers, ip, peer_trusted, pageview,
                        status, bytes_out, content_type, (time.perf_counter() - t0) * 1000.0,
                        upstream_ms,
                        identity.visitor if identity else None,
                        identity.session if identity else None,
                        identity.new_visitor if identity else False,
                        identity.new_session if identity else False,
                        identity.consent if identity else self._consent(headers),
                        trace_id, error, page_id=page_id, trace_started=trace_started,
                    )
                )  # fmt: skip

    def _consent(self, headers: Any) -> str:
        s = self._identity_settings
        denied = consent_denied(headers.get("Sec-GPC"), headers.get("DNT"), s)
        return "denied" if denied else "granted"

    def _identity(self, headers: Any, now: float, pageview: bool, secure: bool) -> Any:
        if self._cookies is None:
            return None  # cookieless: resolved in the flush task
        denied = consent_denied(headers.get("Sec-GPC"), headers.get("DNT"), self._identity_settings)
        return self._cookies.resolve(headers.get("Cookie"), now=now, pageview=pageview, secure=secure, denied=denied)

    async def _relay_body(self, request: web.BaseRequest, watch: Watch, expect: bool) -> AsyncIterator[bytes]:
        """Relay the request body, refusing it once past the limit; every chunk counts
        as progress for the watchdog, so a long upload is not a silent upstream, and
        while the relay waits for the client the client-body deadlines apply (a stall
        there is the client's, answered 408). Framing that breaks mid-body raises
        :class:`ClientFault` (400), with either of aiohttp's parsers.

        ``expect``: the client waits for ``100 Continue`` before sending the body. The
        proxy answers it itself once the upstream connection is up (as nginx does), so
        a client never waits out its expect timeout and a dead upstream gets 502
        before any body was sent; ``Expect`` is not forwarded."""
        if expect:
            writer = request.writer
            await writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            writer.output_size = 0  # the real response's size starts here
        seen = 0
        content = request.content
        now = self._watchdog.now
        watch.since = watch.body_started = now()
        try:
            while True:
                watch.reading = True
                chunk = await content.readany()
                watch.reading = False
                if not chunk:
                    return
                seen += len(chunk)
                if seen > self._max_body:
                    raise BodyTooLarge()
                watch.since = now()
                watch.body_bytes = seen
                yield chunk
        except HttpProcessingError as exc:
            raise ClientFault(exc.message) from exc
        except ConnectionError as exc:
            raise ClientGone() from exc

    async def _websocket(
        self,
        request: web.BaseRequest,
        url: URL,
        up_headers: CIMultiDict[str],
        ts: float,
        t0: float,
        site: str,
        ip: str | None,
        peer_trusted: bool,
        scheme: str,
        trace_id: str,
    ) -> web.StreamResponse:
        """Relay a WebSocket both ways until either side closes."""
        protocols = [
            p.strip() for v in request.headers.getall("Sec-WebSocket-Protocol", ()) for p in v.split(",") if p.strip()
        ]
        for name in list(up_headers):
            if name.lower() in _WS_HANDSHAKE:
                del up_headers[name]
        ws_url = url.with_scheme("wss" if url.scheme == "https" else "ws")
        status, error, bytes_out, upstream_ms = 101, None, 0, None
        t_up = time.perf_counter()
        try:
            upstream = await self._session.ws_connect(ws_url, headers=up_headers, protocols=protocols, autoping=False)
        except ClientError:
            status, error = 502, "upstream_connect"
            self._emit_ws(request, ts, t0, site, ip, peer_trusted, scheme, trace_id, status, 0, None, error)
            return error_page(502, "Bad Gateway", "The site refused the WebSocket.")
        upstream_ms = (time.perf_counter() - t_up) * 1000.0
        downstream = QuietWebSocketResponse(protocols=(upstream.protocol,) if upstream.protocol else (), autoping=False)
        await downstream.prepare(request)

        async def pump(src: Any, dst: Any) -> int:
            n = 0
            async for msg in src:
                if msg.type == WSMsgType.TEXT:
                    n += len(msg.data)
                    await dst.send_str(msg.data)
                elif msg.type == WSMsgType.BINARY:
                    n += len(msg.data)
                    await dst.send_bytes(msg.data)
                elif msg.type == WSMsgType.PING:
                    await dst.ping(msg.data)
                elif msg.type == WSMsgType.PONG:
                    await dst.pong(msg.data)
                else:
                    break
            return n

        from proxy.tasks import spawn

        to_up = spawn(pump(downstream, upstream), name="ws-client-to-upstream")
        to_down = spawn(pump(upstream, downstream), name="ws-upstream-to-client")
        try:
            await asyncio.wait({to_up, to_down}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await upstream.close()
            await downstream.close()
            for task in (to_up, to_down):
                if not task.done():
                    task.cancel()
            results = await asyncio.gather(to_up, to_down, return_exceptions=True)
            bytes_out = results[1] if isinstance(results[1], int) else 0
            self._emit_ws(
                request, ts, t0, site, ip, peer_trusted, scheme, trace_id, status, bytes_out, upstream_ms, error
            )
        return downstream

    def _emit_ws(self, request: web.BaseRequest, ts: float, t0: float, site: str, ip: str | None,
                 peer_trusted: bool, scheme: str, trace_id: str, status: int, bytes_out: int,
                 upstream_ms: float | None, error: str | None) -> None:  # fmt: skip
        if self._sink is None:
            return
        self._sink(
            Exchange(
                ts, request.method, request.raw_path, site, scheme, request.headers, ip, peer_trusted,
                False, status, bytes_out, None, (time.perf_counter() - t0) * 1000.0, upstream_ms,
                None, None, False, False, self._consent(request.headers), trace_id, error,
            )
        )  # fmt: skip


def _failure_kind(exc: BaseException, watch: Watch) -> str:
    """The event's ``error`` for an exchange that failed before its response head.
    A cancellation is ours when the watchdog expired the exchange (its kind says
    whose deadline it was); any other cancellation is re-raised."""
    if isinstance(exc, asyncio.CancelledError):
        if watch.expired is None:
            raise exc
        watch.task.uncancel()  # our own deadline, not a client going away
        return watch.expired
    kind: str = getattr(exc, "kind", "upstream_error")
    return kind
