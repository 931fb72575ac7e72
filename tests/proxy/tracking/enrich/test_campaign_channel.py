from __future__ import annotations

from typing import Any

import pytest

from proxy.settings import PrivacySettings
from proxy.tracking.enrich import Enricher, data
from proxy.tracking.enrich.campaign import extract_utm, is_paid, load_click_ids
from proxy.tracking.enrich.channel import Channel, channel

CLICK_IDS = load_click_ids(data.load("campaigns.json"))


@pytest.mark.parametrize(
    ("query", "utm"),
    [
        ([], {}),
        # parse_qsl already turned "+" into spaces; values are stripped and lower-cased.
        ([("utm_source", "News Letter"), ("UTM_Medium", " Email "), ("utm_campaign", "Spring SALE")],
         {"source": "news letter", "medium": "email", "campaign": "spring sale"}),
        ([("utm_term", "Red Shoes"), ("utm_content", "Banner_A"), ("utm_other", "x")],
         {"term": "red shoes", "content": "banner_a"}),
        ([("utm_source", ""), ("utm_source", "google")], {"source": "google"}),  # first non-empty
        ([("gclid", "Cj0KCQ"), ("fbclid", "IwAR")],  # first click id wins, value kept as is
         {"click_id": "Cj0KCQ", "click_id_network": "Google Ads"}),
        ([("GBRAID", "0AAA")], {"click_id": "0AAA", "click_id_network": "Google Ads"}),
        ([("wbraid", "w1")], {"click_id": "w1", "click_id_network": "Google Ads"}),
        ([("dclid", "d1")], {"click_id": "d1", "click_id_network": "Google Display"}),
        ([("msclkid", "m1")], {"click_id": "m1", "click_id_network": "Microsoft Ads"}),
        ([("ttclid", "t1")], {"click_id": "t1", "click_id_network": "TikTok Ads"}),
        ([("twclid", "t2")], {"click_id": "t2", "click_id_network": "X Ads"}),
        ([("li_fat_id", "l1")], {"click_id": "l1", "click_id_network": "LinkedIn Ads"}),
        ([("yclid", "y1")], {"click_id": "y1", "click_id_network": "Yandex Direct"}),
        ([("fbclid", "")], {}),
    ],
)
def test_extract_utm(query: list[tuple[str, str]], utm: dict[str, str]) -> None:
    assert extract_utm(query, CLICK_IDS)[0] == utm


@pytest.mark.parametrize(
    ("query", "paid"),
    [
        ([("gclid", "x")], True),  # click id, no utm_medium: paid
        ([("gclid", "x"), ("utm_medium", "email")], False),  # an explicit medium wins
        ([("utm_medium", "cpc")], True),
        ([("utm_medium", "PPC")], True),
        ([("utm_medium", "paid_social")], True),
        ([("utm_medium", "retargeting")], True),
        ([("utm_medium", "organic")], False),
        ([("utm_source", "google")], False),
    ],
)
def test_is_paid(query: list[tuple[str, str]], paid: bool) -> None:
    utm, click = extract_utm(query, CLICK_IDS)
    assert is_paid(utm, click) is paid


def test_privacy_scrub_keeps_campaign_parameters() -> None:
    """scrub_params drop by case-insensitive substring; none may hit a campaign key."""
    keys = [f"utm_{k}" for k in ("source", "medium", "campaign", "term", "content")]
    keys += list(CLICK_IDS)
    hits = [(k, p) for k in keys for p in PrivacySettings().scrub_params if p in k.lower()]
    assert hits == []


def _enrich(e: Enricher, referer: str | None, query: list[tuple[str, str]]) -> dict[str, Any]:
    return e.enrich(site="shop.example", path="/", query=query, user_agent="curl/8",
                    referer=referer, client_ip=None, country_header=None)  # fmt: skip


GOOGLE = "https://www.google.com/"
FACEBOOK = "https://l.facebook.com/l.php?u=x"


@pytest.mark.parametrize(
    ("referer", "query", "expected", "medium"),
    [
        (None, [], "Direct", "direct"),
        ("https://shop.example/a", [], "Direct", "internal"),
        (GOOGLE, [], "Organic Search", "search"),
        (FACEBOOK, [], "Organic Social", "social"),
        ("https://t.co/x", [], "Organic Social", "social"),
        ("android-app://com.google.android.gm/", [], "Email", "email"),
        ("https://chatgpt.com/", [], "AI Assistant", "chatbot"),
        ("https://blog.other.org/p", [], "Referral", "unknown"),
        (GOOGLE, [("gclid", "x")], "Paid Search", "paid"),
        (None, [("gclid", "x")], "Paid Search", "direct"),  # no Referer: still a paid click
        (None, [("msclkid", "x")], "Paid Search", "direct"),
        (FACEBOOK, [("fbclid", "x")], "Paid Social", "paid"),
        (None, [("ttclid", "x")], "Paid Social", "direct"),
        (None, [("dclid", "x")], "Display", "direct"),
        ("android-app://com.google.android.gm/", [("gclid", "x")], "Paid Search", "paid"),
        (None, [("utm_source", "Google"), ("utm_medium", "CPC")], "Paid Search", "direct"),
        (None, [("utm_source", "facebook"), ("utm_medium", "paid")], "Paid Social", "direct"),
        (None, [("utm_source", "fb"), ("utm_medium", "cpc")], "Paid Social", "direct"),
        (None, [("utm_source", "adnet"), ("utm_medium", "cpc")], "Display", "direct"),
        (None, [("utm_source", "adnet"), ("utm_medium", "banner")], "Display", "direct"),
        (None, [("utm_source", "newsletter"), ("utm_medium", "E-Mail")], "Email", "direct"),
        (None, [("utm_source", "Newsletter")], "Email", "direct"),
        (GOOGLE, [("utm_medium", "email"), ("gclid", "x")], "Email", "search"),
        (None, [("utm_source", "partner"), ("utm_medium", "affiliate")], "Affiliates", "direct"),
        (None, [("utm_source", "chatgpt.com")], "AI Assistant", "direct"),  # ChatGPT's own tag
        (None, [("utm_source", "perplexity")], "AI Assistant", "direct"),
        (None, [("utm_source", "google"), ("utm_medium", "organic")], "Organic Search", "direct"),
        (None, [("utm_source", "bing")], "Organic Search", "direct"),
        (None, [("utm_source", "linkedin"), ("utm_medium", "social")], "Organic Social", "direct"),
        (None, [("utm_source", "anything"), ("utm_medium", "social-media")], "Organic Social",
         "direct"),
        (None, [("utm_source", "partner"), ("utm_medium", "referral")], "Referral", "direct"),
        (None, [("utm_source", "direct"), ("utm_medium", "none")], "Direct", "direct"),
        (None, [("utm_source", "qr-poster")], "Referral", "direct"),  # tagged, unplaceable
        (None, [("utm_campaign", "spring")], "Direct", "direct"),  # no source: nothing to credit
        (GOOGLE, [("utm_campaign", "spring")], "Organic Search", "search"),
    ],
)
def test_channel_end_to_end(enricher: Enricher, referer: str | None,
                            query: list[tuple[str, str]], expected: str,
                            medium: str) -> None:  # fmt: skip
    out = _enrich(enricher, referer, query)
    assert out["channel"] == expected
    assert out["referrer"]["medium"] == medium


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"referrer_medium": "paid", "tagged": False}, Channel.DISPLAY),  # an ad network host
        ({"referrer_medium": "nonsense", "tagged": False}, Channel.REFERRAL),
        ({"referrer_medium": "social", "tagged": True, "utm_medium": "cpc",
          "source_category": "chatbot"}, Channel.DISPLAY),
        ({"referrer_medium": "direct", "tagged": True, "click_kind": "social",
          "source_category": "search"}, Channel.PAID_SEARCH),  # the named source wins
    ],
)
def test_channel_edges(kwargs: dict[str, Any], expected: Channel) -> None:
    args: dict[str, Any] = {"utm_source": None, "utm_medium": None, "source_category": None,
                            "click_kind": None} | kwargs  # fmt: skip
    assert channel(**args) is expected


def test_channel_values_are_the_contract() -> None:
    assert {c.value for c in Channel} == {
        "Direct", "Organic Search", "Paid Search", "Organic Social", "Paid Social", "Email",
        "Referral", "AI Assistant", "Display", "Affiliates",
    }  # fmt: skip


def test_result_has_exactly_the_contract_keys(enricher: Enricher) -> None:
    assert set(_enrich(enricher, GOOGLE, [("gclid", "x")])) == {
        "ua", "bot", "bot_name", "referrer", "utm", "channel", "country",
    }  # fmt: skip
