# ruff: noqa: E501  (user-agent strings are data and stay whole)
"""Benchmark of the enrichment step alone (proxy.tracking.enrich.Enricher.enrich), and
of the behavioural bot score (BehaviourScorer.observe) that EventBuilder adds to it.

Measures median µs per call on a realistic mix of user agents, referrers and
campaign queries: warm (every distinct string already cached, the steady state)
and cold (a never-seen UA and Referer on every call: full ua-parser parse,
bot-list match and referrer classification). The bot score is measured on the same
mix as Exchange snapshots: 2,000 clients browsing (warm: their actors exist) and a
new client on every call (cold). Prints a table and writes
load_tests/results/enrich.json. Run: .venv/bin/python load_tests/bench_enrich.py
"""

from __future__ import annotations

import json
import platform
import random
import statistics
import time
from pathlib import Path
from typing import Any

import crawleruseragents
from multidict import CIMultiDict, CIMultiDictProxy

from proxy.settings import EnrichmentSettings
from proxy.tracking.enrich import Enricher
from proxy.tracking.enrich.behaviour import BehaviourScorer
from proxy.tracking.event import Exchange

RESULTS = Path(__file__).resolve().parent / "results" / "enrich.json"
# PERF-NOTES: a minimal aiohttp proxy forwards ~4,300 requests/s on one core.
PROXY_US_PER_REQUEST = 1e6 / 4300

BROWSERS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36 Edg/{v}.0.2478.80",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.{m} Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_{m} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.{m} Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.{m}; rv:{v}.0) Gecko/20100101 Firefox/{v}.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_{m} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/21E236 [FBAN/FBIOS;FBAV/{v}.0]",
    "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/24.{m} Chrome/{v}.0.0.0 Mobile Safari/537.36",
]  # fmt: skip
REFERERS = [None] * 8 + [
    "https://www.google.com/", "https://www.google.co.uk/url?q=https://shop.example/&sa=t",
    "https://l.facebook.com/l.php?u=x", "https://t.co/abc", "https://chatgpt.com/",
    "android-app://com.google.android.gm/", "https://www.bing.com/search?q=red+shoes",
    "https://blog.other.org/post/1",
] + [f"https://shop.example/products/{i}" for i in range(10)]  # fmt: skip
QUERIES: list[list[tuple[str, str]]] = [[]] * 12 + [
    [("utm_source", "Newsletter"), ("utm_medium", "email"), ("utm_campaign", "Spring Sale")],
    [("gclid", "Cj0KCQjw")], [("fbclid", "IwAR0")], [("id", "42"), ("page", "2")],
]  # fmt: skip


def realistic_mix(n: int, rng: random.Random) -> list[dict[str, Any]]:
    """~300 distinct UAs (browsers x versions, plus 8 % bots), Zipf-like popularity."""
    uas = [t.format(v=v, m=m) for t in BROWSERS for v in range(118, 126) for m in range(4)]
    bots = [i for e in crawleruseragents.CRAWLER_USER_AGENTS_DATA[:60] for i in e["instances"][:1]]
    weights = [1 / (rank + 1) for rank in range(len(uas))]
    calls = []
    for _ in range(n):
        ua = rng.choice(bots) if rng.random() < 0.08 else rng.choices(uas, weights)[0]
        calls.append({
            "site": "shop.example", "path": rng.choice(["/", "/products/1", "/cart", "/robots.txt"]),
            "query": rng.choice(QUERIES), "user_agent": ua, "referer": rng.choice(REFERERS),
            "client_ip": "203.0.113.7", "country_header": rng.choice([None, "DE"]),
        })  # fmt: skip
    return calls


def time_calls(enricher: Enricher, calls: list[dict[str, Any]]) -> list[float]:
    """µs per call, each call timed alone (perf_counter_ns overhead ~0.05 µs included)."""
    out = []
    enrich = enricher.enrich
    clock = time.perf_counter_ns
    for kwargs in calls:
        t0 = clock()
        enrich(**kwargs)
        out.append((clock() - t0) / 1000)
    return out


def exchanges(calls: list[dict[str, Any]], rng: random.Random, clients: int) -> list[Exchange]:
    """The mix as Exchange snapshots: browser-like headers, ``clients`` addresses, cookies
    coming back after each client's first request."""
    out, seen = [], set()
    for i, c in enumerate(calls):
        client = rng.randrange(clients) if clients else i
        ua = c["user_agent"]
        headers = CIMultiDict([("Host", "shop.example"), ("User-Agent", ua), ("Accept", "text/html"),
                               ("Sec-Fetch-Site", "none"), ("Sec-Fetch-Mode", "navigate"), ("Sec-Fetch-Dest", "document"),
                               ("Accept-Encoding", "gzip, deflate, br"), ("Accept-Language", "en-US,en;q=0.9")])  # fmt: skip
        returning = client in seen
        seen.add(client)
        page = c["path"] != "/robots.txt" and rng.random() < 0.3
        out.append(Exchange(
            ts=1_700_000_000 + i * 0.01, method="GET", raw_path=c["path"], site="shop.example", scheme="https",
            headers=CIMultiDictProxy(headers), client_ip=f"198.51.{client // 250}.{client % 250}", peer_trusted=False,
            pageview=page, status=200, bytes_out=1000, content_type="text/html" if page else "text/css",
            duration_ms=1.0, upstream_ms=1.0, visitor=f"v{client}", session=f"s{client}", new_visitor=not returning,
            new_session=not returning, consent="granted", trace_id="0" * 32, error=None,
        ))  # fmt: skip
    return out


def time_scorer(scorer: BehaviourScorer, exs: list[Exchange], ua: dict[str, Any]) -> list[float]:
    out = []
    observe = scorer.observe
    clock = time.perf_counter_ns
    for ex in exs:
        t0 = clock()
        observe(ex, ex.raw_path, ua)
        out.append((clock() - t0) / 1000)
    return out


def summary(samples: list[float]) -> dict[str, float]:
    q = statistics.quantiles(samples, n=100)
    return {"median_us": statistics.median(samples), "p90_us": q[89], "p99_us": q[98],
            "calls": len(samples)}  # fmt: skip


def main() -> None:
    rng = random.Random(7)
    t0 = time.perf_counter()
    enricher = Enricher(EnrichmentSettings())
    init_s = time.perf_counter() - t0
    mix = realistic_mix(50_000, rng)
    time_calls(enricher, mix)  # fill the caches
    warm = summary(time_calls(enricher, mix))
    cold_calls = [
        dict(c, user_agent=f"{c['user_agent']} build/{i}",
             referer=None if c["referer"] is None else f"{c['referer']}#{i}")
        for i, c in enumerate(mix[:2000])
    ]  # fmt: skip
    cold = summary(time_calls(enricher, cold_calls))
    enricher.close()
    chrome = {"browser": "Chrome", "browser_version": "124.0", "os": "Windows", "device": "desktop"}
    scorer = BehaviourScorer(cookie_mode=True, honeypot_paths=(), max_actors=20_000)
    browsing = exchanges(mix[:20_000], rng, clients=2000)
    time_scorer(scorer, browsing, chrome)  # actors exist
    score_warm = summary(time_scorer(scorer, browsing, chrome))
    score_cold = summary(time_scorer(scorer, exchanges(mix[20_000:25_000], rng, clients=0), chrome))
    rows = {"warm cache (realistic mix)": warm, "cold (every UA and Referer new)": cold,
            "bot_score, known clients": score_warm, "bot_score, a new client each": score_cold}  # fmt: skip
    print(f"Enricher init: {init_s * 1000:.0f} ms; reference: proxy hop "
          f"~{PROXY_US_PER_REQUEST:.0f} µs CPU per request (PERF-NOTES)")  # fmt: skip
    print(f"{'case':36} {'median µs':>10} {'p90 µs':>8} {'p99 µs':>8} {'% of hop':>9}")
    for name, row in rows.items():
        share = 100 * row["median_us"] / PROXY_US_PER_REQUEST
        print(f"{name:36} {row['median_us']:10.2f} {row['p90_us']:8.2f} {row['p99_us']:8.2f}"
              f" {share:8.1f}%")  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "benchmark": "enrich", "python": platform.python_version(), "init_ms": init_s * 1000,
        "proxy_hop_us_reference": PROXY_US_PER_REQUEST, "warm": warm, "cold": cold,
        "bot_score_warm": score_warm, "bot_score_cold": score_cold,
    }, indent=2) + "\n")  # fmt: skip
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
