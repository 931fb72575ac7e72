"""Collectors on a sharded stream: leases, rebalancing, takeover, exactly-once by id.

Against a real 3-master Redis Cluster (shared by the module: every test uses its
own stream prefix or group names) and real collector / proxy processes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import redis as redis_sync
from aiohttp import web
from prometheus_client import CollectorRegistry

from collectors.events import Event
from collectors.leases import Leases, assignment, lease_key
from collectors.runtime_metrics import RuntimeMetrics
from collectors.settings import CollectorSettings
from collectors.sharded import ShardedConsumer
from proxy.stream.clients import redis_client
from proxy.stream.cluster import connect_stream
from proxy.stream.embedded import EmbeddedRedis, free_port
from proxy.stream.shards import shard_keys
from tests.clusterkit import Cluster, start_cluster
from tests.collectors.factory import event
from tests.proxy.processes import stop, wait_ready

STREAM = "footfall:events"
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("shards", "members", "me", "mine"),
    [
        (3, ["a"], "a", {0, 1, 2}),
        (3, [], "a", {0, 1, 2}),  # not yet heartbeated: counts itself
        (3, ["a", "b"], "a", {0, 2}),
        (3, ["b", "a"], "b", {1}),
        (3, ["a", "b", "c"], "c", {2}),
        (3, ["a", "b", "c", "d"], "d", set()),  # more consumers than shards: one idles
        (1, ["x", "y"], "x", {0}),
    ],
)
def test_assignment(shards: int, members: list[str], me: str, mine: set[int]) -> None:
    assert assignment(shards, members, me) == mine


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
def test_assignment_covers_every_shard_exactly_once(n: int) -> None:
    members = [f"c{i}" for i in range(n)]
    owners = Counter(s for m in members for s in assignment(12, members, m))
    assert owners == {s: 1 for s in range(12)}


async def test_lease_is_exclusive_renewable_and_expires(redis_server: EmbeddedRedis) -> None:
    client = redis_client(redis_server.url)
    a = Leases(client, STREAM, "g", "a", ttl_ms=300)
    b = Leases(client, STREAM, "g", "b", ttl_ms=300)
    try:
        assert await a.acquire("k")
        assert not await b.acquire("k")
        assert not await b.renew("k") and not await b.release("k")
        assert await a.renew("k")
        assert await a.owner("k") == "a"
        await asyncio.sleep(0.4)  # a died: its lease lapses
        assert await b.acquire("k")
        assert not await a.renew("k")
        assert await b.release("k") and await a.owner("k") is None
        assert sorted(await a.heartbeat()) == ["a"]
        assert sorted(await b.heartbeat()) == ["a", "b"]
        await a.leave()
        assert await b.heartbeat() == ["b"]
    finally:
        await client.aclose()


# --- against a real cluster ----------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = start_cluster(tmp_path_factory.mktemp("cluster"), masters=3)
    yield c
    c.stop()


@pytest.fixture(autouse=True)
def _flush(request: pytest.FixtureRequest) -> None:
    if "cluster" in request.fixturenames:
        cluster = request.getfixturevalue("cluster")
        for node in cluster.masters:
            node.client().flushall()


class Recorder:
    """A test sink: XACK, then record the ids (shared by every shard view)."""

    def __init__(self, redis: Any, group: str, ids: Counter[str]) -> None:
        self.redis = redis
        self.group = group
        self.stream_key = STREAM
        self.ids = ids

    async def apply(self, batch: list[tuple[str, Event]], acks: list[str]) -> int:
        await self.redis.xack(self.stream_key, self.group, *acks)
        self.ids.update(e["id"] for _, e in batch)
        return len(batch)


async def _publish(url: str, keys: list[str], events: list[dict[str, Any]]) -> None:
    wire = await connect_stream(url, keys, 2.0)
    try:
        for i in range(0, len(events), 200):
            await wire.xadd_many(STREAM, 1_000_000, [orjson.dumps(e) for e in events[i : i + 200]])
    finally:
        wire.close()


async def _until(check: Any, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.05)


@pytest.fixture
async def client(cluster: Cluster) -> AsyncIterator[Any]:
    c = redis_client(cluster.url, socket_timeout=5)
    yield c
    await c.aclose()


async def test_two_groups_with_two_consumers_each_get_every_event_once(cluster: Cluster, client: Any) -> None:
    keys = shard_keys(STREAM, 3, cluster=True)
    settings = CollectorSettings(batch_size=50, block_ms=100)
    seen: dict[str, Counter[str]] = {"analytics-test": Counter(), "perf-test": Counter()}
    consumers = [
        ShardedConsumer(client, STREAM, keys, Recorder(client, group, ids), settings, name,
                        RuntimeMetrics(CollectorRegistry()), lease_ttl_ms=1500)  # fmt: skip
        for group, ids in seen.items()
        for name in ("c1", "c2")
    ]
    for c in consumers:
        await c.ensure_group()
    tasks = [asyncio.ensure_future(c.run()) for c in consumers]
    try:
        sent = [event(visitor=f"v{i % 97}" if i % 4 else None) for i in range(1500)]
        await _publish(cluster.url, keys, sent)
        await _until(lambda: all(sum(ids.values()) >= len(sent) for ids in seen.values()))
        # Each group's two consumers split the shards: disjoint, and together all of them
        # once the hand-over that follows the second consumer's arrival has settled.
        def split(group: str) -> bool:
            mine = [c.reading for c in consumers if c.group == group]
            return not (mine[0] & mine[1]) and mine[0] | mine[1] == {0, 1, 2}

        await _until(lambda: all(split(group) for group in seen), timeout=10)
    finally:
        for c in consumers:
            c.stop()
        await asyncio.gather(*tasks)
    want = {e["id"] for e in sent}
    for ids in seen.values():
        assert set(ids) == want and max(ids.values()) == 1
    # A clean stop releases the leases and leaves the membership.
    assert not any([await client.exists(lease_key(k, "perf-test")) for k in keys])


def _worker(url: str, group: str, name: str, out: Path, *, hang: bool = False) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "tests.collectors.shard_worker", url, "3", group, name, str(out)]
    return subprocess.Popen([*args, *(["--hang"] if hang else [])], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip


def _recorded(paths: list[Path]) -> Counter[str]:
    ids: Counter[str] = Counter()
    for p in paths:
        if p.exists():
            ids.update(line for line in p.read_text().split("\n") if line)
    return ids


async def _owners(client: Any, keys: list[str], group: str) -> list[str | None]:
    return [None if (v := await client.get(lease_key(k, group))) is None else v.decode() for k in keys]


async def _balanced(client: Any, keys: list[str], want: list[str]) -> None:
    """Wait until the leases are held as ``want`` says (sorted owner names)."""
    for _ in range(200):
        if sorted(o or "" for o in await _owners(client, keys, "g")) == want:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"leases never became {want}: {await _owners(client, keys, 'g')}")


async def test_two_then_three_collector_processes_share_the_shards(
    cluster: Cluster, client: Any, tmp_path: Path
) -> None:
    keys = shard_keys(STREAM, 3, cluster=True)
    outs = [tmp_path / f"w{i}.ids" for i in range(3)]
    procs = [_worker(cluster.url, "g", f"w{i}", outs[i]) for i in range(2)]
    try:
        await _until(lambda: all(o.exists() for o in outs[:2]))
        first = [event(visitor=f"v{i}") for i in range(1200)]
        await _publish(cluster.url, keys, first)
        await _until(lambda: sum(_recorded(outs).values()) >= 1200)
        await _balanced(client, keys, ["w0", "w0", "w1"])
        procs.append(_worker(cluster.url, "g", "w2", outs[2]))
        await _until(lambda: outs[2].exists())
        await _balanced(client, keys, ["w0", "w1", "w2"])
        second = [event(visitor=f"v{i}") for i in range(1200)]
        await _publish(cluster.url, keys, second)
        await _until(lambda: sum(_recorded(outs).values()) >= 2400)
        await asyncio.sleep(0.3)  # nothing more arrives: no duplicates
        ids = _recorded(outs)
        assert set(ids) == {e["id"] for e in first + second} and max(ids.values()) == 1
        assert all(_recorded([o]) for o in outs), "every process read some shard"
    finally:
        for p in procs:
            await stop(p)
            if p.stderr:
                p.stderr.close()


async def test_a_collector_killed_mid_batch_has_its_shards_and_pending_taken_over(
    cluster: Cluster, client: Any, tmp_path: Path
) -> None:
    keys = shard_keys(STREAM, 3, cluster=True)
    live, dying = tmp_path / "live.ids", tmp_path / "dying.ids"
    victim = _worker(cluster.url, "g", "dying", dying, hang=True)
    survivor: subprocess.Popen[bytes] | None = None
    try:
        await _until(lambda: dying.exists())
        sent = [event(visitor=f"v{i}") for i in range(600)]
        await _publish(cluster.url, keys, sent)
        await _until(lambda: Path(str(dying) + ".hung").exists())
        survivor = _worker(cluster.url, "g", "live", live)
        await _until(lambda: live.exists())
        await asyncio.sleep(0.5)
        pending = sum([(await client.xpending(k, "g"))["pending"] for k in keys])
        assert pending > 0, "the dying collector holds a batch in hand"
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        await _until(lambda: sum(_recorded([live]).values()) >= len(sent), timeout=30)
        ids = _recorded([live, dying])
        assert set(ids) == {e["id"] for e in sent} and max(ids.values()) == 1
        assert await _owners(client, keys, "g") == ["live"] * 3
        assert sum([(await client.xpending(k, "g"))["pending"] for k in keys]) == 0
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()
        if victim.stderr:
            victim.stderr.close()
        if survivor is not None:
            await stop(survivor)
            if survivor.stderr:
                survivor.stderr.close()


# --- proxies publishing to the cluster -----------------------------------------------------


async def test_events_from_several_proxy_processes_arrive_once_at_every_group(
    cluster: Cluster, client: Any, tmp_path: Path
) -> None:
    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<html>hi</html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    upstream = f"http://127.0.0.1:{runner.addresses[0][1]}"
    env = {**os.environ, "FOOTFALL_REDIS_URL": cluster.url, "FOOTFALL_STREAM_SHARDS": "3"}
    proxies = []
    for i in range(2):
        port, admin = free_port(), free_port()
        args = [sys.executable, "-m", "proxy.cli", "proxy", "--upstream", upstream,
                "--listen", f"127.0.0.1:{port}", "--admin-listen", f"127.0.0.1:{admin}",
                "--data-dir", str(tmp_path / f"proxy-{i}")]  # fmt: skip
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        proxies.append((proc, port, admin))
    try:
        for proc, _, admin in proxies:
            await wait_ready(admin, proc)
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
            for n in range(150):
                for _, port, _ in proxies:
                    async with http.get(f"http://127.0.0.1:{port}/p/{n}", headers={"Accept": "text/html"}) as r:
                        assert r.status == 200
    finally:
        for proc, _, _ in proxies:
            await stop(proc)
        await runner.cleanup()
    keys = shard_keys(STREAM, 3, cluster=True)
    lengths = [await client.xlen(k) for k in keys]
    assert sum(lengths) == 300 and min(lengths) > 50, lengths  # new visitors spread over shards
    settings = CollectorSettings(batch_size=100, block_ms=100)
    seen: dict[str, Counter[str]] = {"one": Counter(), "two": Counter()}
    consumers = [
        ShardedConsumer(client, STREAM, keys, Recorder(client, group, ids), settings, "c",
                        RuntimeMetrics(CollectorRegistry()), lease_ttl_ms=1500)  # fmt: skip
        for group, ids in seen.items()
    ]
    for c in consumers:
        await c.ensure_group()
    tasks = [asyncio.ensure_future(c.run()) for c in consumers]
    try:
        await _until(lambda: all(sum(ids.values()) >= 300 for ids in seen.values()))
    finally:
        for c in consumers:
            c.stop()
        await asyncio.gather(*tasks)
    assert seen["one"] == seen["two"] and len(seen["one"]) == 300 and max(seen["one"].values()) == 1


def test_cluster_client_from_the_url(cluster: Cluster) -> None:
    # The sync check that the module's cluster is what the async tests talk to.
    c = redis_sync.RedisCluster(host="127.0.0.1", port=cluster.masters[0].port)
    assert len(c.get_primaries()) == 3
    c.close()


async def test_stream_gauges_fold_over_the_shards(cluster: Cluster, client: Any) -> None:
    from collectors.shard_monitor import sample_shards

    keys = shard_keys(STREAM, 3, cluster=True)
    for k in keys:
        await client.xgroup_create(k, "g", id="0", mkstream=True)
    sent = [event(visitor=f"v{i}") for i in range(300)]
    await _publish(cluster.url, keys, sent)
    # Read (not ack) 10 entries of shard 1 only: pending 10 in total, lag from shards 0 and 2.
    await client.xreadgroup("g", "c", {keys[1]: ">"}, count=10)
    registry = CollectorRegistry()
    metrics = RuntimeMetrics(registry)
    await sample_shards(client, keys, ["g"], metrics)
    assert registry.get_sample_value("footfall_stream_length_entries") == 300
    assert registry.get_sample_value("footfall_collector_pending_entries", {"group": "g"}) == 10
    lag = registry.get_sample_value("footfall_collector_lag_seconds", {"group": "g"})
    assert lag is not None and lag >= 0


async def test_footfall_collect_performance_reads_every_shard(cluster: Cluster, tmp_path: Path) -> None:
    admin = free_port()
    env = {**os.environ, "FOOTFALL_REDIS_URL": cluster.url, "FOOTFALL_STREAM_SHARDS": "3"}
    args = [sys.executable, "-m", "proxy.cli", "collect", "performance", "--admin-listen", f"127.0.0.1:{admin}"]
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metric = 'footfall_collector_events_processed_total{group="performance"}'
    try:
        async with aiohttp.ClientSession() as http:

            async def processed() -> float:
                try:
                    async with http.get(f"http://127.0.0.1:{admin}/metrics") as r:
                        text = await r.text()
                except aiohttp.ClientConnectionError:
                    return -1.0
                lines = [ln for ln in text.splitlines() if ln.startswith(metric)]
                return float(lines[0].split()[-1]) if lines else 0.0

            for _ in range(300):
                if await processed() >= 0:
                    break
                await asyncio.sleep(0.1)
            sent = [event(visitor=f"v{i}") for i in range(300)]
            await _publish(cluster.url, shard_keys(STREAM, 3, cluster=True), sent)
            for _ in range(300):
                if await processed() >= 300:
                    break
                await asyncio.sleep(0.1)
            assert await processed() == 300
    finally:
        await stop(proc)


async def test_two_loaders_on_a_sharded_stream_store_every_event_once(
    cluster: Cluster, client: Any, store: Any
) -> None:
    """The analytics loader on 3 shards, two consumers sharing them by lease, one store:
    each event id stored once, and a replay of one shard's entries adds nothing."""
    from collectors.analytics.loader import StoreLoader
    from tests.collectors.conftest import count, rows

    keys = shard_keys(STREAM, 3, cluster=True)
    settings = CollectorSettings(batch_size=200, block_ms=100)
    registries = [CollectorRegistry(), CollectorRegistry()]
    loaders = [
        ShardedConsumer(client, STREAM, keys, StoreLoader(client, STREAM, store), settings, name,
                        RuntimeMetrics(registry), lease_ttl_ms=1500)  # fmt: skip
        for name, registry in zip(("l1", "l2"), registries, strict=True)
    ]

    def duplicates() -> float:
        name = "footfall_collector_events_duplicate_total"
        return sum(r.get_sample_value(name, {"group": "analytics"}) or 0.0 for r in registries)

    for c in loaders:
        await c.ensure_group()
    tasks = [asyncio.ensure_future(c.run()) for c in loaders]
    try:
        import time

        base = time.time() - 60
        sent = [event(ts=base + i * 0.001, visitor=f"v{i % 97}", session=f"s{i % 97}") for i in range(1500)]
        await _publish(cluster.url, keys, sent)
        await _publish(cluster.url, keys, sent[:300])  # the same events again: a replay
        await _until(lambda: count(store) >= len(sent) and duplicates() >= 300, timeout=30)
    finally:
        for c in loaders:
            c.stop()
        await asyncio.gather(*tasks)
    assert count(store) == rows(store) == len(sent)
    assert duplicates() == 300  # the replay reached the loaders and stored nothing
