"""Publishing throughput and event-loop stalls: Publisher (raw hiredis wire) vs redis-py.

Runs on one core against a real Redis (EmbeddedRedis on a free port, in a temp
dir). Each variant pushes N pre-encoded ~1 KB events; a ticker task sleeping
1 ms measures the longest time the loop was blocked. Variants run interleaved,
``--rounds`` times each; the table shows medians.

    .venv/bin/python load_tests/bench_publish.py [--events 100000] [--rounds 3]

Writes load_tests/results/publish.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis

from proxy.metrics import ProxyMetrics
from proxy.settings import PublisherSettings
from proxy.stream.embedded import EmbeddedRedis, free_port
from proxy.stream.publisher import Publisher

KEY = "footfall:events"
MAXLEN = 200_000
BATCH = 256


def make_payloads(n: int) -> list[bytes]:
    """~1 KB events shaped like Event v1."""
    out = []
    for i in range(n):
        event = {
            "v": 1, "id": f"0192f1c3a7b47{i:019x}", "ts": 1733000000.123 + i, "kind": "pageview",
            "site": "shop.example", "method": "GET", "path": f"/products/{i % 5000}",
            "route": "/products/{id}", "query": {"ref": "home", "page": str(i % 7)},
            "status": 200, "bytes_out": 15342, "content_type": "text/html",
            "duration_ms": 12.843, "upstream_ms": 9.412,
            "visitor": f"v{i % 9000:031x}", "session": f"s{i % 3000:031x}",
            "new_visitor": False, "new_session": i % 10 == 0,
            "referrer": {"url": "https://www.google.com/", "host": "www.google.com",
                         "medium": "search", "source": "google"},
            "utm": {"source": "newsletter", "medium": "email", "campaign": "winter-sale-2024",
                    "term": None, "content": "hero-banner", "click_id": None},
            "ua": {"browser": "Chrome", "browser_version": "131.0.0", "os": "Windows",
                   "device": "desktop"},
            "bot": False, "bot_name": None, "channel": "Email", "ip": "203.0.113.0",
            "country": "DE", "trace_id": f"{i:032x}", "error": None, "consent": "granted",
            "user_agent_raw": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
                              "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            "title": "Product page - a fine thing for everyday use, in three colours",
        }  # fmt: skip
        out.append(orjson.dumps(event))
    return out


class Ticker:
    """Sleeps 1 ms in a loop; the longest overshoot is the longest loop stall."""

    def __init__(self) -> None:
        self.stalls: list[float] = []
        self._stop = False

    async def run(self) -> None:
        last = time.perf_counter()
        while not self._stop:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            self.stalls.append(now - last - 0.001)
            last = now

    def stop(self) -> None:
        self._stop = True


async def measure(body: Callable[[], Awaitable[None]], n: int) -> dict[str, float]:
    ticker = Ticker()
    task = asyncio.create_task(ticker.run())
    await asyncio.sleep(0.01)
    ticker.stalls.clear()
    cpu0, t0 = time.process_time(), time.perf_counter()
    await body()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    ticker.stop()
    await task
    return {
        "events_per_s": n / wall,
        "cpu_us_per_event": cpu / n * 1e6,
        "max_stall_ms": max(ticker.stalls) * 1000,
        "p99_stall_ms": statistics.quantiles(ticker.stalls, n=100)[98] * 1000,
    }


async def run_publisher(url: str, payloads: list[bytes], spool_dir: Path) -> dict[str, float]:
    async def identity(items: list[bytes]) -> list[bytes]:
        return items

    n = len(payloads)
    # The whole backlog fits under the high-water mark, so it all goes to Redis
    # (not the spool) as fast as the flush task can send it.
    settings = PublisherSettings(batch_size=BATCH, buffer_size=3 * n)
    pub: Publisher[bytes] = Publisher(
        redis_url=url, stream_key=KEY, maxlen=MAXLEN, settings=settings,
        spool_dir=spool_dir, metrics=ProxyMetrics(), prepare=identity,
    )  # fmt: skip
    await pub.start()

    async def body() -> None:
        for i in range(0, n, 500):  # in slices, so the producer itself never stalls the loop
            for p in payloads[i : i + 500]:
                pub.submit(p)
            await asyncio.sleep(0)
        while pub.published + pub.spooled + pub.dropped < n:  # noqa: ASYNC110 - cheap poll
            await asyncio.sleep(0.005)

    result = await measure(body, len(payloads))
    result["spooled"] = pub.spooled
    result["dropped"] = pub.dropped
    await pub.close()
    return result


async def run_redispy(url: str, payloads: list[bytes]) -> dict[str, float]:
    client = aioredis.Redis.from_url(url)

    async def body() -> None:
        for i in range(0, len(payloads), BATCH):
            pipe = client.pipeline(transaction=False)
            for p in payloads[i : i + BATCH]:
                pipe.xadd(KEY, {"event": p}, maxlen=MAXLEN, approximate=True)
            await pipe.execute()

    result = await measure(body, len(payloads))
    await client.aclose()
    return result


async def main(n: int, rounds: int) -> dict[str, Any]:
    payloads = make_payloads(n)
    size = statistics.mean(len(p) for p in payloads)
    runs: dict[str, list[dict[str, float]]] = {"publisher (hiredis wire)": [], "redis-py pipeline": []}
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis", port=free_port()).start()
        cores = sorted(os.sched_getaffinity(0))
        if len(cores) >= 2 and server.process is not None:
            # The publisher alone on one core, Redis on another (as PERF-NOTES measured).
            os.sched_setaffinity(0, {cores[0]})
            os.sched_setaffinity(server.process.pid, {cores[1]})
        try:
            client = aioredis.Redis.from_url(server.url)
            for r in range(rounds):  # interleaved: drift hits both alike
                await client.delete(KEY)
                runs["publisher (hiredis wire)"].append(
                    await run_publisher(server.url, payloads, Path(tmp) / f"spool-{r}")
                )
                await client.delete(KEY)
                runs["redis-py pipeline"].append(await run_redispy(server.url, payloads))
            await client.aclose()
        finally:
            server.stop()
    table = {
        name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in runs.items()
    }
    base = table["redis-py pipeline"]["events_per_s"]
    print(f"{n} events of ~{size:.0f} bytes, batch {BATCH}, {rounds} interleaved rounds, medians")
    print(f"{'variant':28} {'events/s':>10} {'ratio':>6} {'CPU µs/ev':>10} {'p99 stall ms':>13}"
          f" {'max stall ms':>13}")  # fmt: skip
    for name, row in table.items():
        print(f"{name:28} {row['events_per_s']:10.0f} {row['events_per_s'] / base:6.2f} "
              f"{row['cpu_us_per_event']:10.2f} {row['p99_stall_ms']:13.2f}"
              f" {row['max_stall_ms']:13.2f}")  # fmt: skip
    return {"events": n, "payload_bytes": size, "batch_size": BATCH, "rounds": rounds,
            "cpu_affinity": sorted(os.sched_getaffinity(0)), "median": table, "runs": runs}  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    result = asyncio.run(main(args.events, args.rounds))
    out = Path(__file__).parent / "results" / "publish.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"saved {out}")
