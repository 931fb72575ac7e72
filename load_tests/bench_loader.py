"""Events per second the analytics loader stores, while dashboard queries run on the store.

Per round, interleaved:

- **store**: a private redis-server (the embedded binary) on a free port gets N
  realistic events (uuid7-like ids; trace ids: the event's own id, as the
  proxy mints for a request without traceparent, except 1 in ``--traced`` (10)
  with a caller's random trace id; 5,000 visitors, 40 pages, campaigns, bots),
  then a child process (``--child``) opens the embedded store
  (defaults: ``max_threads`` 2, ``max_memory_usage`` 1 GiB) and runs the real
  CollectorService loader until the stream is drained, while one of its threads
  runs dashboard-like aggregate SELECTs on the same store (a refresh of four
  queries every ``--refresh`` seconds, default 1; 0 = back to back). Reported:
  events/s (wall, from the loader's start to the last XACK), the queries' latency,
  how long the loader's event loop was held past a 1 ms sleep (p99 / max: what a
  proxy sharing the loop, as in ``footfall run``, would wait),
  the child's peak RSS, and disk bytes per event (active parts, before and after
  ``OPTIMIZE … FINAL``).
- **redis** (with ``--old-checkout DIR``, a checkout of the Redis-aggregate
  collector, e.g. ``git worktree add /tmp/old <commit before the store>``): that
  checkout's ``load_tests/bench_collectors.py N_OLD 500 analytics``, in the same
  round, for the ratio.

    .venv/bin/python load_tests/bench_loader.py [--events 200000] [--rounds 2]
        [--old-checkout /tmp/footfall-old] [--old-events 50000] [--traced 10] [--batch-size 5000]

Prints a table and writes ``load_tests/results/loader-<time>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from proxy.stream.embedded import EmbeddedRedis, free_port  # noqa: E402

STREAM = "footfall:events"
SITE = "shop.example"
CHANNELS = [("Direct", None), ("Organic Search", ("www.google.com", "search", "Google")),
            ("Paid Search", ("www.google.com", "paid", "Google")), ("Organic Social", ("t.co", "social", "Twitter")),
            ("Email", None), ("Referral", ("news.example", "unknown", "news.example"))]  # fmt: skip
AGENTS = [("Chrome", "Windows", "desktop"), ("Mobile Safari", "iOS", "mobile"),
          ("Firefox", "Linux", "desktop"), ("Chrome Mobile", "Android", "mobile"), ("Safari", "Mac OS X", "desktop")]
QUERIES = {
    "overview": "SELECT uniq(visitor), countIf(kind = 'pageview'), uniq(session) FROM {t} "
    "WHERE site = {{site:String}} AND ts >= now() - INTERVAL 1 DAY AND NOT bot",
    "timeseries": "SELECT toStartOfHour(ts) h, countIf(kind = 'pageview'), uniq(visitor) FROM {t} "
    "WHERE site = {{site:String}} AND ts >= now() - INTERVAL 1 DAY AND NOT bot GROUP BY h ORDER BY h",
    "top_pages": "SELECT if(route != '', route, path) p, count() c FROM {t} WHERE site = {{site:String}} "
    "AND ts >= now() - INTERVAL 1 DAY AND kind = 'pageview' AND NOT bot GROUP BY p ORDER BY c DESC LIMIT 10",
    "top_sources": "SELECT referrer_source, uniq(visitor) v FROM {t} WHERE site = {{site:String}} "
    "AND ts >= now() - INTERVAL 1 DAY AND device = 'mobile' AND channel = 'Paid Search' "
    "GROUP BY referrer_source ORDER BY v DESC LIMIT 10",
}


def make_events(n: int, seed: int = 7, traced: int = 10) -> list[bytes]:
    """Realistic events: what drives disk per event is the entropy of ids, trace ids, visitors."""
    rnd = random.Random(seed)
    start = time.time() - 3600
    visitors = [rnd.getrandbits(128).to_bytes(16, "big").hex() for _ in range(5000)]
    out: list[dict[str, Any]] = []
    for i in range(n):
        ts = start + i * 3000 / n
        v = rnd.randrange(len(visitors))
        channel, ref = CHANNELS[v % len(CHANNELS)]
        agent = AGENTS[v % len(AGENTS)]
        pageview = i % 4 != 3
        page = f"/products/{rnd.randrange(500)}" if i % 3 else f"/p{rnd.randrange(40)}"
        out.append({
            "v": 1, "id": f"{int(ts * 1000):012x}7{rnd.getrandbits(76):019x}", "ts": round(ts, 3),
            "kind": "pageview" if pageview else "request", "site": SITE,
            "method": "GET" if i % 50 else "POST", "path": page,
            "route": "/products/{id}" if page.startswith("/products/") else None,
            "query": {"page": "2"} if i % 11 == 0 else {},
            "status": 200 if i % 97 else 503, "bytes_out": 12000 + rnd.randrange(4000),
            "content_type": "text/html" if pageview else "image/png",
            "duration_ms": round(rnd.expovariate(1 / 80), 3), "upstream_ms": round(rnd.expovariate(1 / 60), 3),
            "visitor": visitors[v], "session": f"{visitors[v][:16]}{int(ts) // 1800:x}",
            "new_visitor": False, "new_session": i % 7 == 0,
            "referrer": {"url": f"https://{ref[0]}/", "host": ref[0], "medium": ref[1], "source": ref[2]}
            if ref else {"medium": "direct"},
            "utm": {"source": "google", "medium": "cpc", "campaign": f"spring-{v % 6}"} if channel == "Paid Search"
            else {},
            "ua": {"browser": agent[0], "browser_version": "120", "os": agent[1], "device": agent[2]},
            "bot": i % 40 == 0, "bot_name": "Googlebot" if i % 40 == 0 else None, "channel": channel,
            "ip": f"203.0.{v % 250}.0", "country": ["FR", "US", "DE", "GB", "ES"][v % 5],
            "trace_id": None, "error": None if i % 97 else "http_5xx",
            "consent": "granted", "page_id": None, "via": "proxy",
        })  # fmt: skip
        # Browsers send no traceparent: the proxy starts the trace, named by the event id.
        # 1 in `traced` requests continues a caller's trace (a random id).
        out[-1]["trace_id"] = rnd.getrandbits(128).to_bytes(16, "big").hex() if traced and i % traced == 0 \
            else out[-1]["id"]  # fmt: skip
    return [orjson.dumps(e) for e in out]


# --- the child: the store process ---------------------------------------------------


async def _ticker(stalls: list[float], stop: asyncio.Event) -> None:
    """How long the event loop was held past a 1 ms sleep, each time (seconds): what a
    proxy sharing this loop (``footfall run``) would wait on top of its own work."""
    while not stop.is_set():
        t0 = time.perf_counter()
        await asyncio.sleep(0.001)
        stalls.append(max(0.0, time.perf_counter() - t0 - 0.001))


def _query_loop(store: Any, stop: threading.Event, latencies: dict[str, list[float]], every: float) -> None:
    """A dashboard refresh (the four queries) every ``every`` seconds; 0: back to back."""
    while not stop.is_set():
        started = time.perf_counter()
        for name, sql in QUERIES.items():
            t0 = time.perf_counter()
            store.engine.query(sql.format(t=store.events), {"site": SITE})
            latencies[name].append(time.perf_counter() - t0)
        stop.wait(max(0.0, every - (time.perf_counter() - started)))


async def child(redis_url: str, data_dir: str, n: int, every: float, batch_size: int) -> dict[str, Any]:
    from collectors.analytics.config import StoreSettings
    from collectors.analytics.store import open_store_async
    from collectors.service import CollectorService
    from collectors.settings import CollectorSettings

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    store = await open_store_async(StoreSettings(batch_size=batch_size), data_dir)
    service = CollectorService(redis_url, STREAM, CollectorSettings(), frozenset({"analytics"}), "bench", store=store)
    redis = aioredis.Redis.from_url(redis_url)
    last = (await redis.xrevrange(STREAM, count=1))[0][0]
    latencies: dict[str, list[float]] = {name: [] for name in QUERIES}
    stop = threading.Event()
    querier = threading.Thread(target=_query_loop, args=(store, stop, latencies, every), daemon=True)
    cpu0, t0 = time.process_time(), time.perf_counter()
    querier.start()
    stalls: list[float] = []
    ticking = asyncio.Event()
    ticker = asyncio.create_task(_ticker(stalls, ticking))
    await service.start()
    while True:
        # The service creates its group in the consumer task (start() does not wait on
        # Redis): no group yet is not "drained".
        infos = await redis.xinfo_groups(STREAM)
        if infos and all(i["pending"] == 0 and i["last-delivered-id"] == last for i in infos):
            break
        await asyncio.sleep(0.01)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    ticking.set()
    await ticker
    stop.set()
    querier.join()
    await service.stop()
    await redis.aclose()
    rss_load = _peak_rss()  # before the OPTIMIZE below
    stored = store.engine.query(f"SELECT count() FROM {store.events}")[0][0]
    disk = _disk(store)
    store.engine.command(f"OPTIMIZE TABLE {store.events} FINAL")
    merged = _disk(store)
    rss = _peak_rss()
    columns = _columns(store)
    await store.aclose()
    return {
        "events": n, "stored": int(stored), "wall_s": wall, "events_per_s": n / wall, "events_per_cpu_s": n / cpu,
        "peak_rss_bytes": rss, "peak_rss_load_bytes": rss_load, "disk_bytes": disk, "disk_bytes_merged": merged,
        "queries": {k: {"n": len(v), "p50_ms": _ms(v, 0.5), "max_ms": _ms(v, 1.0)} for k, v in latencies.items()},
        "loop_stall_ms": {"p99": _ms(stalls, 0.99), "max": _ms(stalls, 1.0),
                          "over_10ms": sum(x > 0.01 for x in stalls)},
        "columns": columns,
    }  # fmt: skip


def _peak_rss() -> int:
    """This process's peak RSS in bytes: VmHWM, not ru_maxrss, which Linux carries over
    exec from the forked parent (the bench's parent with all events in hand)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _ms(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _disk(store: Any) -> int:
    db, table = store.events.split(".")
    rows = store.engine.query("SELECT sum(bytes_on_disk) FROM system.parts WHERE active AND database = {d:String} "
                              "AND table = {t:String}", {"d": db, "t": table})  # fmt: skip
    return int(rows[0][0])


def _columns(store: Any) -> dict[str, int]:
    db, table = store.events.split(".")
    rows = store.engine.query("SELECT name, data_compressed_bytes FROM system.columns WHERE database = {d:String} "
                              "AND table = {t:String} ORDER BY data_compressed_bytes DESC LIMIT 8",
                              {"d": db, "t": table})  # fmt: skip
    return {name: int(size) for name, size in rows}


# --- the parent ------------------------------------------------------------------------


async def _fill(url: str, events: list[bytes]) -> None:
    redis = aioredis.Redis.from_url(url)
    for i in range(0, len(events), 5000):
        async with redis.pipeline(transaction=False) as pipe:
            for e in events[i : i + 5000]:
                pipe.xadd(STREAM, {"event": e})
            await pipe.execute()
    await redis.aclose()


def run_store(events: list[bytes], every: float, batch_size: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis", port=free_port()).start()
        try:
            asyncio.run(_fill(server.url, events))
            out = subprocess.run(
                [sys.executable, __file__, "--child", server.url, str(Path(tmp) / "data"), str(len(events)),
                 str(every), str(batch_size)],
                capture_output=True, timeout=900,
            )  # fmt: skip
        finally:
            server.kill()
    if out.returncode != 0:
        raise RuntimeError(f"store run failed: {out.stderr.decode()[-3000:]}")
    result = dict(json.loads(out.stdout.decode().strip().splitlines()[-1]))
    if result["stored"] != len(events):
        raise RuntimeError(f"store run stored {result['stored']} of {len(events)} events")
    return result


def run_redis(checkout: Path, n: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "load_tests/bench_collectors.py", str(n), "500", "analytics"],
        cwd=checkout, capture_output=True, timeout=900, check=True, text=True,
    )  # fmt: skip
    match = re.search(r"([\d,]+) events/s wall, +([\d,]+) events per collector CPU-second", out.stdout)
    if match is None:
        raise RuntimeError(f"unexpected output: {out.stdout}")
    return {"events": n, "events_per_s": float(match[1].replace(",", "")),
            "events_per_cpu_s": float(match[2].replace(",", ""))}  # fmt: skip


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        result = asyncio.run(child(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])))
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--old-checkout", type=Path, help="a checkout of the Redis-aggregate collector")
    parser.add_argument("--old-events", type=int, default=50_000)
    parser.add_argument("--traced", type=int, default=10,
                        help="1 in TRACED events continues a caller's trace (random trace id); 0: none")  # fmt: skip
    parser.add_argument("--refresh", type=float, default=1.0,
                        help="seconds between dashboard refreshes (4 queries) during the load; 0: back to back")
    parser.add_argument("--batch-size", type=int, default=5000, help="the loader's analytics.batch_size")
    parser.add_argument("--out", type=Path, default=ROOT / "load_tests" / "results")
    args = parser.parse_args()
    events = make_events(args.events, traced=args.traced)
    rounds: list[dict[str, Any]] = []
    for r in range(args.rounds):
        entry: dict[str, Any] = {"store": run_store(events, args.refresh, args.batch_size)}
        if args.old_checkout:
            entry["redis"] = run_redis(args.old_checkout, args.old_events)
            entry["ratio"] = entry["store"]["events_per_s"] / entry["redis"]["events_per_s"]
        rounds.append(entry)
        print(f"round {r + 1}: store {entry['store']['events_per_s']:,.0f}/s"
              + (f", redis {entry['redis']['events_per_s']:,.0f}/s" if "redis" in entry else ""), flush=True)
    table(rounds)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / time.strftime("loader-%Y%m%d-%H%M%S.json")
    doc = {"events": args.events, "old_events": args.old_events, "traced": args.traced, "refresh_s": args.refresh,
           "batch_size": args.batch_size,
           "cpus": os.cpu_count(),
           "load_average": os.getloadavg(), "rounds": rounds}  # fmt: skip
    path.write_text(json.dumps(doc, indent=1))
    print(f"results: {path}")


def table(rounds: list[dict[str, Any]]) -> None:
    def med(path: tuple[str, ...]) -> float:
        values = []
        for r in rounds:
            node: Any = r
            for key in path:
                node = node.get(key) if isinstance(node, dict) else None
            if node is not None:
                values.append(float(node))
        return statistics.median(values) if values else float("nan")

    n = rounds[0]["store"]["events"]
    rows = [
        ("store loader, events/s (wall)", f"{med(('store', 'events_per_s')):,.0f}"),
        ("store loader, events per loader CPU-second", f"{med(('store', 'events_per_cpu_s')):,.0f}"),
        ("Redis-aggregate collector, events/s (wall)", f"{med(('redis', 'events_per_s')):,.0f}"),
        ("ratio store / Redis (median of per-round ratios)", f"{med(('ratio',)):.2f}"),
        ("store process peak RSS during the load, MiB", f"{med(('store', 'peak_rss_load_bytes')) / 2**20:,.0f}"),
        ("... including the OPTIMIZE FINAL after it, MiB", f"{med(('store', 'peak_rss_bytes')) / 2**20:,.0f}"),
        ("disk bytes per event (as loaded)", f"{med(('store', 'disk_bytes')) / n:.1f}"),
        ("disk bytes per event (merged)", f"{med(('store', 'disk_bytes_merged')) / n:.1f}"),
    ]
    rows.append(("event loop held, p99 / max ms (what `run`'s proxy would wait)",
                 f"{med(('store', 'loop_stall_ms', 'p99')):.0f} / {med(('store', 'loop_stall_ms', 'max')):.0f}"))
    rows += [(f"query {q} during the load, p50 / max ms",
              f"{med(('store', 'queries', q, 'p50_ms')):.0f} / {med(('store', 'queries', q, 'max_ms')):.0f}")
             for q in QUERIES]  # fmt: skip
    width = max(len(k) for k, _ in rows)
    print(f"\n{len(rounds)} rounds, {n:,} events per store run (medians)")
    for k, v in rows:
        print(f"  {k:<{width}}  {v:>12}")


if __name__ == "__main__":
    main()
