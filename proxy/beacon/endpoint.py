"""``PREFIX/…``: the proxy answers it itself, nothing under it is forwarded.

- ``GET PREFIX/<version>.js``: the bundled script (br or gzip when accepted), cached
  for a year; any other ``*.js`` name (a page cached before an upgrade) gets the
  current script with a short cache.
- ``POST PREFIX/e``: items from the script (:mod:`proxy.beacon.items`). Refused
  whole: past ``max_body_bytes`` → 413, past the client's rate → 429, not JSON →
  400. Otherwise 204, whatever was dropped; each accepted item becomes an
  :class:`~proxy.tracking.event.Exchange` snapshot for the publisher's buffer, so it
  is built, enriched and published like any proxied request, off this path:
  user agent and client address from this request, referrer and UTM from the page
  (``url``, ``referrer``), identity from the first-party cookie riding along,
  GPC/DNT honoured. A client is its anonymised address plus visitor cookie.
- Anything else under the prefix: 404 (405 for a wrong method).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from proxy.beacon.items import parse
from proxy.beacon.metrics import BeaconMetrics
from proxy.beacon.ratelimit import TokenBuckets
from proxy.beacon.script import bundle
from proxy.settings import Settings
from proxy.tracking.event import Exchange
from proxy.tracking.identity import CookieIdentity, consent_denied, read_cookie
from proxy.tracking.privacy import anonymize_ip

_NO_STORE = {"Cache-Control": "no-store"}


def _status(status: int) -> web.Response:
    return web.Response(status=status, headers=_NO_STORE)


class BeaconEndpoint:
    def __init__(self, settings: Settings, metrics: BeaconMetrics, sink: Callable[[Exchange], None] | None) -> None:
        b = settings.beacon
        self._prefix_len = len(b.prefix)
        self._max_body = b.max_body_bytes
        self._max_items = b.max_items
        self._buckets = TokenBuckets(b.rate_per_second, b.rate_burst, b.rate_clients)
        self._metrics = metrics
        self._sink = sink
        self._identity = settings.identity
        self._cookies = (
            CookieIdentity(settings.identity) if sink is not None and settings.identity.mode == "cookie" else None
        )
        self._anonymized: dict[str, str] = {}

    async def handle(
        self, request: web.BaseRequest, site: str, ip: str | None, peer_trusted: bool, scheme: str
    ) -> web.StreamResponse:
        name = request.raw_path[self._prefix_len :].partition("?")[0]
        if name == "e":
            if request.method != "POST":
                return web.Response(status=405, headers={"Allow": "POST", **_NO_STORE})
            return await self._collect(request, site, ip, peer_trusted, scheme)
        if name.endswith(".js") and "/" not in name:
            if request.method != "GET":
                return web.Response(status=405, headers={"Allow": "GET", **_NO_STORE})
            return self._script(request, name)
        return _status(404)

    def _script(self, request: web.BaseRequest, name: str) -> web.Response:
        b = bundle()
        accept = request.headers.get("Accept-Encoding", "")
        body, coding = (b.br, "br") if "br" in accept else (b.gzip, "gzip") if "gzip" in accept else (b.body, "")
        etag = f'"{b.version}{coding}"'
        headers = {
            "Content-Type": "text/javascript; charset=utf-8",
            "Cache-Control": "public, max-age=31536000, immutable" if name == b.name else "public, max-age=300",
            "Vary": "Accept-Encoding",
            "ETag": etag,
            "X-Content-Type-Options": "nosniff",
        }
        if coding:
            headers["Content-Encoding"] = coding
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers=headers)
        return web.Response(body=body, headers=headers)

    def _client(self, ip: str | None, cookie_header: str | None) -> str:
        anon = ""
        if ip is not None:
            anon = self._anonymized.get(ip) or ""
            if not anon:
                if len(self._anonymized) >= 50_000:
                    self._anonymized.clear()
                anon = self._anonymized[ip] = anonymize_ip(ip) or ip
        visitor = read_cookie(cookie_header, self._identity.visitor_cookie) or ""
        return f"{anon}|{visitor[:64]}"

    async def _collect(
        self, request: web.BaseRequest, site: str, ip: str | None, peer_trusted: bool, scheme: str
    ) -> web.StreamResponse:
        reject = self._metrics.reject
        length = request.content_length
        if length is not None and length > self._max_body:
            reject["too_large"].inc()
            return _status(413)
        headers = request.headers
        cookie_header = headers.get("Cookie")
        if not self._buckets.allow(self._client(ip, cookie_header), time.monotonic()):
            reject["rate_limited"].inc()
            return web.Response(status=429, headers={"Retry-After": "1", **_NO_STORE})
        body = bytearray()
        async for chunk in request.content.iter_any():
            body += chunk
            if len(body) > self._max_body:
                reject["too_large"].inc()
                return _status(413)
        items, rejected = parse(bytes(body), self._max_items)
        for reason, n in rejected.items():
            reject[reason].inc(n)
        if not items and "malformed" in rejected:
            return _status(400)
        accept = self._metrics.accept
        for it in items:
            accept[it.fields["kind"]].inc()
        response = _status(204)
        if self._sink is None or not items:
            return response
        now = time.time()
        denied = consent_denied(headers.get("Sec-GPC"), headers.get("DNT"), self._identity)
        visitor = session = None
        consent = "denied" if denied else "granted"
        if self._cookies is not None and (denied or read_cookie(cookie_header, self._identity.visitor_cookie)):
            # Only a visitor the proxy already knows: a beacon never mints one.
            identity = self._cookies.resolve(cookie_header, now=now, pageview=False, secure=scheme == "https",
                                             denied=denied)  # fmt: skip
            visitor, session, consent = identity.visitor, identity.session, identity.consent
            for cookie in identity.set_cookies:
                response.headers.add("Set-Cookie", cookie)
        views: dict[str | None, CIMultiDictProxy[str]] = {}
        for it in items:
            view = views.get(it.referrer)
            if view is None:
                view = views[it.referrer] = _with_referrer(headers, it.referrer)
            self._sink(
                Exchange(
                    now, "GET", it.url, site, scheme, view, ip, peer_trusted, it.fields["kind"] == "pageview",
                    200, 0, None, 0.0, None, visitor, session, False, False, consent,
                    f"{random.getrandbits(128) or 1:032x}", None, None, it.fields,
                )
            )  # fmt: skip
        return response


def _with_referrer(headers: Any, referrer: str | None) -> CIMultiDictProxy[str]:
    """The beacon request's headers with the page's own referrer in place of the
    beacon's (which is the page itself)."""
    copy: CIMultiDict[str] = CIMultiDict(headers)
    copy.popall("Referer", None)
    if referrer:
        copy["Referer"] = referrer
    return CIMultiDictProxy(copy)
