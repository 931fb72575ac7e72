from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis

from proxy.settings import IdentitySettings
from proxy.stream.embedded import EmbeddedRedis
from proxy.tracking.cookieless import (
    DAY,
    SALT_BYTES,
    CookielessHit,
    CookielessSessions,
    SaltStore,
    visitor_hash,
)

BEFORE_MIDNIGHT = datetime(2026, 11, 23, 23, 59, 50, tzinfo=UTC).timestamp()
AFTER_MIDNIGHT = datetime(2026, 11, 24, 0, 0, 10, tzinfo=UTC).timestamp()
NOON = datetime(2026, 11, 23, 12, 0, tzinfo=UTC).timestamp()
UA = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"


def hit(ts: float, ip: str = "203.0.113.7", ua: str = UA, pageview: bool = True) -> CookielessHit:
    return CookielessHit(ts=ts, site="shop.example", ip=ip, user_agent=ua, pageview=pageview)


def sessions(client: aioredis.Redis) -> CookielessSessions:
    return CookielessSessions(client, "ff", IdentitySettings(), SaltStore(client, "ff"))


@pytest.mark.parametrize(
    ("other", "same"),
    [
        ((b"s" * 16, "a.example", "1.2.3.4", "UA"), True),
        ((b"t" * 16, "a.example", "1.2.3.4", "UA"), False),
        ((b"s" * 16, "b.example", "1.2.3.4", "UA"), False),
        ((b"s" * 16, "a.example", "1.2.3.5", "UA"), False),
        ((b"s" * 16, "a.example", "1.2.3.4", "UA2"), False),
    ],
)
def test_visitor_hash(other: tuple[bytes, str, str, str], same: bool) -> None:
    base = visitor_hash(b"s" * 16, "a.example", "1.2.3.4", "UA")
    assert len(base) == 32
    assert int(base, 16) >= 0
    assert (visitor_hash(*other) == base) is same


async def test_salt_rotates_at_midnight_and_keeps_yesterday(redis_client: aioredis.Redis) -> None:
    store = SaltStore(redis_client, "ff")
    today, yesterday = await store.salts(BEFORE_MIDNIGHT)
    assert len(today) == SALT_BYTES
    assert yesterday is None
    assert await store.salts(BEFORE_MIDNIGHT - 3600) == (today, None)
    new_today, new_yesterday = await store.salts(AFTER_MIDNIGHT)
    assert new_yesterday == today
    assert new_today != today
    assert len(new_today) == SALT_BYTES
    ttl = await redis_client.ttl(store.key(int(AFTER_MIDNIGHT // DAY)))
    assert 47 * 3600 < ttl <= 49 * 3600


async def test_two_stores_agree(redis_client: aioredis.Redis, redis_server: EmbeddedRedis) -> None:
    other_client = aioredis.Redis.from_url(redis_server.url)
    try:
        stores = [SaltStore(redis_client, "ff"), SaltStore(other_client, "ff")] * 3
        results = await asyncio.gather(*(s.salts(NOON) for s in stores))
        assert len({r[0] for r in results}) == 1
    finally:
        await other_client.aclose()


async def test_salts_older_than_48_hours_are_deleted(redis_client: aioredis.Redis) -> None:
    store = SaltStore(redis_client, "ff")
    day0 = NOON - 2 * DAY
    first, _ = await store.salts(day0)
    await store.salts(day0 + DAY)
    assert await redis_client.exists(store.key(int(day0 // DAY))) == 1
    today, yesterday = await store.salts(NOON)
    assert await redis_client.exists(store.key(int(day0 // DAY))) == 0
    assert first not in (today, yesterday)
    assert yesterday is not None


async def test_garbage_salt_is_replaced(redis_client: aioredis.Redis) -> None:
    store = SaltStore(redis_client, "ff")
    await redis_client.set(store.key(int(NOON // DAY)), "not hex")
    today, _ = await store.salts(NOON)
    assert len(today) == SALT_BYTES
    assert await redis_client.get(store.key(int(NOON // DAY))) == today.hex().encode()


async def test_new_visitor_then_same_session(redis_client: aioredis.Redis) -> None:
    resolver = sessions(redis_client)
    first, second, other = await resolver.resolve(
        [hit(NOON), hit(NOON + 60, pageview=False), hit(NOON + 61, ip="198.51.100.1")]
    )
    assert first.new_visitor
    assert first.new_session
    assert first.visitor is not None
    assert first.session is not None
    assert first.set_cookies == ()
    assert first.consent == "granted"
    assert (second.visitor, second.session) == (first.visitor, first.session)
    assert not second.new_visitor
    assert not second.new_session
    assert other.new_visitor
    assert other.visitor != first.visitor
    assert other.session != first.session
    (later,) = await resolver.resolve([hit(NOON + 1800)])
    assert later.session == first.session  # idle measured from the last hit (NOON+60)
    assert not later.new_session


async def test_new_session_after_idle_gap(redis_client: aioredis.Redis) -> None:
    resolver = sessions(redis_client)
    (first,) = await resolver.resolve([hit(NOON)])
    (late,) = await resolver.resolve([hit(NOON + 1801)])
    assert late.new_session
    assert late.session != first.session
    assert not late.new_visitor
    assert late.visitor == first.visitor


async def test_session_continues_across_midnight(redis_client: aioredis.Redis) -> None:
    resolver = sessions(redis_client)
    (before,) = await resolver.resolve([hit(BEFORE_MIDNIGHT)])
    (after,) = await resolver.resolve([hit(AFTER_MIDNIGHT)])
    assert after.visitor != before.visitor  # the salt rotated
    assert after.session == before.session
    assert not after.new_session
    assert not after.new_visitor
    (again,) = await resolver.resolve([hit(AFTER_MIDNIGHT + 60)])
    assert again.session == before.session
    assert again.visitor == after.visitor


async def test_session_capped_at_max_duration(redis_client: aioredis.Redis) -> None:
    resolver = sessions(redis_client)
    start = NOON
    batch = [hit(start + n * 1500) for n in range(58)]  # 23 h 45 min of activity
    identities = await resolver.resolve(batch)
    assert {i.session for i in identities} == {identities[0].session}
    (capped,) = await resolver.resolve([hit(start + 58 * 1500)])  # 24 h 10 min
    assert capped.new_session
    assert capped.session != identities[0].session


async def test_degrades_when_redis_dies(
    redis_server: EmbeddedRedis, caplog: pytest.LogCaptureFixture
) -> None:
    client = aioredis.Redis.from_url(redis_server.url, socket_timeout=1.0)
    try:
        resolver = sessions(client)
        (alive,) = await resolver.resolve([hit(NOON)])
        redis_server.kill()
        with caplog.at_level(logging.WARNING, logger="proxy.tracking.cookieless"):
            first = await resolver.resolve([hit(NOON + 5), hit(NOON + 6, ip="198.51.100.1")])
            second = await resolver.resolve([hit(NOON + 7)])
        assert first[0].visitor == alive.visitor  # from the cached salt
        assert first[1].visitor not in (None, alive.visitor)
        assert [i.session for i in first + second] == [None, None, None]
        assert not any(i.new_session or i.new_visitor for i in first + second)
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        # a process with no cached salt cannot compute a visitor id
        (blind,) = await sessions(client).resolve([hit(NOON)])
        assert blind.visitor is None
        assert blind.session is None
    finally:
        await client.aclose()


async def test_recovers_after_restart(redis_server: EmbeddedRedis) -> None:
    client = aioredis.Redis.from_url(redis_server.url, socket_timeout=1.0)
    try:
        resolver = sessions(client)
        (before,) = await resolver.resolve([hit(NOON)])
        redis_server.kill()
        (during,) = await resolver.resolve([hit(NOON + 5)])
        assert during.session is None
        redis_server.start()
        (after,) = await resolver.resolve([hit(NOON + 10)])
        assert after.session == before.session  # AOF kept the session key
        assert after.visitor == before.visitor
    finally:
        await client.aclose()


async def test_empty_batch_does_no_io(redis_server: EmbeddedRedis) -> None:
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        redis_server.kill()
        assert await sessions(client).resolve([]) == []
    finally:
        await client.aclose()
