"""The cluster publisher against a real 3-master Redis Cluster (and a failover with replicas)."""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from redis.crc import key_slot

from proxy.metrics import ProxyMetrics
from proxy.settings import PublisherSettings
from proxy.stream.cluster import (
    ClusterWire,
    connect_stream,
    parse_cluster_url,
    parse_redirect,
    parse_slots,
)
from proxy.stream.publisher import Publisher
from proxy.stream.rediswire import RedisWire, WireError
from proxy.stream.shards import shard_keys, shard_of
from tests.clusterkit import Cluster, start_cluster

KEY = "footfall:events"
ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("url", "seeds", "credentials"),
    [
        ("redis-cluster://h1:7000,h2:7001", [("h1", 7000), ("h2", 7001)], ""),
        ("redis-cluster://u:p%40ss@h1:7000", [("h1", 7000)], "u:p%40ss@"),
        ("redis-cluster://h1:7000/?password=s3", [("h1", 7000)], ":s3@"),
        ("redis-cluster://[::1]:7000", [("::1", 7000)], ""),
    ],
)
def test_parse_cluster_url(url: str, seeds: list[tuple[str, int]], credentials: str) -> None:
    assert parse_cluster_url(url) == (seeds, credentials)


@pytest.mark.parametrize("url", ["redis://h:1", "redis-cluster://h1", "redis-cluster://h1:x", "redis-cluster://"])
def test_parse_cluster_url_rejects(url: str) -> None:
    with pytest.raises(ValueError, match="URL"):
        parse_cluster_url(url)


@pytest.mark.parametrize(
    ("message", "parsed"),
    [
        ("MOVED 3999 127.0.0.1:6381", ("MOVED", 3999, ("127.0.0.1", 6381))),
        ("ASK 12 10.0.0.2:7000", ("ASK", 12, ("10.0.0.2", 7000))),
        ("ERR wrong", None),
        ("CLUSTERDOWN The cluster is down", None),
    ],
)
def test_parse_redirect(message: str, parsed: Any) -> None:
    assert parse_redirect(message) == parsed


def test_parse_slots_uses_the_reached_host_for_an_empty_one() -> None:
    reply = [[0, 99, [b"", 7000, b"id"]], [100, 16383, [b"10.0.0.2", 7001, b"id2"], [b"10.0.0.3", 7002]]]
    assert parse_slots(reply, "seed") == [(0, 99, ("seed", 7000), 0), (100, 16383, ("10.0.0.2", 7001), 1)]


# --- against a real cluster ------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = start_cluster(tmp_path_factory.mktemp("cluster"), masters=3)
    yield c
    c.stop()


_ids = itertools.count()


def _events(n: int, visitors: int = 40) -> list[bytes]:
    out = []
    for _ in range(n):
        i = next(_ids)
        visitor = None if i % 5 == 0 else f"v{i % visitors}"
        out.append(orjson.dumps({"v": 1, "id": f"e{i}", "visitor": visitor, "seq": i}))
    return out


def _read_all(cluster: Cluster, keys: list[str]) -> dict[str, list[dict[str, Any]]]:
    client = cluster.client()
    try:
        return {k: [orjson.loads(f[b"event"]) for _, f in client.xrange(k)] for k in keys}
    finally:
        client.close()


async def test_batches_go_to_their_shards_on_their_masters(cluster: Cluster) -> None:
    keys = shard_keys("t1:events", 3, cluster=True)
    wire = await connect_stream(cluster.url, keys, 2.0)
    assert isinstance(wire, ClusterWire)
    sent = _events(600)
    try:
        for i in range(0, 600, 100):
            await wire.xadd_many("t1:events", 10_000, sent[i : i + 100])
    finally:
        wire.close()
    stored = _read_all(cluster, keys)
    assert sorted(e["id"] for es in stored.values() for e in es) == sorted(orjson.loads(p)["id"] for p in sent)
    for shard, key in enumerate(keys):
        assert stored[key], "every shard gets events"
        seqs = [e["seq"] for e in stored[key]]
        assert seqs == sorted(seqs)  # order kept within a shard
        for e in stored[key]:
            if e["visitor"]:
                assert shard_of(e["visitor"].encode(), 3) == shard
    # The three shards live on the three masters.
    assert len({cluster.master_of(k).port for k in keys}) == 3


async def test_a_stale_slot_map_follows_moved(cluster: Cluster) -> None:
    keys = shard_keys("t2:events", 3, cluster=True)
    wire = await ClusterWire.connect(cluster.url, keys, 2.0)
    slot = key_slot(keys[0].encode())
    right = cluster.master_of(keys[0])
    wrong = next(m for m in cluster.masters if m.port != right.port)
    wire._owner[slot] = ("127.0.0.1", wrong.port)  # as if the slot had moved since
    try:
        await wire.xadd_many("t2:events", 10_000, _events(50, visitors=1))
        assert wire._owner[slot] == ("127.0.0.1", right.port)
        await wire.xadd_many("t2:events", 10_000, _events(50, visitors=1))
    finally:
        wire.close()
    stored = _read_all(cluster, keys)
    assert sum(len(v) for v in stored.values()) == 100


async def test_a_migrating_slot_follows_ask(cluster: Cluster) -> None:
    keys = shard_keys("t3:events", 3, cluster=True)
    slot = key_slot(keys[1].encode())
    source = cluster.master_of(keys[1])
    target = next(m for m in cluster.masters if m.port != source.port)
    sid = source.client().execute_command("CLUSTER MYID")
    tid = target.client().execute_command("CLUSTER MYID")
    target.client().execute_command("CLUSTER SETSLOT", slot, "IMPORTING", sid)
    source.client().execute_command("CLUSTER SETSLOT", slot, "MIGRATING", tid)
    wire = await ClusterWire.connect(cluster.url, keys, 2.0)
    try:
        # The key does not exist on the source yet: the source answers ASK.
        sent = [p for p in _events(200, visitors=1) if orjson.loads(p)["visitor"]]  # shard of v0
        assert shard_of(b"v0", 3) == 1
        await wire.xadd_many("t3:events", 10_000, sent)
    finally:
        wire.close()
        for node in cluster.masters:
            node.client().execute_command("CLUSTER SETSLOT", slot, "NODE", tid)
    cluster.wait_ok()
    assert len(_read_all(cluster, [keys[1]])[keys[1]]) == len(sent) > 0


async def test_shards_on_one_plain_node(redis_server: Any) -> None:
    keys = shard_keys(KEY, 4)
    wire = await connect_stream(redis_server.url, keys, 2.0)
    assert isinstance(wire, ClusterWire)
    try:
        await wire.xadd_many(KEY, 1000, _events(200))
    finally:
        wire.close()
    import redis

    client = redis.Redis.from_url(redis_server.url)
    assert [client.xlen(k) > 0 for k in keys] == [True] * 4
    assert sum(client.xlen(k) for k in keys) == 200
    assert not client.exists(KEY)


async def test_one_shard_on_one_node_is_the_plain_wire(redis_server: Any) -> None:
    wire = await connect_stream(redis_server.url, [KEY], 2.0)
    assert isinstance(wire, RedisWire)
    wire.close()


async def test_no_reachable_seed_is_a_wire_error() -> None:
    from proxy.stream.embedded import free_port

    with pytest.raises(WireError):
        await ClusterWire.connect(f"redis-cluster://127.0.0.1:{free_port()}", [KEY], 0.5)


# --- failover ----------------------------------------------------------------------------


@pytest.fixture
def replicated(tmp_path: Path) -> Iterator[Cluster]:
    c = start_cluster(tmp_path / "replicated", masters=3, replicas=1)
    yield c
    c.stop()


async def test_a_master_killed_mid_traffic_fails_over_and_nothing_is_lost(
    replicated: Cluster, tmp_path: Path
) -> None:
    keys = shard_keys(KEY, 3, cluster=True)
    metrics = ProxyMetrics()
    settings = PublisherSettings(
        buffer_size=50_000, batch_size=50, flush_interval_ms=5.0, redis_timeout_seconds=0.5,
        spool_max_bytes=50 << 20, spool_segment_bytes=1 << 20,
    )  # fmt: skip

    async def prepare(items: list[bytes]) -> list[bytes]:
        return items

    pub: Publisher[bytes] = Publisher(
        redis_url=replicated.url, stream_key=KEY, maxlen=1_000_000, settings=settings,
        spool_dir=tmp_path / "spool", metrics=metrics, prepare=prepare,
        connect=lambda: connect_stream(replicated.url, keys, 0.5, wait_replicas=1),
    )  # fmt: skip
    await pub.start()
    sent: list[bytes] = []
    victim = replicated.master_of(keys[0])
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 8.0
    killed = False
    while loop.time() < deadline:
        batch = _events(20)
        sent += batch
        for p in batch:
            pub.submit(p)
        await asyncio.sleep(0.01)
        if not killed and len(sent) >= 1000:
            victim.kill()  # mid-traffic; its replica takes over after the node timeout
            killed = True
    assert killed
    await loop.run_in_executor(None, replicated.wait_ok)
    # Let the publisher reconnect and replay the spool before closing.
    for _ in range(400):  # reconnect backoff is at most 5 s
        if pub.spooled and not pub._spool and pub._wire is not None:
            break
        await asyncio.sleep(0.05)
    await pub.close()
    assert pub.spooled > 0, "the outage must have been ridden out by the spool"
    assert pub.dropped == 0
    stored = _read_all(replicated, keys)
    got = {e["id"] for es in stored.values() for e in es}
    assert got == {orjson.loads(p)["id"] for p in sent}
    assert replicated.master_of(keys[0]).port != victim.port


async def test_footfall_tail_follows_every_shard(cluster: Cluster) -> None:
    keys = shard_keys(KEY, 3, cluster=True)
    sent = _events(60)
    wire = await connect_stream(cluster.url, keys, 2.0)
    try:
        await wire.xadd_many(KEY, 10_000, sent)
    finally:
        wire.close()
    env = {**os.environ, "FOOTFALL_REDIS_URL": cluster.url, "FOOTFALL_STREAM_SHARDS": "3"}
    result = await asyncio.get_running_loop().run_in_executor(None, lambda: subprocess.run(
        [sys.executable, "-m", "proxy.cli", "tail", "--from-start", "--count", "60"],
        cwd=ROOT, env=env, capture_output=True, timeout=30, check=False,
    ))  # fmt: skip
    assert result.returncode == 0, result.stderr
    got = [orjson.loads(line)["id"] for line in result.stdout.splitlines()]
    assert sorted(got) == sorted(orjson.loads(p)["id"] for p in sent)
