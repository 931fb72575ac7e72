"""A generated population with known answers: events around the 2026 spring DST change.

Deterministic (seeded). Sessions have a first pageview whose source/device/country
differ from their later events (first touch must win); there are consent-denied
hits without visitor or session, bots (``bot`` and a low ``bot_score``), request
goals (``POST /checkout`` → 2xx/303 and 5xx), errors, slow requests, pageviews the
visitor abandoned (``client_disconnect``), beacon vitals and engagement events tied to
pageviews by ``page_id``, and a second site.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from collectors.settings import CollectorSettings, parse

SITE = "shop.example"
OTHER = "other.example"
TZ = "Europe/Berlin"
# Berlin: CET until 2026-03-29 02:00 local, then CEST; days 2026-03-26 .. 2026-04-01 local
START = dt.datetime(2026, 3, 25, 22, 0, tzinfo=dt.UTC)  # 2026-03-26 00:00 CET... minus one hour of slack
HOURS = 7 * 24 + 2
PATHS = ["/", "/pricing", "/cart", "/checkout", "/thank-you", "/blog/a", "/blog/b", "/Blog/C"]
SOURCES = [
    ({"url": "https://www.google.com/", "host": "www.google.com", "medium": "search", "source": "Google"},
     {}, "Organic Search"),
    ({"url": "https://www.google.com/", "host": "www.google.com", "medium": "search", "source": "Google"},
     {"source": "google", "medium": "cpc", "campaign": "spring"}, "Paid Search"),
    (None, {}, "Direct"),
    ({"url": "https://news.example/x?y=1", "host": "news.example", "medium": "unknown", "source": None},
     {}, "Referral"),
    ({"url": "https://t.co/", "host": "t.co", "medium": "social", "source": "Twitter"},
     {"source": "twitter", "medium": "social", "campaign": "launch", "term": "x y", "content": "a'b"},
     "Organic Social"),
]  # fmt: skip
DEVICES = [("Firefox", "Linux", "desktop"), ("Chrome", "Android", "mobile"), ("Safari", "iOS", "tablet")]
COUNTRIES = ["DE", "FR", "US", ""]

SETTINGS: dict[str, Any] = {
    "goals": [
        {"name": "buy", "method": "POST", "path": "/checkout", "status": "2xx,303"},
        {"name": "pricing", "path": "/pricing"},
        {"name": "blog", "path": "/blog/*"},
    ],
    "funnels": [{"name": "checkout", "steps": ["/cart", "/checkout", "/thank-you"]}],
    "sites": [{"host": SITE, "timezone": TZ, "apdex_threshold_ms": 100}],
    "bot_score_threshold": 30,
}


def settings() -> CollectorSettings:
    errors: list[str] = []
    s = parse(SETTINGS, errors)
    assert errors == []
    return s


def _event(rng: random.Random, n: int, ts: float, **fields: Any) -> dict[str, Any]:
    e: dict[str, Any] = {
        "v": 1, "id": f"{n:032x}", "ts": ts, "kind": "pageview", "site": SITE, "method": "GET",
        "path": "/", "route": None, "status": 200, "bytes_out": rng.choice([1000, 15000, 40000]),
        "content_type": "text/html", "duration_ms": float(rng.choice([20, 80, 150, 250, 450, 900])),
        "upstream_ms": float(rng.choice([10, 60, 120, 300, 1500, 4000])), "visitor": None, "session": None,
        "referrer": None, "utm": {}, "ua": {}, "bot": False, "channel": "Direct", "country": None,
        "error": None, "consent": "granted", "via": "proxy",
    }  # fmt: skip
    e.update(fields)
    return e


def generate(seed: int = 7, visitors: int = 70) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    n = 1
    t0 = START.timestamp()
    for v in range(visitors):
        for s in range(rng.choice([1, 1, 2, 3])):
            ts = t0 + rng.randrange(HOURS * 3600)
            referrer, utm, channel = rng.choice(SOURCES)
            browser, os_, device = rng.choice(DEVICES)
            country = rng.choice(COUNTRIES)
            site = OTHER if v % 11 == 5 else SITE
            bot = v % 13 == 3
            score = 10 if v % 17 == 4 else (50 if v % 17 == 8 else 0)
            base = {"visitor": f"v{v}", "session": f"v{v}s{s}", "site": site, "bot": bot, "bot_score": score}
            steps = rng.randint(1, 5)
            for i in range(steps):
                kind_roll = rng.random()
                first = i == 0
                fields: dict[str, Any] = dict(base)
                if first or kind_roll < 0.55:
                    path = rng.choice(PATHS) if not first or rng.random() < 0.7 else "/cart"
                    fields.update(kind="pageview", path=path)
                    if rng.random() < 0.1:  # the visitor left before the last byte
                        fields.update(error="client_disconnect")
                elif kind_roll < 0.8:
                    method, path, status = rng.choice([
                        ("GET", "/api/items", 200), ("POST", "/checkout", 200), ("POST", "/checkout", 303),
                        ("POST", "/checkout", 502), ("GET", "/static/app.js", 200), ("GET", "/api/items", 500),
                    ])  # fmt: skip
                    fields.update(kind="request", method=method, path=path, status=status, content_type="text/json")
                    if rng.random() < 0.1:
                        fields.update(error="upstream_timeout", status=504, upstream_ms=None)
                else:
                    fields.update(kind="custom", name="signup", path=rng.choice(PATHS))
                # first touch: the session's first pageview carries its source/device; later events
                # carry different ones, which must not win
                if first:
                    fields.update(referrer=referrer, utm=utm, channel=channel, country=country or None,
                                  ua={"browser": browser, "os": os_, "device": device})  # fmt: skip
                else:
                    fields.update(referrer={"url": "https://shop.example/", "host": "shop.example",
                                            "medium": "internal", "source": None},
                                  channel="Referral", ua={"browser": "Edge", "os": "Windows", "device": "desktop"},
                                  country="JP")  # fmt: skip
                out.append(_event(rng, n, ts, **fields))
                pv_id = f"{n:032x}"
                n += 1
                if fields["kind"] == "pageview" and rng.random() < 0.4:  # the beacon's reports
                    out.append(_event(rng, n, ts + 1.5, kind="vitals", via="beacon", page_id=pv_id, path=fields["path"],
                                      vitals={"lcp": float(rng.choice([900, 1800, 2600])), "inp": 120.0, "cls": 0.25,
                                              "fcp": 700.0, "ttfb": float(rng.choice([90, 150, 400, 1300]))},
                                      upstream_ms=None, **base))  # fmt: skip
                    n += 1
                    out.append(_event(rng, n, ts + 30.5, kind="engagement", via="beacon", page_id=pv_id,
                                      engaged_ms=rng.choice([4000, 12000]), scroll_depth=rng.choice([40, 90]),
                                      path=fields["path"], upstream_ms=None, **base))  # fmt: skip
                    n += 1
                ts += rng.choice([5, 40, 300, 900])
    for _ in range(25):  # consent denied: no visitor, no session
        ts = t0 + rng.randrange(HOURS * 3600)
        referrer, utm, channel = rng.choice(SOURCES)
        out.append(_event(rng, n, ts, path=rng.choice(PATHS), consent="denied", referrer=referrer, utm=utm,
                          channel=channel, ua={"browser": "Firefox", "os": "Linux", "device": "desktop"}))  # fmt: skip
        n += 1
    return out
