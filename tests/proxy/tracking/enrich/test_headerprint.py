"""Header checks against the browser a User-Agent claims (pure)."""

from __future__ import annotations

import pytest

from proxy.tracking.enrich.headerprint import Claim, Engine, check, claim, order_key, secure_context

# Header names as Chromium 156 sent them through this proxy (navigation, then a stylesheet).
CHROMIUM_NAV = ["Host", "Connection", "sec-ch-ua", "sec-ch-ua-mobile", "sec-ch-ua-platform",
                "Upgrade-Insecure-Requests", "User-Agent", "Accept", "Sec-Fetch-Site", "Sec-Fetch-Mode",
                "Sec-Fetch-User", "Sec-Fetch-Dest", "Referer", "Accept-Encoding", "Accept-Language",
                "Cookie"]  # fmt: skip
CHROMIUM_CSS = ["Host", "Connection", "sec-ch-ua-platform", "User-Agent", "sec-ch-ua", "sec-ch-ua-mobile",
                "Accept", "Sec-Fetch-Site", "Sec-Fetch-Mode", "Sec-Fetch-Dest", "Referer", "Accept-Encoding",
                "Accept-Language"]  # fmt: skip
FIREFOX_NAV = ["Host", "User-Agent", "Accept", "Accept-Language", "Accept-Encoding", "Referer", "Connection",
               "Cookie", "Upgrade-Insecure-Requests", "Sec-Fetch-Dest", "Sec-Fetch-Mode", "Sec-Fetch-Site",
               "Sec-Fetch-User", "Priority"]  # fmt: skip
SAFARI_NAV = ["Host", "Accept", "Sec-Fetch-Site", "Cookie", "Sec-Fetch-Dest", "Accept-Language", "Sec-Fetch-Mode",
              "User-Agent", "Referer", "Accept-Encoding", "Connection"]  # fmt: skip
# What HTTP libraries send (python-requests; aiohttp with a typical copied header dict).
REQUESTS = ["Host", "User-Agent", "Accept-Encoding", "Accept", "Connection"]
COPIED = ["Host", "User-Agent", "Accept", "Accept-Language", "Accept-Encoding"]
CDN_ADDED = ["X-Forwarded-For", "CF-Ray", *CHROMIUM_NAV[:6], "X-Real-IP", *CHROMIUM_NAV[6:], "Via"]

CHROME = Claim(Engine.CHROMIUM, client_hints=True, fetch_metadata=True)
FIREFOX = Claim(Engine.FIREFOX, client_hints=False, fetch_metadata=True)
SAFARI = Claim(Engine.SAFARI, client_hints=False, fetch_metadata=True)


@pytest.mark.parametrize(
    ("browser", "version", "expected"),
    [
        ("Chrome", "131.0", CHROME),
        ("Chrome Mobile", "124.0", CHROME),
        ("Edge", "131.0", CHROME),
        ("Chrome", "88.0", Claim(Engine.CHROMIUM, client_hints=False, fetch_metadata=True)),
        ("Chrome", "79.0", Claim(Engine.CHROMIUM, client_hints=False, fetch_metadata=False)),
        ("Samsung Internet", "26.0", Claim(Engine.CHROMIUM, client_hints=False, fetch_metadata=True)),
        ("Firefox", "133.0", FIREFOX),
        ("Firefox", "89.0", Claim(Engine.FIREFOX, client_hints=False, fetch_metadata=False)),
        ("Mobile Safari", "18.1", SAFARI),
        ("Safari", "16.4", SAFARI),
        ("Safari", "16.3", Claim(Engine.SAFARI, client_hints=False, fetch_metadata=False)),
        ("Chrome Mobile iOS", "131.0", None),  # WebKit underneath
        ("Chrome Mobile WebView", "131.0", None),
        ("Facebook", None, None),
        ("Other", None, None),
        (None, None, None),
    ],
)
def test_claim(browser: str | None, version: str | None, expected: Claim | None) -> None:
    assert claim(browser, version) == expected


@pytest.mark.parametrize(
    ("scheme", "site", "secure"),
    [("https", "shop.example", True), ("http", "shop.example", False), ("http", "127.0.0.1", True),
     ("http", "localhost", True), ("http", "app.localhost", True), ("http", "::1", True)],
)  # fmt: skip
def test_secure_context(scheme: str, site: str, secure: bool) -> None:
    assert secure_context(scheme, site) is secure


@pytest.mark.parametrize(
    ("c", "names", "missing", "out_of_order"),
    [
        (CHROME, CHROMIUM_NAV, (), False),
        (CHROME, CHROMIUM_CSS, (), False),
        (CHROME, CDN_ADDED, (), False),  # headers added on the way do not count
        (FIREFOX, FIREFOX_NAV, (), False),
        (SAFARI, SAFARI_NAV, (), False),  # Safari's order is not checked
        (CHROME, COPIED, ("sec-fetch-*", "sec-ch-ua"), True),  # Accept-Language before Accept-Encoding
        (CHROME, REQUESTS, ("accept-language", "sec-fetch-*", "sec-ch-ua"), True),
        (FIREFOX, COPIED, ("sec-fetch-*",), False),
        (FIREFOX, CHROMIUM_NAV, (), True),  # a Firefox UA on Chromium's headers
        (CHROME, FIREFOX_NAV, ("sec-ch-ua",), True),
        (SAFARI, ["Host", "User-Agent"], ("accept", "accept-language", "sec-fetch-*"), False),
        (Claim(Engine.CHROMIUM, client_hints=False, fetch_metadata=False), COPIED, (), True),
    ],
)
def test_check(c: Claim, names: list[str], missing: tuple[str, ...], out_of_order: bool) -> None:
    verdict = check(c, order_key(names))
    assert verdict.missing == missing
    assert verdict.out_of_order is out_of_order


def test_order_key_keeps_only_tracked_names_in_order() -> None:
    assert order_key(["Host", "X-Foo", "User-Agent", "ACCEPT", "sec-ch-ua-mobile", "Sec-CH-UA"]) == (
        "user-agent", "accept", "sec-ch-ua",
    )  # fmt: skip
