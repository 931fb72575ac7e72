from __future__ import annotations

import pytest

from proxy.tracking.enrich import Enricher
from proxy.tracking.enrich.bots import pattern_name
from proxy.tracking.enrich.useragent import device_class

CHROME_WIN = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/124.0.0.0 Safari/537.36")  # fmt: skip
SAFARI_IOS = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
              "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1")  # fmt: skip
FB_IN_APP = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
             "like Gecko) Mobile/21E236 [FBAN/FBIOS;FBDV/iPhone15,2;FBMD/iPhone;FBSN/iOS;FBSV/17.4]")
INSTAGRAM = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
             "like Gecko) Mobile/21E236 Instagram 326.0.3.30.91 (iPhone15,2; iOS 17_4; en_US)")
CHROME_ANDROID = ("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/124.0.0.0 Mobile Safari/537.36")  # fmt: skip
GOOGLEBOT_PHONE = ("Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 "
                   "(KHTML, like Gecko) Chrome/124.0.6367.201 Mobile Safari/537.36 "
                   "(compatible; Googlebot/2.1; +http://www.google.com/bot.html)")  # fmt: skip
ANDROID_TABLET = ("Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/124.0.0.0 Safari/537.36")  # fmt: skip
IPAD = ("Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/16.6 Mobile/15E148 Safari/604.1")  # fmt: skip
FIREFOX_MAC = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.4; rv:125.0) Gecko/20100101 Firefox/125.0"
HEADLESS = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "HeadlessChrome/124.0.0.0 Safari/537.36")  # fmt: skip
GPTBOT = ("Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; "
          "+https://openai.com/gptbot)")  # fmt: skip
SMART_TV = ("Mozilla/5.0 (SMART-TV; LINUX; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) "
            "76.0.3809.146/6.0 TV Safari/537.36")  # fmt: skip
# Claims to be desktop Chrome, but carries a crawler token the crawler list knows.
FAKE_CHROME_BOT = CHROME_WIN + " (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)"
LIST_ONLY_BOT = "Mozilla/5.0 (compatible; SERankingBacklinksBot/1.0; +https://seranking.com)"


def _enrich(e: Enricher, ua: str | None, path: str = "/") -> dict[str, object]:
    return e.enrich(site="shop.example", path=path, query=[], user_agent=ua, referer=None,
                    client_ip=None, country_header=None)  # fmt: skip


@pytest.mark.parametrize(
    ("ua", "browser", "version", "os", "device"),
    [
        (CHROME_WIN, "Chrome", "124.0", "Windows", "desktop"),
        (SAFARI_IOS, "Mobile Safari", "17.4", "iOS", "mobile"),
        (FB_IN_APP, "Facebook", None, "iOS", "mobile"),
        (INSTAGRAM, "Instagram", "326.0", "iOS", "mobile"),
        (CHROME_ANDROID, "Chrome Mobile", "124.0", "Android", "mobile"),
        (ANDROID_TABLET, "Chrome", "124.0", "Android", "tablet"),
        (IPAD, "Mobile Safari", "16.6", "iOS", "tablet"),
        (FIREFOX_MAC, "Firefox", "125.0", "Mac OS X", "desktop"),
        (SMART_TV, "Safari", None, "Tizen", "other"),
    ],
)
def test_browsers_are_parsed_and_not_bots(
    enricher: Enricher, ua: str, browser: str, version: str | None, os: str, device: str
) -> None:
    out = _enrich(enricher, ua)
    assert out["ua"] == {"browser": browser, "browser_version": version, "os": os, "device": device}
    assert out["bot"] is False
    assert out["bot_name"] is None


@pytest.mark.parametrize(
    ("ua", "name"),
    [
        (GOOGLEBOT_PHONE, "Googlebot"),  # smartphone crawler, not Chrome Android
        (HEADLESS, "HeadlessChrome"),
        (GPTBOT, "GPTBot"),
        (FAKE_CHROME_BOT, "AhrefsBot"),
        (LIST_ONLY_BOT, "SERankingBacklinksBot"),  # named from the crawler-user-agents list
        ("curl/8.5.0", "curl"),
        ("python-requests/2.31.0", "python-requests"),
        ("Go-http-client/1.1", "Go-http-client"),
        ("Mozilla/5.0 (compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)", "UptimeRobot"),
        ("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
         "facebookexternalhit"),
        ("Mozilla/5.0 (Macintosh) AppleWebKit/605.1.15 (KHTML, like Gecko) Slackbot-LinkExpanding",
         "Slackbot"),
        ("Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; ClaudeBot/1.0",
         "ClaudeBot"),
        ("Mozilla/5.0 (X11; Linux x86_64) Chrome/124 Safari/537.36 Playwright/1.44", "Playwright"),
    ],
)
def test_bots_are_flagged_and_named(enricher: Enricher, ua: str, name: str) -> None:
    out = _enrich(enricher, ua)
    assert out["bot"] is True
    assert out["bot_name"] == name
    assert out["ua"]["device"] == "bot"  # type: ignore[index]


@pytest.mark.parametrize("ua", [None, "", "   "])
def test_missing_user_agent_is_an_unnamed_bot(enricher: Enricher, ua: str | None) -> None:
    out = _enrich(enricher, ua)
    assert out["bot"] is True
    assert out["bot_name"] is None
    assert out["ua"] == {"browser": None, "browser_version": None, "os": None, "device": "bot"}


def test_robots_txt_request_is_a_bot_whatever_the_agent(enricher: Enricher) -> None:
    assert _enrich(enricher, CHROME_WIN, path="/robots.txt")["bot"] is True
    assert _enrich(enricher, CHROME_WIN, path="/robots.txt")["ua"]["device"] == "bot"  # type: ignore[index]
    assert _enrich(enricher, CHROME_WIN, path="/")["bot"] is False


def test_cached_result_is_not_shared_with_the_caller(enricher: Enricher) -> None:
    first = _enrich(enricher, CHROME_WIN)
    first["ua"]["device"] = "changed"  # type: ignore[index]
    assert _enrich(enricher, CHROME_WIN)["ua"]["device"] == "desktop"  # type: ignore[index]


@pytest.mark.parametrize(
    ("os", "family", "brand", "ua", "expected"),
    [
        ("Android", "K", "Generic_Android", "Linux; Android 10; K Mobile Safari", "mobile"),
        ("Android", "SM-X700", "Generic_Android_Tablet", "Android 13; SM-X700", "tablet"),
        ("Android", None, None, "Android 13; no mobile token", "tablet"),
        ("iOS", "iPhone", "Apple", "", "mobile"),
        ("iOS", "iPad", "Apple", "", "tablet"),
        ("Android", "Kindle", "Amazon", "Silk", "tablet"),
        ("Windows", None, None, "Windows NT 10.0", "desktop"),
        ("Windows", None, None, "Windows NT 6.1; Tablet PC 2.0", "desktop"),
        ("Chrome OS", None, None, "CrOS", "desktop"),
        ("Mac OS X", "Mac", "Apple", "", "desktop"),
        ("Tizen", "Samsung SMART-TV", "Samsung", "SMART-TV", "other"),
        (None, "Spider", "Spider", "bot", "bot"),
        (None, None, None, "SomethingElse/1.0", "other"),
    ],
)
def test_device_class(os: str | None, family: str | None, brand: str | None, ua: str,
                      expected: str) -> None:  # fmt: skip
    assert device_class(os, family, brand, ua) == expected


@pytest.mark.parametrize(
    ("pattern", "name"),
    [
        (r"Googlebot\/", "Googlebot"),
        (r"AdsBot-Google([^-]|$)", "AdsBot-Google"),
        (r"^ArenaUnfurlBot", "ArenaUnfurlBot"),
        (r"Spider[\s\S]*spider\.com", "Spider"),
        (r"bne\.es_bot", "bne.es_bot"),
        (r"[a-z]+bot", r"[a-z]+bot"),  # no literal prefix: the pattern itself
    ],
)
def test_pattern_name(pattern: str, name: str) -> None:
    assert pattern_name(pattern) == name
