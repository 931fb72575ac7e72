# ruff: noqa: E501  (user-agent strings are data and stay whole)
"""Benchmark of the enrichment step alone (proxy.tracking.enrich.Enricher.enrich).

Measures median µs per call on a realistic mix of user agents, referrers and
campaign queries: warm (every distinct string already cached, the steady state)
and cold (a never-seen UA and Referer on every call: full ua-parser parse,
crawler-list match and referrer classification). Prints a table and writes
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

from proxy.settings import EnrichmentSettings
from proxy.tracking.enrich import Enricher

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
    rows = {"warm cache (realistic mix)": warm, "cold (every UA and Referer new)": cold}
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
    }, indent=2) + "\n")  # fmt: skip
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
