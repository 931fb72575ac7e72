"""Which responses get the beacon's script, and the header edits that come with it.

:meth:`Injector.choose` runs once per response on the hot path, before the head is
sent, and returns ``None`` (relay as is) or an :class:`~proxy.beacon.inject.Injection`
to run every body chunk through. Only ``GET`` responses served as ``text/html`` are
considered; among those, every one not given the script is counted in
``footfall_beacon_skipped_total`` by reason:

``site_off`` (beacon off for this site), ``status`` (not 200: 206, 304, errors),
``not_navigation`` (not a document navigation: fetch/XHR, iframes),
``no_transform`` (``Cache-Control: no-transform``), ``attachment``
(``Content-Disposition: attachment``), ``encoding`` (a content coding that cannot be
decoded, or several), ``csp`` (the site's policy would block the script or its
endpoint), and, counted when the body ends, ``no_insertion_point`` and
``decode_error`` (see :mod:`proxy.beacon.inject`).
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import hdrs
from multidict import CIMultiDict, istr

from proxy.beacon import csp
from proxy.beacon.codecs import CODINGS
from proxy.beacon.inject import Injection
from proxy.beacon.metrics import BeaconMetrics
from proxy.beacon.settings import BeaconSettings
from proxy.beacon.splice import SpliceCache
from proxy.edge.headers import is_navigation
from proxy.tracking.event import new_event_id

# A modified representation: its length, digests and byte ranges no longer hold.
# (istr keys: a look-up with a plain str folds its case every time)
_STALE = tuple(
    istr(name) for name in ("Content-Length", "Content-MD5", "Content-Digest", "Repr-Digest", "Digest", "Accept-Ranges")
)
_CSP = istr("Content-Security-Policy")
_SERVER_TIMING = istr("Server-Timing")
_TIMING = 'ff;desc="%s", ff-proxy;dur=%.1f'
_TIMING_ORIGIN = 'ff;desc="%s", ff-proxy;dur=%.1f, ff-origin;dur=%.1f'
SPLICE_CACHE_BYTES = 8 * 1024 * 1024  # gzip pages kept compressed around their page id (per process)


class Injector:
    def __init__(self, settings: BeaconSettings, script_url: str, metrics: BeaconMetrics) -> None:
        self._settings = settings
        self._src = script_url.encode()
        self._tag_start = b'<script src="%s" defer data-ff-page="' % self._src
        self._tag_end = b'"></script>'
        self._metrics = metrics
        self._max_scan = settings.max_scan_bytes
        self._skip = metrics.skip
        # No per-site overrides: on_for is the same for every site.
        self._every_site = settings.enabled and not settings.sites_off and not settings.sites_on
        self.cache = SpliceCache(SPLICE_CACHE_BYTES)

    def choose(
        self,
        site: str,
        method: str,
        request_headers: Any,
        status: int,
        headers: CIMultiDict[str],
        t0: float,
        upstream_ms: float | None,
    ) -> Injection | None:
        """The transform for this response, editing ``headers`` (the response's, not
        yet sent) to match; None to relay it unchanged. ``t0`` is when the request
        came in (``perf_counter``), for the proxy's share in ``Server-Timing``.

        On the hot path for every HTML response: the usual page (no CSP, none of
        the stale headers but ``Content-Length``) costs a few dictionary look-ups."""
        ctype = headers.get(hdrs.CONTENT_TYPE)
        if ctype is None or method != "GET" or not (ctype.startswith("text/html") or ctype[:9].lower() == "text/html"):
            return None
        coding = headers.get(hdrs.CONTENT_ENCODING)
        if coding is not None:
            coding = coding.strip().lower()
            if coding == "identity":
                coding = ""
        reason = self._refuse(site, request_headers, status, headers, coding)
        if reason is not None:
            self._skip[reason].inc()
            return None
        end = self._tag_end  # the same object every time, unless there is a nonce
        if _CSP in headers:
            verdict = csp.verdict(headers.getall(_CSP))
            if not verdict.allowed:
                self._skip["csp"].inc()
                return None
            if verdict.nonce:
                end = f'" nonce="{verdict.nonce}"></script>'.encode()
        page_id = new_event_id()
        tag = b"".join((self._tag_start, page_id.encode(), end))
        for name in _STALE:
            if name in headers:
                del headers[name]
        etag = headers.get(hdrs.ETAG)
        if etag is not None and not etag.startswith("W/"):
            headers["ETag"] = "W/" + etag
        # %-formatting and a comparison: about half the cost of f-strings and max().
        proxy_ms = (time.perf_counter() - t0) * 1000.0
        if upstream_ms is None:
            timing = _TIMING % (page_id, proxy_ms if proxy_ms > 0.0 else 0.0)
        else:
            proxy_ms -= upstream_ms
            timing = _TIMING_ORIGIN % (page_id, proxy_ms if proxy_ms > 0.0 else 0.0, upstream_ms)
        headers.add(_SERVER_TIMING, timing)
        return Injection(tag, coding or "", self._max_scan, page_id, self.cache, (self._tag_start, end))

    def _refuse(
        self, site: str, request_headers: Any, status: int, headers: CIMultiDict[str], coding: str | None
    ) -> str | None:
        if not (self._every_site or self._settings.on_for(site)):
            return "site_off"
        if status != 200:
            return "status"
        if not is_navigation(request_headers):  # GET, 200, text/html: checked already
            return "not_navigation"
        cache = headers.get(hdrs.CACHE_CONTROL)
        if cache is not None and "no-transform" in cache.lower():
            return "no_transform"
        disposition = headers.get(hdrs.CONTENT_DISPOSITION)
        if disposition is not None and disposition.strip()[:10].lower() == "attachment":
            return "attachment"
        if coding and coding not in CODINGS:  # normalised by the caller ("" for identity)
            return "encoding"
        if hdrs.CONTENT_RANGE in headers:
            return "status"
        return None

    def done(self, injection: Injection) -> str | None:
        """Count how one response ended; the page id when the tag went out."""
        if injection.skipped is not None:
            self._skip[injection.skipped].inc()
            return None
        if injection.injected:
            self._metrics.injected.inc()
            return injection.page_id
        return None
