"""Shard leases: which consumer of a group reads which shard of a sharded stream.

Two kinds of keys, per consumer group:

- membership ``<stream>:consumers:<group>``: a sorted set of consumer names
  scored by the Redis-clock time their heartbeat expires. A heartbeat (one Lua
  script, using ``TIME`` so hosts' clocks do not matter) refreshes the caller,
  drops the expired and returns the live members;
- a lease per shard ``<shard key>:lease:<group>`` holding the owner's name with
  a TTL (``SET NX PX``), renewed and released only by its owner (compare-and-set
  scripts). It keeps the shard's hash tag, so it lives in the shard's slot.

Every consumer computes the same :func:`assignment` from the live members
(shard i → the i-th member modulo their number, names sorted) and then:
releases the leases of shards no longer assigned to it (after its reader has
stopped), renews the others, and takes the free leases of shards newly
assigned to it. A consumer reads a shard only while it holds that shard's
lease, so no shard is read by two consumers of one group at once; a consumer
that dies stops heartbeating and renewing, so within one TTL its shards are
assigned to and leased by the live ones: no shard is left unread.
"""

from __future__ import annotations

from typing import Any

_HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if ttl > 0 then
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ttl * 10)
else
  redis.call('ZREM', KEYS[1], ARGV[1])
end
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def members_key(stream_key: str, group: str) -> str:
    return f"{stream_key}:consumers:{group}"


def lease_key(shard_key: str, group: str) -> str:
    return f"{shard_key}:lease:{group}"


def assignment(shards: int, members: list[str], me: str) -> set[int]:
    """The shards ``me`` should read, given the live ``members`` (``me`` included or not).

    Shard i goes to the i-th of the sorted members, modulo their number: every
    shard has exactly one owner in a given view, and the shares differ by at
    most one.
    """
    live = sorted(set(members) | {me})
    rank = live.index(me)
    return {i for i in range(shards) if i % len(live) == rank}


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Leases:
    """The lease operations of one consumer (``name``) of one group. Any redis-py
    asyncio client works: ``Redis`` or ``RedisCluster`` (every script touches one key)."""

    def __init__(self, redis: Any, stream_key: str, group: str, name: str, ttl_ms: int) -> None:
        self.redis = redis
        self.group = group
        self.name = name
        self.ttl_ms = ttl_ms
        self._members = members_key(stream_key, group)
        self._heartbeat = redis.register_script(_HEARTBEAT)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    async def heartbeat(self) -> list[str]:
        """Announce this consumer for ``ttl_ms``; return the live members' names."""
        reply = await self._heartbeat(keys=[self._members], args=[self.name, self.ttl_ms])
        return [_s(m) for m in reply]

    async def leave(self) -> None:
        """Leave the membership at once (a clean stop), so the others rebalance now."""
        await self._heartbeat(keys=[self._members], args=[self.name, 0])

    async def acquire(self, shard_key: str) -> bool:
        """Take the lease if it is free (or already ours: then renew it)."""
        key = lease_key(shard_key, self.group)
        if await self.redis.set(key, self.name, nx=True, px=self.ttl_ms):
            return True
        return await self.renew(shard_key)

    async def renew(self, shard_key: str) -> bool:
        """Extend our lease by ``ttl_ms``; False when it is not ours (any more)."""
        return bool(await self._renew(keys=[lease_key(shard_key, self.group)], args=[self.name, self.ttl_ms]))

    async def release(self, shard_key: str) -> bool:
        """Give the lease up if it is ours."""
        return bool(await self._release(keys=[lease_key(shard_key, self.group)], args=[self.name]))

    async def owner(self, shard_key: str) -> str | None:
        value = await self.redis.get(lease_key(shard_key, self.group))
        return None if value is None else _s(value)
