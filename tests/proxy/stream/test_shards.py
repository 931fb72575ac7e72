"""Shard keys and visitor routing (pure)."""

from __future__ import annotations

from collections import Counter

import orjson
import pytest
from redis.crc import key_slot

from proxy.stream.shards import SLOTS, Router, shard_keys, shard_of, shard_tag, visitor_of


def test_one_shard_on_one_node_is_todays_key() -> None:
    assert shard_keys("footfall:events", 1) == ["footfall:events"]


def test_one_shard_on_a_cluster_is_hash_tagged() -> None:
    (key,) = shard_keys("footfall:events", 1, cluster=True)
    assert key.startswith("footfall:events:{") and key.endswith("}")
    # Companion keys share the shard's slot (dead letters, leases).
    assert key_slot(f"{key}:dead".encode()) == key_slot(key.encode())
    assert key_slot(f"{key}:lease:performance".encode()) == key_slot(key.encode())


@pytest.mark.parametrize("count", [2, 3, 4, 6, 9, 12, 16, 64])
def test_shards_fill_equal_slot_ranges(count: int) -> None:
    keys = shard_keys("footfall:events", count)
    assert len(set(keys)) == count
    for i, key in enumerate(keys):
        slot = key_slot(key.encode())
        assert i * SLOTS // count <= slot < (i + 1) * SLOTS // count


@pytest.mark.parametrize(("masters", "shards"), [(3, 3), (3, 6), (3, 12), (2, 4), (6, 12)])
def test_shards_spread_evenly_over_masters_of_an_even_cluster(masters: int, shards: int) -> None:
    # redis-cli --cluster create gives master m the slots [m*S/M, (m+1)*S/M).
    owner = [key_slot(k.encode()) * masters // SLOTS for k in shard_keys("p:events", shards)]
    assert Counter(owner) == {m: shards // masters for m in range(masters)}


def test_shard_tag_is_stable() -> None:
    # Proxies and collectors of different versions must agree: the keys are a contract.
    assert [shard_tag(i, 3) for i in range(3)] == [shard_tag(i, 3) for i in range(3)]
    with pytest.raises(ValueError, match="out of range"):
        shard_tag(3, 3)


def _event(visitor: str | None, **extra: object) -> bytes:
    return orjson.dumps({"v": 1, "id": "x", "query": extra.pop("query", {}), "visitor": visitor, **extra})


@pytest.mark.parametrize(
    ("payload", "visitor"),
    [
        (_event("abc123"), b"abc123"),
        (_event(None), None),
        (b'{"v":1,"id":"x"}', None),
        (_event("v9", query={"visitor": "spoof"}), b"v9"),  # a query key of that name
        (_event(None, query={"visitor": "spoof"}), None),
        (_event("v9", props={"visitor": "p"}), b"v9"),
        (_event("", query={}), None),
        (_event('a"b', query={"visitor": "q"}), b'a"b'),
    ],
)
def test_visitor_of(payload: bytes, visitor: bytes | None) -> None:
    assert visitor_of(payload) == visitor


def test_router_keeps_a_visitors_events_together_and_in_order() -> None:
    keys = shard_keys("footfall:events", 4)
    router = Router(keys)
    payloads = [_event(f"visitor-{i % 50}", seq=i) for i in range(1000)]
    split = router.split(payloads)
    assert sorted(p for group in split.values() for p in group) == sorted(payloads)
    for key, group in split.items():
        seqs = [orjson.loads(p)["seq"] for p in group]
        assert seqs == sorted(seqs)
        for p in group:
            assert keys.index(key) == shard_of(orjson.loads(p)["visitor"].encode(), 4)


def test_router_spreads_events_without_visitor_evenly() -> None:
    router = Router(shard_keys("footfall:events", 3))
    split = router.split([_event(None, seq=i) for i in range(300)])
    assert sorted(len(v) for v in split.values()) == [100, 100, 100]


def test_visitors_spread_over_shards() -> None:
    counts = Counter(shard_of(f"{i:032x}".encode(), 3) for i in range(30_000))
    assert all(9_000 < n < 11_000 for n in counts.values())


def test_single_shard_router_passes_the_batch_through() -> None:
    payloads = [_event("a"), _event(None)]
    assert Router(["footfall:events"]).split(payloads) == {"footfall:events": payloads}
