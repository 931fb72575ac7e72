"""Events per second one collector process applies (analytics and performance).

Starts a private redis-server (the embedded binary) on a free port, XADDs N
realistic events (500 visitors, 40 pages, 6 campaigns, goals and a funnel),
then times a CollectorService draining the stream, for each group alone and
both together (analytics is the loader into an embedded store in a temporary
directory; load_tests/bench_loader.py measures it with queries running and
against the Redis-aggregate collector). The collector's own CPU time is reported too: Redis runs in its
own process (on the other core of a 2-core box), the figure that matters for
"one collector core" is events per collector-CPU-second.

    .venv/bin/python load_tests/bench_collectors.py [N [BATCH_SIZE [GROUPS]]]

GROUPS is ``analytics``, ``performance`` or ``all`` (both in one process); by
default each of the three is run in turn.
"""

from __future__ import annotations

import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

import orjson
import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collectors.service import CollectorService
from collectors.settings import parse
from proxy.stream.embedded import EmbeddedRedis, free_port

STREAM = "footfall:events"
CHANNELS = ["Direct", "Organic Search", "Paid Search", "Organic Social", "Email", "Referral"]
BROWSERS = [("Chrome", "Windows", "desktop"), ("Mobile Safari", "iOS", "mobile"),
            ("Firefox", "Linux", "desktop"), ("Chrome Mobile", "Android", "mobile")]  # fmt: skip


def make_events(n: int) -> list[bytes]:
    rnd = random.Random(7)
    now = time.time() - 600
    out = []
    for i in range(n):
        v = rnd.randrange(500)
        b = BROWSERS[v % 4]
        page = "/products/{id}" if i % 3 else f"/p{rnd.randrange(40)}"
        pageview = i % 4 != 3
        out.append(orjson.dumps({
            "v": 1, "id": f"{i:032x}", "ts": now + i * 0.01, "kind": "pageview" if pageview else "request",
            "site": "shop.example", "method": "GET" if i % 50 else "POST",
            "path": "/checkout" if i % 50 == 0 else page, "route": page, "query": {},
            "status": 200 if i % 97 else 503, "bytes_out": 12000,
            "content_type": "text/html" if pageview else "image/png",
            "duration_ms": rnd.expovariate(1 / 80), "upstream_ms": rnd.expovariate(1 / 60),
            "visitor": f"visitor-{v:06d}", "session": f"session-{v:06d}-{i // 5000}",
            "new_visitor": False, "new_session": False,
            "referrer": {"host": "www.google.com", "medium": "search", "source": "Google"},
            "utm": {"source": "google", "medium": "cpc", "campaign": f"c{v % 6}"},
            "ua": {"browser": b[0], "browser_version": "1", "os": b[1], "device": b[2]},
            "bot": i % 40 == 0, "bot_name": None, "channel": CHANNELS[v % 6],
            "ip": "203.0.113.0", "country": ["FR", "US", "DE", "GB"][v % 4],
            "trace_id": "0" * 32, "error": None, "consent": "granted",
        }))  # fmt: skip
    return out


async def redis_cpu(redis: aioredis.Redis) -> float:
    info = await redis.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


async def run(which: frozenset[str], n: int, batch_size: int = 500) -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(Path(tmp), port=free_port()).start()
        try:
            redis = aioredis.Redis.from_url(server.url)
            events = make_events(n)
            for i in range(0, n, 5000):
                async with redis.pipeline(transaction=False) as pipe:
                    for e in events[i : i + 5000]:
                        pipe.xadd(STREAM, {"event": e})
                    await pipe.execute()
            errors: list[str] = []
            settings = parse({
                "batch_size": batch_size,
                "goals": [{"name": "buy", "method": "POST", "path": "/checkout", "status": "2xx"}],
                "funnels": [{"name": "f", "steps": ["/p1", "/p2", "/p3"]}],
            }, errors)  # fmt: skip
            service = CollectorService(server.url, STREAM, settings, which, "bench", data_dir=Path(tmp) / "data")
            rcpu0 = await redis_cpu(redis)
            cpu0, t0 = time.process_time(), time.perf_counter()
            await service.start()
            while True:
                infos = await redis.xinfo_groups(STREAM)
                last = (await redis.xrevrange(STREAM, count=1))[0][0]
                if all(i["pending"] == 0 and i["last-delivered-id"] == last for i in infos):
                    break
                await asyncio.sleep(0.01)
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            await service.stop()
            # Redis's own CPU time: less sensitive than wall time to a busy shared box
            redis_us = (await redis_cpu(redis) - rcpu0) * 1e6
            await redis.aclose()
            return n / wall, n / cpu, redis_us / n
        finally:
            server.kill()


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    batch_size = int(sys.argv[2]) if len(sys.argv) > 2 else 500
    runs = {"analytics": frozenset({"analytics"}), "performance": frozenset({"performance"}),
            "all": frozenset({"analytics", "performance"})}  # fmt: skip
    chosen = [runs[sys.argv[3]]] if len(sys.argv) > 3 else list(runs.values())
    for which in chosen:
        wall, cpu, redis_us = asyncio.run(run(which, n, batch_size))
        print(
            f"{'+'.join(sorted(which)):24s} {n} events: {wall:9,.0f} events/s wall, "
            f"{cpu:9,.0f} events per collector CPU-second, {redis_us:5.1f} Redis CPU-µs per event"
        )


if __name__ == "__main__":
    main()
