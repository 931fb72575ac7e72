import ipaddress
import time

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from proxy.edge.headers import (
    TrustedProxies,
    client_ip,
    downstream_response_headers,
    is_pageview,
    split_host,
    trace_context,
    traceparent,
    upstream_request_headers,
)


def h(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(pairs))


TRUSTED = TrustedProxies([ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128")])


@pytest.mark.parametrize(
    ("peer", "headers", "expected"),
    [
        # untrusted peer: its XFF is ignored whatever it says
        ("203.0.113.9", h(("X-Forwarded-For", "1.2.3.4")), ("203.0.113.9", False)),
        # trusted peer: rightmost untrusted address, not the forgeable leftmost
        ("10.0.0.2", h(("X-Forwarded-For", "6.6.6.6, 198.51.100.7")), ("198.51.100.7", True)),
        ("10.0.0.2", h(("X-Forwarded-For", "6.6.6.6, 198.51.100.7, 10.0.0.3")), ("198.51.100.7", True)),
        # XFF split across two header lines
        ("10.0.0.2", h(("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "198.51.100.8")), ("198.51.100.8", True)),
        # all hops trusted: leftmost is the best we know
        ("10.0.0.2", h(("X-Forwarded-For", "10.1.1.1, 10.0.0.3")), ("10.1.1.1", True)),
        # garbage in XFF falls back to the peer
        ("10.0.0.2", h(("X-Forwarded-For", "not-an-ip")), ("10.0.0.2", True)),
        # Forwarded (RFC 7239) when no XFF
        ("10.0.0.2", h(("Forwarded", 'for=6.6.6.6, for="[2001:db8::1]:4711";proto=https')), ("2001:db8::1", True)),
        ("10.0.0.2", h(("Forwarded", "for=192.0.2.60:4711")), ("192.0.2.60", True)),
        # trusted peer, no forwarding header: the peer is the client
        ("10.0.0.2", h(), ("10.0.0.2", True)),
        ("::1", h(("X-Forwarded-For", "2001:db8::5")), ("2001:db8::5", True)),
        (None, h(), (None, False)),
    ],
)
def test_client_ip(peer, headers, expected) -> None:
    assert client_ip(peer, headers, TRUSTED) == expected


def test_no_trusted_proxies_never_reads_xff() -> None:
    assert client_ip("10.0.0.2", h(("X-Forwarded-For", "1.1.1.1")), TrustedProxies([])) == ("10.0.0.2", False)


def test_upstream_headers_drop_hop_by_hop_and_connection_named() -> None:
    incoming = h(
        ("Host", "shop.example"), ("Connection", "keep-alive, X-Secret"), ("Keep-Alive", "timeout=5"),
        ("TE", "trailers"), ("Trailer", "X"), ("Transfer-Encoding", "chunked"), ("Upgrade", "h2c"),
        ("Proxy-Authorization", "Basic x"), ("Proxy-Foo", "1"), ("X-Secret", "s"), ("Accept", "*/*"),
        ("X-Forwarded-For", "1.1.1.1"), ("X-Forwarded-Proto", "gopher"), ("traceparent", "bogus"),
        ("Cookie", "a=1"), ("Cookie", "b=2"),
    )  # fmt: skip
    out = upstream_request_headers(
        incoming, peer_ip="127.0.0.1", scheme="https", host="shop.example", traceparent="00-x"
    )
    names = {k.lower() for k in out}
    for gone in ("connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade",
                 "proxy-authorization", "proxy-foo", "x-secret"):  # fmt: skip
        assert gone not in names
    assert out["X-Forwarded-For"] == "1.1.1.1, 127.0.0.1"
    assert out["X-Forwarded-Proto"] == "https"
    assert out["X-Forwarded-Host"] == "shop.example"
    assert out["traceparent"] == "00-x"
    assert out.getall("Cookie") == ["a=1", "b=2"]
    assert out["Host"] == "shop.example"


def test_response_headers_keep_every_set_cookie_and_encoding() -> None:
    upstream = h(
        ("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2; HttpOnly"), ("Content-Encoding", "gzip"),
        ("Content-Length", "42"), ("Connection", "close, X-Drop"), ("X-Drop", "1"), ("Keep-Alive", "x"),
    )  # fmt: skip
    out = downstream_response_headers(upstream.items())
    assert out.getall("Set-Cookie") == ["a=1; Path=/", "b=2; HttpOnly"]
    assert out["Content-Encoding"] == "gzip"
    assert out["Content-Length"] == "42"
    assert "X-Drop" not in out and "Connection" not in out and "Keep-Alive" not in out


def test_traceparent_continues_a_valid_trace_and_starts_a_new_one_otherwise() -> None:
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    tid, header = traceparent(f"00-{trace}-00f067aa0ba902b7-01")
    assert tid == trace
    assert header.startswith(f"00-{trace}-") and header.endswith("-01")
    assert header.split("-")[2] != "00f067aa0ba902b7"
    assert trace_context(f"00-{trace}-00f067aa0ba902b7-01")[2] is False
    for bad in (None, "garbage", f"00-{'0' * 32}-00f067aa0ba902b7-01", f"ff-{trace}-00f067aa0ba902b7-01"):
        tid, header = traceparent(bad)
        assert len(tid) == 32 and tid != trace
        assert header == f"00-{tid}-{header.split('-')[2]}-01"
        assert trace_context(bad)[2] is True


def test_a_new_trace_id_is_an_event_id() -> None:
    """UUIDv7 layout: the event of the request takes it as its id (tracking/event.py)."""
    before = time.time_ns() // 1_000_000
    tid, _, started = trace_context(None)
    assert started and int(tid[:12], 16) >= before and tid[12] == "7" and tid[16] in "89ab"
    assert len({trace_context(None)[0] for _ in range(1000)}) == 1000


@pytest.mark.parametrize(
    ("value", "expected"),
    [("Shop.Example:8080", "shop.example"), ("[::1]:8080", "[::1]"), ("example.org", "example.org"),
     (None, ""), ("", ""), ("shop.example.", "shop.example"), ("Shop.Example.:443", "shop.example"),
     (".", "")],  # fmt: skip
)
def test_split_host(value, expected) -> None:
    assert split_host(value) == expected


@pytest.mark.parametrize(
    ("method", "headers", "status", "ctype", "expected"),
    [
        ("GET", h(("Sec-Fetch-Dest", "document"), ("Sec-Fetch-Mode", "navigate")), 200, "text/html", True),
        ("GET", h(("Sec-Fetch-Dest", "iframe")), 200, "text/html", False),
        ("GET", h(("Sec-Fetch-Dest", "empty"), ("Sec-Fetch-Mode", "cors")), 200, "text/html", False),
        ("GET", h(("Accept", "text/html,application/xhtml+xml")), 200, "text/html", True),
        ("GET", h(("Accept", "text/html"), ("X-Requested-With", "XMLHttpRequest")), 200, "text/html", False),
        ("GET", h(("Accept", "*/*")), 200, "text/html", False),
        ("GET", h(("Sec-Fetch-Dest", "document")), 404, "text/html", True),
        ("GET", h(("Sec-Fetch-Dest", "document")), 302, "text/html", False),
        ("GET", h(("Sec-Fetch-Dest", "document")), 200, "image/png", False),
        ("GET", h(("Sec-Fetch-Dest", "document")), 200, None, False),
        ("POST", h(("Sec-Fetch-Dest", "document")), 200, "text/html", False),
        ("GET", h(("Sec-Fetch-Dest", "document")), 200, "application/xhtml+xml", True),
    ],
)
def test_is_pageview(method, headers, status, ctype, expected) -> None:
    assert is_pageview(method, headers, status, ctype) is expected
