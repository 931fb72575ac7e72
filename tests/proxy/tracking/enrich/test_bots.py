# ruff: noqa: E501  (user-agent strings are data and stay whole)
"""The combined bot matcher: our markers, crawler-user-agents and isbot in one pass."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from proxy.tracking.enrich import Enricher, data
from proxy.tracking.enrich.bots import drop_lookaround, isbot_name, js_to_python, list_matcher

ISBOT = data.load("isbot/patterns.json")["patterns"]

# Real browsers, desktop and mobile: never bots.
BROWSERS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8 Pro) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.113 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    "Mozilla/5.0 (Linux; Android 10; HD1913) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.39 Mobile Safari/537.36 EdgA/131.0.2903.48",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.7; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.7 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) GSA/343.0.695551749 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 OPR/115.0.0.0",
    "Mozilla/5.0 (Linux; Android 14; Pixel 7; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/131.0.6778.39 Mobile Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/21E236 [FBAN/FBIOS;FBDV/iPhone15,2;FBMD/iPhone;FBSN/iOS;FBSV/17.4]",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/21E236 Instagram 326.0.3.30.91 (iPhone15,2; iOS 17_4; en_US)",
]

# Missed before isbot was added (issue 13), by category.
ISBOT_CATCHES = [
    ("ApacheBench/2.3", "ApacheBench"),
    ("amazon-kendra-web-crawler/1.0 (+https://aws.amazon.com/kendra/)", "amazon-kendra-web-crawler"),
    ("Amazon-Route53-Health-Check-Service (ref 1b2c3d4e-0000-0000-0000-000000000000; report http://amzn.to/1vsZADi)",
     "Amazon-Route53-Health-Check-Service"),
    ("Arachni/v1.5.1", "Arachni"),
    ("Mozilla/5.0 (compatible; Arachni/1.5.1; +https://github.com/Arachni/arachni)", "Arachni"),
    ("LinkChecker/10.5.0 (+https://linkchecker.github.io/linkchecker/)", "LinkChecker"),
    ("Mozilla/5.0 (compatible; BrokenLinkCheck.com/1.0)", "BrokenLinkCheck.com"),  # link checker
    ("Grafana Synthetic Monitoring/1.0", "Grafana Synthetic Monitoring"),  # monitoring
    ("Liferea/1.15.5 (Linux; https://lzone.de/liferea/)", "Liferea"),  # feed readers
    ("NetNewsWire (RSS Reader; https://netnewswire.com/)", "NetNewsWire"),
    ("Mozilla/5.0 (compatible; Yarr/1.0; +https://github.com/nkanaev/yarr)", "Yarr"),
    ("hey/0.0.1", "hey"),  # load generators
    ("k6/0.50.0 (https://k6.io/)", "k6"),
    ("Wappalyzer", "Wappalyzer"),  # site analysers
    ("WhatCMS/1.0", "WhatCMS"),
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 SiteMonitor", "SiteMonitor"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36 scan-engine/2", "scan-engine"),
]  # fmt: skip


@pytest.fixture(scope="module", params=[True, False], ids=["rust", "python"])
def match(request: pytest.FixtureRequest) -> Callable[[str], str | None]:
    """Both implementations must agree: the Rust regex set and the pure-Python fallback."""
    return list_matcher(ISBOT, rust=request.param)


@pytest.mark.parametrize("ua", BROWSERS)
def test_real_browsers_are_not_bots(match: Callable[[str], str | None], ua: str) -> None:
    assert match(ua) is None


@pytest.mark.parametrize(("ua", "name"), ISBOT_CATCHES)
def test_isbot_catches_what_the_crawler_list_missed(match: Callable[[str], str | None], ua: str, name: str) -> None:
    assert match(ua) == name
    assert list_matcher([])(ua) is None  # the crawler list alone misses it


@pytest.mark.parametrize(("ua", "name"), ISBOT_CATCHES)
def test_isbot_catches_are_bots_in_the_event(enricher: Enricher, ua: str, name: str) -> None:
    out = enricher.enrich(site="s.example", path="/", query=[], user_agent=ua, referer=None,
                          client_ip=None, country_header=None)  # fmt: skip
    assert (out["bot"], out["bot_name"], out["ua"]["device"]) == (True, name, "bot")


@pytest.mark.parametrize("ua", BROWSERS)
def test_real_browsers_are_humans_in_the_event(enricher: Enricher, ua: str) -> None:
    out = enricher.enrich(site="s.example", path="/", query=[], user_agent=ua, referer=None,
                          client_ip=None, country_header=None)  # fmt: skip
    assert out["bot"] is False


def test_crawler_list_names_win_over_isbot(match: Callable[[str], str | None]) -> None:
    # Both lists match; crawler-user-agents comes first and names it.
    assert match("Mozilla/5.0 (compatible; SERankingBacklinksBot/1.0; +https://seranking.com)") == "SERankingBacklinksBot"


@pytest.mark.parametrize(
    ("ua", "is_bot"),
    [
        # isbot's look-around patterns, decided by their look-around part
        ("Mozilla/5.0 (X11) Gecko/1 Firefox/1 libhttp-thing", False),  # (?<!lib)http
        ("something-http-client", True),
        ("Mozilla/5.0 (X11) AppleWebKit/1 camscanner", False),  # (?<!cam)scan
        ("Mozilla/5.0 (X11) AppleWebKit/1 vulnscan", True),
        ("Mozilla/5.0 (Linux; Android 14; Pixel 7; wv) AppleWebKit/537.36 Version/4.0 Chrome/131 Mobile Safari/537.36 GoogleApp/15", False),
        ("Mozilla/5.0 (X11) AppleWebKit/1 google-structured-data-testing", True),
    ],
)
def test_lookaround_patterns(match: Callable[[str], str | None], ua: str, is_bot: bool) -> None:
    assert (match(ua) is not None) is is_bot


@pytest.mark.parametrize(
    ("js", "py"),
    [
        ("(?<! channel/|google/)google(?!(?:wv|app))", "(?<! channel/)(?<!google/)google(?!(?:wv|app))"),
        ("(?<!cam)scan", "(?<!cam)scan"),
        (r"^mozilla/\d\.\d\s\((?:\s?[\w\d-.]+)?\)$", r"^mozilla/\d\.\d\s\((?:\s?[\w\d\-.]+)?\)$"),
    ],
)
def test_js_to_python(js: str, py: str) -> None:
    assert js_to_python(js) == py
    re.compile(py)


@pytest.mark.parametrize(
    ("pattern", "relaxed"),
    [
        ("(?<! channel/|google/)google(?!(?:wv|app|/google| pixel))", "google"),
        ("(?:^|[^g])news(?!sapphire)", "(?:^|[^g])news"),
        ("java(?!;)", "java"),
    ],
)
def test_drop_lookaround(pattern: str, relaxed: str) -> None:
    assert drop_lookaround(pattern) == relaxed


def test_every_isbot_pattern_compiles_in_python() -> None:
    for pattern in ISBOT:
        re.compile(js_to_python(pattern), re.IGNORECASE)


@pytest.mark.parametrize(
    ("ua", "match", "name"),
    [
        ("ApacheBench/2.3", "ApacheBench", "ApacheBench"),
        ("Mozilla/5.0 (compatible; Foo Checker/2.0)", "Checker", "Foo Checker"),
        ("Mozilla/5.0 (X11) Chrome/1 Safari/1 my-monitor/3", "monitor", "my-monitor"),
        ("Mozilla/5.0 (X11) Chrome/1 (+https://x.example/about)", "http", None),  # a URL is no name
    ],
)
def test_isbot_name(ua: str, match: str, name: str | None) -> None:
    start = ua.index(match)
    assert isbot_name(ua, start, start + len(match)) == name
