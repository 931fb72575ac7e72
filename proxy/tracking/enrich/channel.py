"""Marketing channel: GA4's default channel grouping, reduced to Footfall's ten channels.

Pure. Inputs are already classified: the referrer's medium, the category of the
utm_source (looked up in ``config/referrers.json`` by name, alias or host), the
utm medium and the click id's kind. Rules run top to bottom; the first match wins.
The table in README.md "Enrichment" mirrors :func:`channel`.
"""

from __future__ import annotations

import re
from enum import StrEnum

from proxy.tracking.enrich.campaign import PAID_MEDIUM


class Channel(StrEnum):
    DIRECT = "Direct"
    ORGANIC_SEARCH = "Organic Search"
    PAID_SEARCH = "Paid Search"
    ORGANIC_SOCIAL = "Organic Social"
    PAID_SOCIAL = "Paid Social"
    EMAIL = "Email"
    REFERRAL = "Referral"
    AI_ASSISTANT = "AI Assistant"
    DISPLAY = "Display"
    AFFILIATES = "Affiliates"


_EMAIL = re.compile(r"^(e[-_ ]?mail|newsletters?)$")
_DISPLAY = frozenset({"display", "banner", "expandable", "interstitial", "cpm"})
_AFFILIATE = frozenset({"affiliate", "affiliates"})
_SOCIAL = frozenset({"social", "social-network", "social-media", "sm", "social network",
                     "social media"})  # fmt: skip
_REFERRAL = frozenset({"referral", "app", "link"})

# Referrer medium alone (no campaign parameters): internal navigation is not a new source.
_BY_REFERRER = {
    "direct": Channel.DIRECT,
    "internal": Channel.DIRECT,
    "search": Channel.ORGANIC_SEARCH,
    "social": Channel.ORGANIC_SOCIAL,
    "email": Channel.EMAIL,
    "chatbot": Channel.AI_ASSISTANT,
    "unknown": Channel.REFERRAL,
    "paid": Channel.DISPLAY,  # an ad network's click-through host (doubleclick, taboola): GA4's "Paid Other"
}


def channel(
    referrer_medium: str,
    utm_source: str | None,
    utm_medium: str | None,
    source_category: str | None,
    click_kind: str | None,
    tagged: bool,
) -> Channel:
    """The event's channel.

    ``referrer_medium``: the referrer's own medium (search, social, ..., before any
    ``paid`` override). ``source_category``: medium of the source named by
    utm_source, or of the referrer's source when there is no utm_source.
    ``click_kind``: search/social/display of a paid click id, else ``None``.
    ``tagged``: the URL carries any utm parameter or click id.
    """
    if not tagged:
        return _BY_REFERRER.get(referrer_medium, Channel.REFERRAL)
    medium = utm_medium or ""
    source = utm_source or ""
    if _EMAIL.match(medium) or _EMAIL.match(source):
        return Channel.EMAIL
    if medium in _AFFILIATE:
        return Channel.AFFILIATES
    if medium in _DISPLAY or (not medium and click_kind == "display"):
        return Channel.DISPLAY
    if PAID_MEDIUM.match(medium) or (not medium and click_kind is not None):
        # A named search/social source wins; else the click id's network decides.
        kind = source_category if source_category in ("search", "social") else click_kind
        if kind == "search":
            return Channel.PAID_SEARCH
        if kind == "social":
            return Channel.PAID_SOCIAL
        return Channel.DISPLAY  # GA4's "Paid Other": paid, but neither search nor social
    if source_category == "email":  # after paid: an ad click from a webmail host is paid
        return Channel.EMAIL
    if source_category == "chatbot" or referrer_medium == "chatbot":
        return Channel.AI_ASSISTANT
    if medium == "organic" or source_category == "search":
        return Channel.ORGANIC_SEARCH
    if medium in _SOCIAL or source_category == "social":
        return Channel.ORGANIC_SOCIAL
    if medium in _REFERRAL:
        return Channel.REFERRAL
    if medium in ("none", "(none)") and source in ("direct", "(direct)"):
        return Channel.DIRECT
    fallback = _BY_REFERRER.get(referrer_medium, Channel.REFERRAL)
    # Tagged but unplaceable: someone linked to us on purpose, so not Direct.
    return Channel.REFERRAL if fallback is Channel.DIRECT and source else fallback
