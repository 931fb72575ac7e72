"""Header hygiene of a trusted reverse proxy, and the client address behind it. Pure.

- Hop-by-hop headers (RFC 9110 7.6.1) never cross the proxy: Connection and the
  headers it names, Keep-Alive, TE, Trailer, Transfer-Encoding, Upgrade, Proxy-*.
- X-Forwarded-For/-Proto/-Host and a W3C ``traceparent`` are added upstream.
- The client IP is read from X-Forwarded-For / Forwarded only when the TCP peer
  is a trusted proxy, and then as the rightmost address that is not itself
  trusted: the leftmost entries are whatever the client chose to send.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterable

from multidict import CIMultiDict, CIMultiDictProxy, istr

from proxy.settings import IPNetwork
from proxy.tracking.event import new_event_id

HOP_BY_HOP = frozenset(
    {
        "connection", "keep-alive", "te", "trailer", "trailers", "transfer-encoding",
        "upgrade", "proxy-connection", "proxy-authenticate", "proxy-authorization",
    }
)  # fmt: skip
# Headers the proxy itself sets upstream (the client's copies are replaced), and
# Expect, which the proxy answers itself (proxy/edge/forward.py).
_REPLACED_UPSTREAM = frozenset({"x-forwarded-proto", "x-forwarded-host", "traceparent", "expect"})
_REQUEST_DROP = HOP_BY_HOP | _REPLACED_UPSTREAM


def _is_hop(name_lower: str) -> bool:
    return name_lower in HOP_BY_HOP or name_lower.startswith("proxy-")


def connection_tokens(values: Iterable[str]) -> frozenset[str]:
    """The lower-cased tokens of ``Connection`` header values ("close", header names)."""
    return frozenset(t.strip().lower() for v in values for t in v.split(",") if t.strip())


def upstream_request_headers(
    headers: CIMultiDictProxy[str],
    *,
    peer_ip: str | None,
    scheme: str,
    host: str,
    traceparent: str,
) -> CIMultiDict[str]:
    """Headers to send upstream: the client's minus hop-by-hop, plus forwarding headers.

    X-Forwarded-For gets the peer appended (as nginx's ``$proxy_add_x_forwarded_for``);
    the upstream applies its own trust to the entries before it.
    """
    named = connection_tokens(headers.getall("Connection", ()))
    out: CIMultiDict[str] = CIMultiDict()
    xff = None
    for name, value in headers.items():
        low = name.lower()
        if low in _REQUEST_DROP or low in named or low.startswith("proxy-"):
            continue
        if low == "x-forwarded-for":
            xff = f"{xff}, {value}" if xff else value
            continue
        out.add(name, value)
    if peer_ip:
        out["X-Forwarded-For"] = f"{xff}, {peer_ip}" if xff else peer_ip
    elif xff:
        out["X-Forwarded-For"] = xff
    out["X-Forwarded-Proto"] = scheme
    if host:
        out["X-Forwarded-Host"] = host
    out["traceparent"] = traceparent
    return out


def downstream_response_headers(headers: Iterable[tuple[str, str]]) -> CIMultiDict[str]:
    """The upstream's response headers (name, value pairs as received) minus
    hop-by-hop. Repeated headers (Set-Cookie) survive; Content-Encoding and
    Content-Length pass unchanged because bodies are relayed without decompression."""
    out: CIMultiDict[str] = CIMultiDict()
    connection: list[str] = []
    for name, value in headers:
        low = name.lower()
        if not _is_hop(low):
            out.add(name, value)
        elif low == "connection":
            connection.append(value)
    for low in connection_tokens(connection):  # the headers Connection names are hop-by-hop too
        out.popall(low, None)
    return out


class TrustedProxies:
    """Decides whether an address is a trusted proxy; caches per address."""

    __slots__ = ("_cache", "_networks")

    def __init__(self, networks: Iterable[IPNetwork]) -> None:
        self._networks = tuple(networks)
        self._cache: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self._networks)

    def trusted(self, ip: str) -> bool:
        hit = self._cache.get(ip)
        if hit is not None:
            return hit
        try:
            addr = ipaddress.ip_address(ip.strip("[]"))
        except ValueError:
            result = False
        else:
            if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
                addr = addr.ipv4_mapped
            result = any(addr in net for net in self._networks)
        if len(self._cache) < 10_000:
            self._cache[ip] = result
        return result


def _forwarded_for(forwarded: str) -> list[str]:
    """``for=`` addresses of an RFC 7239 Forwarded header, in order."""
    out = []
    for element in forwarded.split(","):
        for pair in element.split(";"):
            key, _, value = pair.strip().partition("=")
            if key.lower() != "for":
                continue
            value = value.strip().strip('"')
            if value.startswith("["):  # "[2001:db8::1]:4711"
                value = value[1 : value.find("]")] if "]" in value else value[1:]
            elif value.count(":") == 1:  # "192.0.2.60:4711"
                value = value.partition(":")[0]
            out.append(value)
    return out


def client_ip(
    peer_ip: str | None,
    headers: CIMultiDictProxy[str],
    trusted: TrustedProxies,
) -> tuple[str | None, bool]:
    """Return ``(client ip, peer is trusted)``.

    Only a trusted peer's X-Forwarded-For (or, without it, Forwarded) is read, from
    the right, skipping trusted hops; the first untrusted address is the client.
    If every hop is trusted, the leftmost one is the best we know.
    """
    if peer_ip is None or not trusted or not trusted.trusted(peer_ip):
        return peer_ip, False
    xff = headers.getall("X-Forwarded-For", ())
    if xff:
        hops = [h.strip() for v in xff for h in v.split(",") if h.strip()]
    else:
        fwd = headers.getall("Forwarded", ())
        hops = [h for v in fwd for h in _forwarded_for(v)]
    for hop in reversed(hops):
        if not trusted.trusted(hop):
            return (hop if _valid_ip(hop) else peer_ip), True
    return (hops[0] if hops and _valid_ip(hops[0]) else peer_ip), True


def _valid_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


_HEX = frozenset("0123456789abcdef")


def _valid_hex(value: str, length: int) -> bool:
    """Lower-case hex digits only, not all zero (``int(v, 16)`` would also take
    ``_`` separators and non-ASCII digits)."""
    return len(value) == length and _HEX.issuperset(value) and value != "0" * length


def traceparent(incoming: str | None) -> tuple[str, str]:
    """Return ``(trace_id, traceparent header for the upstream)`` (:func:`trace_context`)."""
    trace_id, header, _ = trace_context(incoming)
    return trace_id, header


def trace_context(incoming: str | None) -> tuple[str, str, bool]:
    """Return ``(trace_id, traceparent header for the upstream, started here)``.

    A valid incoming W3C traceparent keeps its trace id and flags (this proxy
    becomes a child span); otherwise a new sampled trace starts, whose id is a new
    event id (UUIDv7: 48-bit ms time, then random bits — the right-most 7 bytes
    random, as W3C Trace Context level 2 asks): the request's event takes it as its
    own ``id``, and the store keeps such a ``trace_id`` in no bytes (rows.store_trace).
    """
    # Trace and span ids must be unique, not secret: Mersenne Twister (reseeded in
    # forked children) costs a fifth of os.urandom per request.
    span = f"{random.getrandbits(64) or 1:016x}"
    if incoming:
        parts = incoming.strip().split("-")
        if (
            len(parts) >= 4
            and parts[0] != "ff"
            and _valid_hex(parts[1], 32)
            and _valid_hex(parts[2], 16)
            and len(parts[3]) == 2
            and _HEX.issuperset(parts[3])
        ):
            return parts[1], f"00-{parts[1]}-{span}-{parts[3]}", False
    trace_id = new_event_id()
    return trace_id, f"00-{trace_id}-{span}-01", True


def split_host(host_header: str | None) -> str:
    """The Host header's host part, lower-cased, without port and without the trailing
    dot of a fully qualified name (``shop.example.`` is ``shop.example``); "" when absent."""
    if not host_header:
        return ""
    host = host_header.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end > 0 else host
    host = host.partition(":")[0]
    return host[:-1] if host.endswith(".") else host


def is_pageview(
    method: str, headers: CIMultiDictProxy[str], status: int, content_type: str | None
) -> bool:
    """A document navigation answered with HTML.

    Fetch metadata decides when the browser sends it (Sec-Fetch-Dest: document,
    Sec-Fetch-Mode: navigate); older clients fall back to Accept: text/html
    without X-Requested-With. Redirects are not pageviews; error pages are.
    """
    if method != "GET" or 300 <= status < 400 or content_type is None:
        return False
    if not (content_type.startswith("text/html") or content_type.startswith("application/xhtml")):
        return False
    return is_navigation(headers)


# istr keys: a look-up with a plain str folds its case every time (twice per HTML page
# when the beacon is on).
_SEC_FETCH_DEST = istr("Sec-Fetch-Dest")
_SEC_FETCH_MODE = istr("Sec-Fetch-Mode")
_ACCEPT = istr("Accept")
_X_REQUESTED_WITH = istr("X-Requested-With")


def is_navigation(headers: CIMultiDictProxy[str]) -> bool:
    """The request's headers say it is a document navigation (see :func:`is_pageview`)."""
    dest = headers.get(_SEC_FETCH_DEST)
    if dest is not None:
        return dest == "document"
    mode = headers.get(_SEC_FETCH_MODE)
    if mode is not None:
        return mode == "navigate"
    return "text/html" in headers.get(_ACCEPT, "") and _X_REQUESTED_WITH not in headers
