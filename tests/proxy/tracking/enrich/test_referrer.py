from __future__ import annotations

from typing import Any

import pytest

from proxy.tracking.enrich import Enricher
from proxy.tracking.enrich.referrer import is_internal, search_term, split_referer


def _referrer(e: Enricher, referer: str | None, site: str = "shop.example") -> Any:
    return e.enrich(site=site, path="/", query=[], user_agent="curl/8", referer=referer,
                    client_ip=None, country_header=None)["referrer"]  # fmt: skip


@pytest.mark.parametrize(
    ("referer", "expected"),
    [
        (None, {"medium": "direct"}),
        ("", {"medium": "direct"}),
        ("https://www.google.co.uk/url?q=https://shop.example/x&sa=t&usg=AOv",  # a redirect,
         {"url": "https://www.google.co.uk/url", "host": "www.google.co.uk",  # q is no term
          "medium": "search", "source": "Google"}),
        ("https://www.google.com/search?q=red+shoes&client=safari",
         {"url": "https://www.google.com/search?q=red+shoes", "host": "www.google.com",
          "medium": "search", "source": "Google", "term": "red shoes"}),
        ("https://www.bing.com/search?q=caf%C3%A9&form=QBLH",
         {"url": "https://www.bing.com/search?q=caf%C3%A9", "host": "www.bing.com",
          "medium": "search", "source": "Bing", "term": "café"}),
        ("https://search.yahoo.co.jp/search?p=shoes",
         {"url": "https://search.yahoo.co.jp/search?p=shoes", "host": "search.yahoo.co.jp",
          "medium": "search", "source": "Yahoo! Japan", "term": "shoes"}),
        ("android-app://com.google.android.gm/",
         {"url": "android-app://com.google.android.gm/", "host": "com.google.android.gm",
          "medium": "email", "source": "Gmail"}),
        ("android-app://com.google.android.googlequicksearchbox/https/www.google.com",
         {"url": "android-app://com.google.android.googlequicksearchbox/https/www.google.com",
          "host": "com.google.android.googlequicksearchbox", "medium": "search",
          "source": "Google"}),
        ("https://mail.google.com/mail/u/0/",
         {"url": "https://mail.google.com/mail/u/0/", "host": "mail.google.com",
          "medium": "email", "source": "Gmail"}),
        ("https://l.facebook.com/l.php?u=https%3A%2F%2Fshop.example%2F&h=AT0",
         {"url": "https://l.facebook.com/l.php", "host": "l.facebook.com",
          "medium": "social", "source": "Facebook"}),
        ("https://t.co/AbC123",
         {"url": "https://t.co/AbC123", "host": "t.co", "medium": "social",
          "source": "Twitter"}),
        ("https://news.google.com/articles/abc",
         {"url": "https://news.google.com/articles/abc", "host": "news.google.com",
          "medium": "search", "source": "Google News"}),
        ("https://chatgpt.com/", {"url": "https://chatgpt.com/", "host": "chatgpt.com",
                                  "medium": "chatbot", "source": "ChatGPT"}),
        ("https://www.perplexity.ai/search/x",
         {"url": "https://www.perplexity.ai/search/x", "host": "www.perplexity.ai",
          "medium": "chatbot", "source": "Perplexity"}),
        ("https://gemini.google.com/app", {"url": "https://gemini.google.com/app",
                                           "host": "gemini.google.com", "medium": "chatbot",
                                           "source": "Gemini"}),
        ("https://claude.ai/chat/1", {"url": "https://claude.ai/chat/1", "host": "claude.ai",
                                      "medium": "chatbot", "source": "Claude"}),
        ("https://copilot.microsoft.com/", {"url": "https://copilot.microsoft.com/",
                                            "host": "copilot.microsoft.com",
                                            "medium": "chatbot", "source": "Copilot"}),
        # Query (with PII) and userinfo dropped; unknown hosts are named by host.
        ("https://bob:pw@Blog.Other.ORG:8443/post?email=a@b.c#top",
         {"url": "https://blog.other.org:8443/post", "host": "blog.other.org",
          "medium": "unknown", "source": "blog.other.org"}),
        ("https://www.other.org", {"url": "https://www.other.org/", "host": "www.other.org",
                                   "medium": "unknown", "source": "other.org"}),
        ("about:blank", {"url": None, "host": None, "medium": "unknown", "source": None}),
        # Internal: the site itself (www. ignored) or a configured own domain.
        ("https://shop.example/cart?id=1", {"url": "https://shop.example/cart",
                                            "host": "shop.example", "medium": "internal",
                                            "source": "shop.example"}),
        ("https://www.shop.example/", {"url": "https://www.shop.example/",
                                       "host": "www.shop.example", "medium": "internal",
                                       "source": "www.shop.example"}),
        ("https://img.example-cdn.net/a", {"url": "https://img.example-cdn.net/a",
                                           "host": "img.example-cdn.net", "medium": "internal",
                                           "source": "img.example-cdn.net"}),
    ],
)
def test_referrer_classification(enricher: Enricher, referer: str | None,
                                 expected: dict[str, Any]) -> None:  # fmt: skip
    assert _referrer(enricher, referer) == expected


def test_referrer_is_a_copy_the_caller_owns(enricher: Enricher) -> None:
    _referrer(enricher, "https://t.co/x")["medium"] = "changed"
    assert _referrer(enricher, "https://t.co/x")["medium"] == "social"


@pytest.mark.parametrize(
    ("referer", "parts"),
    [
        ("https://a.b/c?d=e#f", ("https", "a.b", "a.b", "/c", "d=e")),
        ("HTTP://A.B.:80", ("http", "a.b", "a.b:80", "/", "")),
        ("https://[2001:db8::1]:8080/x", ("https", "2001:db8::1", "[2001:db8::1]:8080", "/x", "")),
        ("https://u:p@h.example?x=1", ("https", "h.example", "h.example", "/", "x=1")),
    ],
)
def test_split_referer(referer: str, parts: tuple[str, ...]) -> None:
    split = split_referer(referer)
    assert split is not None
    assert (split.scheme, split.host, split.authority, split.path, split.query) == parts


@pytest.mark.parametrize("referer", ["about:blank", "no scheme", "https://", "https:///path"])
def test_split_referer_rejects(referer: str) -> None:
    assert split_referer(referer) is None


@pytest.mark.parametrize(
    ("query", "params", "expected"),
    [
        ("q=shoes", ("q",), ("q", "shoes")),
        ("q=&p=boots", ("q", "p"), ("p", "boots")),
        ("q=https%3A%2F%2Fx.example", ("q",), None),
        ("q=+", ("q",), None),
        ("q=shoes", (), None),
    ],
)
def test_search_term(query: str, params: tuple[str, ...], expected: object) -> None:
    assert search_term(query, params) == expected


@pytest.mark.parametrize(
    ("host", "site", "own", "expected"),
    [
        ("shop.example", "shop.example", (), True),
        ("www.shop.example", "shop.example", (), True),
        ("shop.example", "www.shop.example", (), True),
        ("blog.shop.example", "shop.example", (), False),
        ("blog.shop.example", "shop.example", ("shop.example",), True),
        ("evilshop.example", "x.example", ("shop.example",), False),
    ],
)
def test_is_internal(host: str, site: str, own: tuple[str, ...], expected: bool) -> None:
    assert is_internal(host, site, own) is expected
