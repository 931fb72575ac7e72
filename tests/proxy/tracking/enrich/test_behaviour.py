"""Behavioural bot signals, one at a time, through the scorer the flush task uses (pure:
real Exchange snapshots, no sockets)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from proxy.tracking.enrich.behaviour import BehaviourScorer
from proxy.tracking.enrich.botscore import WEIGHTS, Signal, score
from proxy.tracking.event import Exchange

CHROME_UA = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
             "Chrome/131.0.0.0 Safari/537.36")  # fmt: skip
CHROME = {"browser": "Chrome", "browser_version": "131.0"}
_ids = itertools.count()


def chrome_page(cookie: bool) -> list[tuple[str, str]]:
    h = [("Host", "shop.example"), ("Connection", "keep-alive"), ("sec-ch-ua", '"Chromium";v="131"'),
         ("sec-ch-ua-mobile", "?0"), ("sec-ch-ua-platform", '"Windows"'), ("Upgrade-Insecure-Requests", "1"),
         ("User-Agent", CHROME_UA), ("Accept", "text/html"), ("Sec-Fetch-Site", "none"),
         ("Sec-Fetch-Mode", "navigate"), ("Sec-Fetch-User", "?1"), ("Sec-Fetch-Dest", "document"),
         ("Accept-Encoding", "gzip, deflate, br, zstd"), ("Accept-Language", "en-US,en;q=0.9")]  # fmt: skip
    return h + ([("Cookie", "ff_vid=x")] if cookie else [])


SCRIPTED = [("Host", "shop.example"), ("User-Agent", CHROME_UA), ("Accept", "text/html"),
            ("Accept-Language", "en-US,en;q=0.9"), ("Accept-Encoding", "gzip, deflate")]  # fmt: skip
FIREFOX_ORDER_CHROME_UA = [("Host", "shop.example"), ("User-Agent", CHROME_UA), ("Accept", "text/html"),
                           ("Accept-Language", "en"), ("Accept-Encoding", "gzip"), ("sec-ch-ua", "x"),
                           ("Sec-Fetch-Dest", "document"), ("Sec-Fetch-Mode", "navigate"),
                           ("Sec-Fetch-Site", "none")]  # fmt: skip


def exchange(ts: float, headers: list[tuple[str, str]], *, path: str = "/", ctype: str = "text/html",
             visitor: str | None = None, new_visitor: bool = True, ip: str = "203.0.113.9",
             scheme: str = "https", consent: str = "granted") -> Exchange:  # fmt: skip
    """One request; ``visitor=None`` with ``new_visitor`` means: the proxy set a fresh cookie."""
    if visitor is None and consent == "granted":
        visitor = f"new{next(_ids)}"
    return Exchange(
        ts=ts, method="GET", raw_path=path, site="shop.example", scheme=scheme,
        headers=CIMultiDictProxy(CIMultiDict(headers)), client_ip=ip, peer_trusted=False,
        pageview=ctype == "text/html", status=200, bytes_out=100, content_type=ctype, duration_ms=1.0,
        upstream_ms=1.0, visitor=visitor, session=None, new_visitor=new_visitor, new_session=new_visitor,
        consent=consent, trace_id="0" * 32, error=None,
    )  # fmt: skip


def scorer(**kw: Any) -> BehaviourScorer:
    args: dict[str, Any] = {"cookie_mode": True, "honeypot_paths": ("/secret-trap",), "max_actors": 1000} | kw
    return BehaviourScorer(**args)


def run(s: BehaviourScorer, exchanges: list[Exchange]) -> list[Signal]:
    return [s.signals(ex, ex.raw_path, CHROME) for ex in exchanges]


def browser_visit(start: float, pages: int, gaps: list[float], *, assets: bool = True,
                  ip: str = "192.0.2.1") -> list[Exchange]:  # fmt: skip
    """A browser: first page sets the cookie, everything after sends it back."""
    out = [exchange(start, chrome_page(False), visitor="v-browser", new_visitor=True, ip=ip)]
    t = start
    for i in range(pages):
        if i:
            t += gaps[(i - 1) % len(gaps)]
            out.append(exchange(t, chrome_page(True), visitor="v-browser", new_visitor=False))
        if assets:
            out.append(exchange(t + 0.05, chrome_page(True), path="/app.css", ctype="text/css",
                                visitor="v-browser", new_visitor=False))  # fmt: skip
    return out


@pytest.mark.parametrize(
    ("signals", "expected"),
    [
        (Signal(0), None),
        (Signal.HEADERS_OK, 60),
        (Signal.COOKIE_RETURNED | Signal.ASSETS | Signal.HEADERS_OK, 95),
        (Signal.HEADERS_MISSING, 5),
        (Signal.TRAP | Signal.HEADERS_MISSING, 1),
        (Signal.COOKIE_RETURNED | Signal.ASSETS | Signal.HEADERS_OK | Signal.REGULAR, 70),
        (Signal.COOKIE_RETURNED | Signal.ASSETS | Signal.HEADERS_OK | Signal.NO_ASSETS | Signal.REGULAR, 40),
        (Signal.HEADERS_OK | Signal.COOKIE_DROPPED | Signal.NO_ASSETS, 1),
        (~Signal(0), 1),
    ],
)
def test_score(signals: Signal, expected: int | None) -> None:
    assert score(signals) == expected


def test_every_signal_has_a_weight_and_a_sign() -> None:
    bots = {Signal.TRAP, Signal.HEADERS_MISSING, Signal.RATE, Signal.HEADER_ORDER, Signal.COOKIE_DROPPED,
            Signal.NO_ASSETS, Signal.REGULAR, Signal.BEACON_MISSING}  # fmt: skip
    assert set(WEIGHTS) == set(Signal)
    assert all((WEIGHTS[s] < 0) is (s in bots) for s in Signal)


@pytest.mark.parametrize("path", ["/robots.txt", "/secret-trap"])
def test_trap(path: str) -> None:
    got = run(scorer(), [exchange(1.0, chrome_page(False), path=path, ctype="text/plain"),
                         exchange(2.0, chrome_page(False))])  # fmt: skip
    assert Signal.TRAP in got[0]
    assert Signal.TRAP in got[1]  # sticks to the actor


@pytest.mark.parametrize(
    ("headers", "scheme", "ip", "expected"),
    [
        (chrome_page(False), "https", "203.0.113.9", {Signal.HEADERS_OK}),
        (SCRIPTED, "https", "203.0.113.9", {Signal.HEADERS_MISSING, Signal.HEADER_ORDER}),
        (SCRIPTED, "http", "203.0.113.9", set()),  # plain HTTP: browsers send no fetch metadata either
        (FIREFOX_ORDER_CHROME_UA, "https", "203.0.113.9", {Signal.HEADER_ORDER}),
        ([("Host", "shop.example"), ("User-Agent", CHROME_UA), ("Accept", "*/*")], "https", "203.0.113.9",
         {Signal.HEADERS_MISSING}),
    ],
)
def test_request_header_signals(headers: list[tuple[str, str]], scheme: str, ip: str, expected: set[Signal]) -> None:
    s = scorer()
    assert s.signals(exchange(1.0, headers, scheme=scheme, ip=ip), "/", CHROME) == sum(expected, Signal(0))


def test_header_signals_need_a_known_browser_claim() -> None:
    s = scorer()
    assert s.signals(exchange(1.0, SCRIPTED), "/", {"browser": "Other", "browser_version": None}) == 0


def test_cookie_dropped_after_three_cookies_none_back() -> None:
    got = run(scorer(), [exchange(float(t), SCRIPTED, scheme="http") for t in range(4)])
    assert [Signal.COOKIE_DROPPED in g for g in got] == [False, False, True, True]


@pytest.mark.parametrize(
    ("cookie_mode", "consent", "visitor"),
    [
        (False, "granted", "cookieless-hash"),  # cookieless mode: no cookie is ever set
        (True, "denied", None),  # GPC/DNT: no cookie is set either
    ],
)
def test_no_cookie_signal_when_no_cookie_was_set(cookie_mode: bool, consent: str, visitor: str | None) -> None:
    s = scorer(cookie_mode=cookie_mode)
    exchanges = [exchange(float(t), SCRIPTED, scheme="http", consent=consent, visitor=visitor, new_visitor=t == 0)
                 for t in range(5)]  # fmt: skip
    assert all(Signal.COOKIE_DROPPED not in g for g in run(s, exchanges))


def test_cookie_returned_joins_the_first_request_and_marks_the_client_shared() -> None:
    s = scorer()
    first = exchange(1.0, chrome_page(False), visitor="v1", new_visitor=True)
    back = exchange(1.2, chrome_page(True), path="/a.css", ctype="text/css", visitor="v1", new_visitor=False)
    assert s.signals(first, "/", CHROME) == Signal.HEADERS_OK
    assert s.signals(back, "/a.css", CHROME) == Signal.COOKIE_RETURNED | Signal.HEADERS_OK | Signal.ASSETS
    # Others behind the same address and UA that drop cookies no longer look like one client.
    others = [exchange(2.0 + t, SCRIPTED, scheme="http", ip="203.0.113.9") for t in range(5)]
    # (SCRIPTED has the same UA as chrome_page: the same client key)
    assert all(Signal.COOKIE_DROPPED not in g for g in run(s, others))


def test_no_assets_only_where_the_site_has_assets() -> None:
    s = scorer()
    pages = [exchange(float(t) * 7.3, SCRIPTED, scheme="http") for t in range(4)]
    assert all(Signal.NO_ASSETS not in g for g in run(s, pages))  # no one fetched assets here yet
    run(s, browser_visit(100.0, 1, [5.0]))
    more = run(s, [exchange(200.0 + t * 3.1, SCRIPTED, scheme="http") for t in range(3)])
    assert Signal.NO_ASSETS in more[-1]


def test_assets_are_human_evidence() -> None:
    got = run(scorer(), browser_visit(0.0, 3, [4.0, 11.0]))
    assert Signal.ASSETS in got[-1]
    assert Signal.NO_ASSETS not in got[-1]


@pytest.mark.parametrize(
    ("gaps", "fired"),
    [
        ([0.3], True),  # 10 pages in under 5 s
        ([0.3, 0.5, 0.6], True),
        ([2.0, 3.0, 0.5], False),
    ],
)
def test_rate(gaps: list[float], fired: bool) -> None:
    got = run(scorer(), browser_visit(0.0, 10, gaps, assets=False))
    assert (Signal.RATE in got[-1]) is fired


@pytest.mark.parametrize(
    ("gaps", "fired"),
    [
        ([2.0], True),  # a timer
        ([2.0, 2.05, 1.97, 2.02], True),  # a timer with network jitter
        ([4.0, 11.0, 2.5, 30.0, 7.0], False),  # reading
        ([0.0], False),  # parallel: RATE's business, not REGULAR's
    ],
)
def test_regular_timing(gaps: list[float], fired: bool) -> None:
    got = run(scorer(), browser_visit(0.0, 7, gaps, assets=True))
    assert (Signal.REGULAR in got[-1]) is fired


def test_a_browser_session_is_never_scored_below_the_threshold() -> None:
    s = scorer()
    scores = [score(g) for g in run(s, browser_visit(0.0, 6, [4.0, 11.0, 2.5, 30.0, 7.0]))]
    assert all(x is not None and x >= 60 for x in scores), scores


def test_a_scripted_client_is_scored_low_from_its_first_page() -> None:
    s = scorer()
    scores = [score(g) for g in run(s, [exchange(t * 1.0, SCRIPTED, ip="127.0.0.1") for t in range(3)])]
    assert all(x is not None and x < 30 for x in scores), scores


def test_actors_are_bounded() -> None:
    s = scorer(max_actors=2)
    for ip in ("198.51.100.1", "198.51.100.2", "198.51.100.3"):
        s.signals(exchange(1.0, SCRIPTED, scheme="http", ip=ip), "/", CHROME)
    assert len(s._clients) == 2
    assert len(s._pending) == 2
