"""Shard keys of the event stream and the visitor → shard routing (pure).

One logical stream is N Redis Stream keys. With N = 1 on a single Redis node
the key is today's ``<prefix>:events``: nothing changes for single-node users.
Otherwise shard ``i`` is ``<prefix>:events:{tag_i}``; the hash tag decides the
key's Redis Cluster slot (CRC16 of the tag, mod 16384), and ``tag_i`` is the
first candidate whose slot lies in the ``i``-th of N equal slot ranges. A
cluster made with ``redis-cli --cluster create`` gives each master an equal,
contiguous range of slots, so N shards (a multiple of the number of masters)
spread evenly over the masters. Proxy and collectors compute the same keys
from the same settings; nothing is stored.

Each shard key's companions (``:dead``, leases) append to it and keep its hash
tag, so they live in the same slot and can share a transaction or a script.

Routing: an event goes to the shard of its visitor (CRC32 of the visitor id,
mod N) so one visitor's events stay ordered in one stream; events without a
visitor (no consent, bots without cookies) are spread round-robin.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Iterator

import orjson
from redis.crc import key_slot

SLOTS = 16384
MAX_SHARDS = 1024
_KEY = b'"visitor":'


def shard_tag(index: int, count: int) -> str:
    """The hash tag of shard ``index`` of ``count``: its slot lies in the index-th slot range."""
    if not 0 <= index < count <= MAX_SHARDS:
        raise ValueError(f"shard {index} of {count}: out of range")
    low = index * SLOTS // count
    high = (index + 1) * SLOTS // count
    for j in itertools.count():
        tag = f"s{index}.{j}"
        if low <= key_slot(tag.encode()) < high:
            return tag
    raise AssertionError("unreachable")  # pragma: no cover


def shard_keys(stream_key: str, count: int, *, cluster: bool = False) -> list[str]:
    """The ``count`` stream keys of the logical stream ``stream_key``, shard 0 first.

    A single shard on a single node is ``stream_key`` itself; on a cluster it
    is hash-tagged too, so its companion keys share its slot.
    """
    if count == 1 and not cluster:
        return [stream_key]
    return [f"{stream_key}:{{{shard_tag(i, count)}}}" for i in range(count)]


def visitor_of(payload: bytes) -> bytes | None:
    """The visitor id of an encoded event v1, or None when it has none.

    Found by its key with one scan rather than by parsing a ~1 KB event: inside
    a JSON string a quote is always escaped, so ``"visitor":`` occurs only as a
    key. When it occurs more than once (a nested ``query`` or ``props`` key of
    that name) the payload is parsed instead.
    """
    start = payload.find(_KEY)
    if start < 0:
        return None
    start += len(_KEY)
    if payload.find(_KEY, start) >= 0:
        try:
            value = orjson.loads(payload).get("visitor")
        except (orjson.JSONDecodeError, AttributeError):
            return None
        return value.encode() if isinstance(value, str) and value else None
    if payload[start : start + 1] != b'"':
        return None  # null
    end = payload.find(b'"', start + 1)
    return payload[start + 1 : end] if end > start + 1 else None


def shard_of(visitor: bytes, count: int) -> int:
    """The shard of a visitor id: stable across processes, hosts and restarts."""
    return zlib.crc32(visitor) % count


class Router:
    """Splits a batch of encoded events by shard, keeping their order within each shard."""

    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("a stream has at least one shard")
        self.keys = keys
        self._spread: Iterator[int] = itertools.cycle(range(len(keys)))

    def split(self, payloads: list[bytes]) -> dict[str, list[bytes]]:
        """``{shard key: payloads}``; every payload appears exactly once."""
        keys = self.keys
        if len(keys) == 1:
            return {keys[0]: payloads}
        count = len(keys)
        out: dict[str, list[bytes]] = {}
        for p in payloads:
            visitor = visitor_of(p)
            i = shard_of(visitor, count) if visitor else next(self._spread)
            out.setdefault(keys[i], []).append(p)
        return out
