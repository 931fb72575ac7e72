"""A known synthetic population and the exact numbers the collectors must report."""

from __future__ import annotations

from typing import Any

from tests.collectors.factory import T0, event, google_ad

SITE = "shop.example"
IPHONE = {"browser": "Mobile Safari", "browser_version": "17", "os": "iOS", "device": "mobile"}
FACEBOOK = {"url": "https://facebook.com/", "host": "facebook.com", "medium": "social",
            "source": "Facebook"}  # fmt: skip


def population() -> list[dict[str, Any]]:
    """Visitor A converts through the funnel from a paid campaign; B bounces, then comes
    back for /pricing and /cart; C reads the blog from Facebook (one page fails); two bot
    hits; one stylesheet request."""
    a = {"visitor": "vA", "session": "sA", "ua": IPHONE, "country": "US"}
    b = {"visitor": "vB", "session": "sB"}
    b2 = {"visitor": "vB", "session": "sB2"}
    c = {"visitor": "vC", "session": "sC", "referrer": FACEBOOK, "channel": "Organic Social",
         "country": "DE"}  # fmt: skip
    return [
        google_ad(path="/", route="/", ts=T0, duration_ms=40.0, **a),
        event(path="/", route="/", ts=T0 + 1, duration_ms=10.0, **b),
        event(path="/blog/x", route="/blog/{slug}", ts=T0 + 2, duration_ms=100.0, **c),
        event(path="/cart", route="/cart", ts=T0 + 60, duration_ms=20.0, channel="Internal", **a),
        event(path="/checkout", route="/checkout", ts=T0 + 120, duration_ms=30.0, **a),
        event(kind="request", method="POST", path="/checkout", route="/checkout", status=303,
              ts=T0 + 130, content_type=None, duration_ms=80.0, **a),  # fmt: skip
        event(path="/thank-you", route="/thank-you", ts=T0 + 140, duration_ms=20.0, **a),
        event(path="/blog/y", route="/blog/{slug}", ts=T0 + 300, duration_ms=100.0, status=500,
              error=None, **c),  # fmt: skip
        event(path="/pricing", route="/pricing", ts=T0 + 600, duration_ms=25.0, **b2),
        event(path="/cart", route="/cart", ts=T0 + 700, duration_ms=20.0, **b2),
        event(path="/blog/z", route="/blog/{slug}", ts=T0 + 902, duration_ms=100.0, **c),
        event(bot=True, bot_name="Googlebot", visitor=None, session=None, ts=T0 + 5, route="/",
              ua={"browser": "Googlebot", "os": "Other", "device": "bot"}),  # fmt: skip
        event(bot=True, bot_name="Googlebot", visitor=None, session=None, ts=T0 + 6, route="/"),
        event(kind="request", path="/static/app.css", route="/static/app.css",
              content_type="text/css", ts=T0 + 3, duration_ms=2.0, **b),  # fmt: skip
    ]
