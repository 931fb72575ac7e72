"""How long the tracking flush holds the event loop: stalls seen by request handlers.

The whole flush task runs as in the proxy (``EventPipeline.prepare``: event
building with warm enrichment, Prometheus metrics, orjson; then ``Publisher``:
hiredis-framed XADD batches to a real Redis on a free port), fed with realistic
exchanges at a steady rate. A probe task does ``await asyncio.sleep(0)`` in a
loop: the gap between two of its turns is the longest stretch some other work
held the loop, which is what a request handler waiting for a socket would wait.
Variants of the pipeline's time slice run interleaved, ``--rounds`` times each.

    .venv/bin/python load_tests/bench_flush.py [--rate 4000] [--seconds 4] [--rounds 3]

Prints stall p99.9 / max and the share of gaps over 0.5 ms and 1 ms; writes
load_tests/results/flush-*.json. The probe spins, so this measures stalls, not
throughput.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import proxy.tracking.pipeline as pipeline_module  # noqa: E402
from load_tests.bench_tracking import sample_exchange  # noqa: E402
from proxy.metrics import ProxyMetrics  # noqa: E402
from proxy.settings import Settings  # noqa: E402
from proxy.stream.embedded import EmbeddedRedis, free_port  # noqa: E402
from proxy.stream.publisher import Publisher  # noqa: E402
from proxy.tracking.enrich import Enricher  # noqa: E402
from proxy.tracking.event import EventBuilder, Exchange  # noqa: E402
from proxy.tracking.pipeline import EventPipeline  # noqa: E402

VARIANTS = {
    f"slice {ms} ms{' (default)' if ms / 1000 == pipeline_module.SLICE_KEEPING_UP else ''}": ms / 1000
    for ms in (0.5, 0.25, 0.1)
}


async def one_run(url: str, spool: Path, rate: float, seconds: float, keeping_up_slice: float) -> dict[str, Any]:
    """One variant: ``rate`` exchanges/s for ``seconds`` through the real flush task."""
    default = pipeline_module.SLICE_KEEPING_UP
    pipeline_module.SLICE_KEEPING_UP = keeping_up_slice
    try:
        return await _measure(url, spool, rate, seconds)
    finally:
        pipeline_module.SLICE_KEEPING_UP = default
        gc.unfreeze()


async def _measure(url: str, spool: Path, rate: float, seconds: float) -> dict[str, Any]:
    settings = Settings()
    metrics = ProxyMetrics()
    pipe = EventPipeline(EventBuilder(settings, Enricher(settings.enrichment)), metrics)
    pub: Publisher[Exchange] = Publisher(
        redis_url=url, stream_key="footfall:events", maxlen=100_000, settings=settings.publisher,
        spool_dir=spool, metrics=metrics, prepare=pipe.prepare,
    )  # fmt: skip
    await pub.start()
    exchange = sample_exchange()
    await pipe.prepare([exchange])  # warm caches, as a running proxy has them
    gc.collect()
    gc.freeze()  # as the proxy does after start (proxy/edge/server.py)
    gaps: list[float] = []
    stop = False

    async def probe() -> None:
        last = time.perf_counter()
        while not stop:
            await asyncio.sleep(0)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    async def produce() -> int:
        # Submits what is due every millisecond: a request handler's put_nowait, at `rate`.
        sent, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            due = int(elapsed * rate)
            while sent < due:
                pub.submit(exchange)
                sent += 1
            await asyncio.sleep(0.001)
        return sent

    probe_task = asyncio.get_running_loop().create_task(probe())
    cpu0 = time.process_time()
    sent = await produce()
    while pub.published + pub.spooled + pub.dropped < sent:  # noqa: ASYNC110 - cheap poll
        await asyncio.sleep(0.005)
    stop = True
    await probe_task
    cpu = time.process_time() - cpu0
    await pub.close()
    gaps.sort()
    n = len(gaps)
    return {
        "events": sent,
        "published": pub.published,
        "stall_p999_ms": gaps[int(n * 0.999)] * 1000,
        "stall_max_ms": gaps[-1] * 1000,
        "gaps_over_0_5ms": sum(g > 0.0005 for g in gaps),
        "gaps_over_1ms": sum(g > 0.001 for g in gaps),
        "cpu_s": cpu,
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="footfall-flush-"))
    redis = EmbeddedRedis(tmp / "redis", port=free_port()).start()
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in VARIANTS}
    try:
        for r in range(args.rounds):
            for name, slice_s in VARIANTS.items():
                res = await one_run(redis.url, tmp / f"spool-{r}-{slice_s}", args.rate, args.seconds, slice_s)
                results[name].append(res)
                print(f"round {r + 1} {name:<24} max {res['stall_max_ms']:.2f} ms  p99.9 "
                      f"{res['stall_p999_ms']:.3f} ms  >1 ms: {res['gaps_over_1ms']}", file=sys.stderr)  # fmt: skip
    finally:
        redis.kill()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="event-loop stalls caused by the tracking flush")
    parser.add_argument("--rate", type=float, default=4000.0, help="exchanges per second")
    parser.add_argument("--seconds", type=float, default=4.0, help="per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "load_tests" / "results")
    args = parser.parse_args(argv)
    import uvloop

    results = uvloop.run(main_async(args))
    print(f"\nflush stalls at {args.rate:.0f} exchanges/s, {args.seconds:.0f} s x {args.rounds} rounds (medians)")
    print(f"  {'variant':<26}{'max ms':>8}{'p99.9 ms':>10}{'gaps >0.5 ms':>14}{'>1 ms':>7}{'CPU µs/event':>14}")
    for name, runs in results.items():
        def med(key: str, runs: list[dict[str, Any]] = runs) -> float:
            return statistics.median(float(x[key]) for x in runs)

        cpu_us = statistics.median(x["cpu_s"] / x["events"] * 1e6 for x in runs)
        print(f"  {name:<26}{med('stall_max_ms'):8.2f}{med('stall_p999_ms'):10.3f}"
              f"{med('gaps_over_0_5ms'):14.0f}{med('gaps_over_1ms'):7.0f}{cpu_us:14.1f}")  # fmt: skip
    print("  (CPU includes the spinning probe: compare it across variants only)")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / time.strftime("flush-%Y%m%d-%H%M%S.json")
    path.write_text(json.dumps({"rate": args.rate, "seconds": args.seconds, "results": results}, indent=1))
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
