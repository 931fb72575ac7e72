"""Query latency, memory and disk of the event store over a generated month of traffic.

Generates N events (default 10 million: one site, 30 days, ~3 M pageviews,
~330 k visitors, ~1 M sessions with first-touch sources, pages, devices and
countries; 5 % bot sessions, 2 % 5xx) inside chDB with ``INSERT … SELECT … FROM
numbers()`` in a child process, then — in this process, with the documented cap
(``max_memory_usage``, ``max_threads``) — runs the dashboard's queries through the
real compiler (collectors/query): overview, timeseries by day, top pages, top
sources, each alone and with a two-filter segment (Organic Search ∧ mobile), and
the overview against the previous period. Reports median and worst of ``--runs``
runs after one warm-up, peak RSS of the querying process, and disk bytes per event.

    .venv/bin/python load_tests/bench_queries.py [--events 10000000] [--runs 5]
        [--max-memory-mb 1024] [--max-threads 2] [--data-dir DIR] [--reuse]

Writes load_tests/results/bench_queries-<time>.json. Numbers from a shared 2-core
machine are noisy: compare medians.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collectors.analytics.engine import ChdbEngine
from collectors.analytics.schema import create_statements
from collectors.query.compile import Context
from collectors.query.goals import Goals
from collectors.query.parse import parse
from collectors.query.run import execute
from collectors.settings import CollectorSettings

SITE = "bench.example"
DB = "bench"
DAYS = 30
CHUNK = 1_000_000
SOURCES = "['Google', '', 'Twitter', 'Facebook', 'Bing', '', 'news.example', 'DuckDuckGo']"
CHANNELS = ("['Organic Search', 'Direct', 'Organic Social', 'Organic Social', 'Organic Search', 'Direct', "
            "'Referral', 'Organic Search']")  # fmt: skip
MEDIUMS = "['search', '', 'social', 'social', 'search', '', 'unknown', 'search']"
DEVICES = ("[('Chrome', 'Windows', 'desktop'), ('Mobile Safari', 'iOS', 'mobile'), "
           "('Chrome Mobile', 'Android', 'mobile')]")
COUNTRIES = "['US', 'DE', 'FR', 'GB', 'IN', 'BR', '', 'JP', 'CA', 'NL']"

# One session = 10 consecutive numbers (k = 0..9), 25 s apart; the visitor repeats over
# ~3 sessions. Pageviews: k = 0 always, k = 3, 6, 8 in two sessions of three (the third
# bounces): ~3 M pageviews per 10 M events; the rest are asset and API requests.
GENERATE = f"""
INSERT INTO {DB}.events (id, ts, site, kind, via, method, path, status, bytes_out, content_type,
    duration_ms, upstream_ms, visitor, session, referrer_url, referrer_host, referrer_medium, referrer_source,
    utm_source, utm_medium, utm_campaign, browser, os, device, bot, channel, country, consent)
SELECT
    toString(number) AS id,
    toDateTime64({{start:UInt32}}, 3, 'UTC') + toIntervalMillisecond((h % ({DAYS} * 86400 - 600)) * 1000
        + k * 25000 + e % 1000) AS ts,
    '{SITE}', if(pv, 'pageview', 'request'), 'proxy', if(e % 40 = 0, 'POST', 'GET'),
    if(pv, concat('/p/', toString(toUInt32(pow((e % 1000) / 1000, 3) * 2000))),
       if(e % 3 = 0, '/api/items', concat('/static/', toString(e % 50), '.js'))),
    if(e % 50 = 0, 503, 200), 1000 + e % 40000, if(pv, 'text/html', 'application/javascript'),
    toFloat32(10 + e % 400 + if(e % 20 = 0, 2000, 0)), toFloat32((10 + e % 400) * 0.7),
    concat('v', toString(h % 330000)), concat('s', toString(s)),
    if(src = '', '', concat('https://', lower(src), '/')), lower(src), {MEDIUMS}[i + 1], src,
    if(i = 0 AND intDiv(h, 16777216) % 2 = 0, 'google', ''), if(i = 0 AND intDiv(h, 16777216) % 2 = 0, 'cpc', ''),
    if(i = 0 AND intDiv(h, 16777216) % 2 = 0, 'spring', ''),
    {DEVICES}[intDiv(h, 256) % 3 + 1].1, {DEVICES}[intDiv(h, 256) % 3 + 1].2, {DEVICES}[intDiv(h, 256) % 3 + 1].3,
    intDiv(h, 4294967296) % 20 = 0, {CHANNELS}[i + 1], {COUNTRIES}[intDiv(h, 65536) % 10 + 1], 'granted'
FROM (
    SELECT number, intDiv(number, 10) AS s, cityHash64(intDiv(number, 10)) AS h, number % 10 AS k,
           cityHash64(number, 7) AS e, h % 8 AS i, {SOURCES}[i + 1] AS src,
           k = 0 OR (h % 3 != 0 AND k IN (3, 6, 8)) AS pv
    FROM numbers({{offset:UInt64}}, {{count:UInt64}})
)
"""

SEGMENT = [["is", "visit:channel", ["Organic Search"]], ["is", "visit:device", ["mobile"]]]
OVERVIEW = ["visitors", "visits", "pageviews", "views_per_visit", "bounce_rate", "visit_duration"]


def queries(first: dt.date, last: dt.date) -> dict[str, dict[str, Any]]:
    rng = [first.isoformat(), last.isoformat()]
    half = [(first + dt.timedelta(days=DAYS // 2)).isoformat(), last.isoformat()]
    base: dict[str, dict[str, Any]] = {
        "overview": {"metrics": OVERVIEW},
        "timeseries_day": {"metrics": ["visitors", "visits", "pageviews"], "dimensions": ["time:day"]},
        "top_pages": {"metrics": ["visitors", "pageviews"], "dimensions": ["event:page"],
                      "pagination": {"limit": 10}},
        "top_sources": {"metrics": ["visitors", "visits", "bounce_rate"], "dimensions": ["visit:source"],
                        "pagination": {"limit": 10}},
    }  # fmt: skip
    out: dict[str, dict[str, Any]] = {}
    for name, body in base.items():
        out[name] = {**body, "date_range": rng}
        out[name + "+segment"] = {**body, "date_range": rng, "filters": SEGMENT}
    out["overview_vs_previous"] = {"metrics": OVERVIEW, "date_range": half,
                                   "include": {"comparisons": {"mode": "previous_period"}}}  # fmt: skip
    out["latency_p75_segment"] = {"metrics": ["requests", "latency_p75", "error_rate", "apdex"], "date_range": rng,
                                  "filters": SEGMENT}  # fmt: skip
    return out


def generate(path: str, events: int, start: int) -> dict[str, float]:
    """Child process: create and fill the store (chDB admits one path per process)."""
    engine = ChdbEngine(path)
    for statement in create_statements(DB):  # events, and the sessions table its view fills
        engine.command(statement)
    t0 = time.perf_counter()
    for offset in range(0, events, CHUNK):
        engine.command(GENERATE, {"start": start, "offset": offset, "count": min(CHUNK, events - offset)})
    insert_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    engine.command(f"OPTIMIZE TABLE {DB}.events FINAL")
    optimize_s = time.perf_counter() - t0
    engine.close()
    return {"insert_s": insert_s, "optimize_s": optimize_s}


def _child(path: str, events: int, start: int, out: Any) -> None:
    out.put(generate(path, events, start))


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--max-memory-mb", type=int, default=1024)
    ap.add_argument("--max-threads", type=int, default=2)
    ap.add_argument("--data-dir", default=str(Path(tempfile.gettempdir()) / "footfall-bench-queries"))
    ap.add_argument("--reuse", action="store_true", help="query the data a previous run generated")
    ap.add_argument("--only", default="", help="comma-separated query names")
    args = ap.parse_args()

    today = dt.datetime.now(dt.UTC).date()
    first = today - dt.timedelta(days=DAYS)
    last = today - dt.timedelta(days=1)
    start = int(dt.datetime.combine(first, dt.time(0), tzinfo=dt.UTC).timestamp())
    gen: dict[str, float] = {}
    if not args.reuse:
        import shutil

        shutil.rmtree(args.data_dir, ignore_errors=True)
        ctx = multiprocessing.get_context("spawn")
        q: Any = ctx.Queue()
        child = ctx.Process(target=_child, args=(args.data_dir, args.events, start, q))
        child.start()
        child.join()
        if child.exitcode != 0:
            sys.exit(f"generating the events failed (exit code {child.exitcode})")
        gen = q.get(timeout=10)
        print(f"generated {args.events:,} events in {gen['insert_s']:.1f} s "
              f"(+ OPTIMIZE FINAL {gen['optimize_s']:.1f} s)")

    # the cap: a query may use max_memory_usage; aggregation and sorting spill to disk past half of it
    cap = args.max_memory_mb * 2**20
    caps = {"max_memory_usage": cap, "max_threads": args.max_threads,
            "max_bytes_before_external_group_by": cap // 2, "max_bytes_before_external_sort": cap // 2}  # fmt: skip
    engine = ChdbEngine(args.data_dir, settings=caps)
    rss_open = rss_mib()
    rows, disk = engine.query(
        # events only; disk of every table (events and sessions) per event
        "SELECT sumIf(rows, table = 'events'), sum(bytes_on_disk) FROM system.parts "
        "WHERE database = {db:String} AND active",
        {"db": DB},
    )[0]
    pageviews, visitors, sessions = engine.query(
        f"SELECT countIf(kind = 'pageview'), uniqExact(visitor), uniqExact(session) FROM {DB}.events"
    )[0]
    settings = CollectorSettings()
    has_sessions = bool(engine.query("SELECT count() FROM system.tables WHERE database = {db:String} "
                                     "AND name = 'sessions'", {"db": DB})[0][0])  # fmt: skip
    context = Context(DB, Goals(()), settings.bot_score_threshold, settings.apdex_threshold_ms, has_sessions)
    results: dict[str, dict[str, float]] = {}
    wanted = {n for n in args.only.split(",") if n}
    print(f"{int(rows):,} rows, {int(pageviews):,} pageviews, {int(visitors):,} visitors, {int(sessions):,} sessions; "
          f"{int(disk) / int(rows):.1f} disk bytes/event; caps {caps}")  # fmt: skip
    print(f"{'query':<28}{'median ms':>10}{'worst ms':>10}{'rows':>6}")
    # the machine's speed right now: one filtered scan of the month (count only), same runs
    scan = f"SELECT count() FROM {DB}.events WHERE site = {{site:String}} AND NOT bot"
    scans = []
    for _ in range(args.runs + 1):
        t0 = time.perf_counter()
        engine.query(scan, {"site": SITE})
        scans.append((time.perf_counter() - t0) * 1000)
    results["baseline_scan_count"] = {"median_ms": statistics.median(scans[1:]), "worst_ms": max(scans[1:])}
    print(f"{'(baseline: count() scan)':<28}{statistics.median(scans[1:]):>10.0f}{max(scans[1:]):>10.0f}{1:>6}")
    for name, body in queries(first, last).items():
        if wanted and name not in wanted:
            continue
        query = parse({"site_id": SITE, **body}, settings)
        times = []
        answer: dict[str, Any] = {}
        try:
            execute(engine, query, context)  # warm-up
            for _ in range(args.runs):
                t0 = time.perf_counter()
                answer = execute(engine, query, context)
                times.append((time.perf_counter() - t0) * 1000)
        except Exception as exc:  # a query over the memory cap: report it, measure the others
            results[name] = {"error": str(exc).splitlines()[0][:300]}
            print(f"{name:<28}{'failed: ' + str(exc).splitlines()[0][:80]}")
            continue
        results[name] = {"median_ms": statistics.median(times), "worst_ms": max(times), "runs": len(times)}
        print(f"{name:<28}{statistics.median(times):>10.0f}{max(times):>10.0f}{len(answer['results']):>6}")
    engine.close()
    report = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "events": int(rows), "pageviews": int(pageviews), "visitors": int(visitors), "sessions": int(sessions),
        "disk_bytes": int(disk), "disk_bytes_per_event": int(disk) / int(rows), "caps": caps,
        "generate": gen, "rss_after_open_mib": rss_open, "peak_rss_mib": rss_mib(), "queries": results,
        "note": "2 shared CPU cores, other engineers' jobs running: medians of --runs runs after one warm-up",
    }  # fmt: skip
    print(f"peak RSS of the querying process: {rss_mib():.0f} MiB (after opening: {rss_open:.0f} MiB)")
    out = Path(__file__).parent / "results" / f"bench_queries-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"saved {out}")


if __name__ == "__main__":
    main()
