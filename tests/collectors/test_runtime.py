"""The consumer-group runtime: dead letters, poison isolation, stop and resume.

The loader's real crash test is tests/collectors/analytics/test_loader.py."""

from __future__ import annotations

import redis.asyncio as aioredis

from collectors.analytics.store import Store
from tests.collectors.conftest import ServiceFactory, count, drained
from tests.collectors.factory import STREAM, T0, event, xadd_events


async def test_invalid_entries_go_to_the_dead_letter_stream(
    redis_client: aioredis.Redis, start_service: ServiceFactory, store: Store
) -> None:
    await redis_client.xadd(STREAM, {"event": b"{not json"})
    await redis_client.xadd(STREAM, {"event": b'{"v": 2, "id": "x"}'})
    await redis_client.xadd(STREAM, {"event": b'{"v": 1, "id": "x"}'})
    await redis_client.xadd(STREAM, {"other": b"1"})
    await xadd_events(redis_client, [event(ts=T0)])
    service = await start_service()
    await drained(redis_client, ("analytics", "performance"))
    dead = await redis_client.xrange(f"{STREAM}:dead")
    reasons = sorted((f[b"group"].decode(), f[b"reason"].decode()) for _, f in dead)
    expected = ["bad_json", "missing_fields", "missing_fields", "not_v1"]
    assert reasons == sorted([("analytics", r) for r in expected] +
                             [("performance", r) for r in expected])  # fmt: skip
    assert count(store) == 1
    value = service.registry.get_sample_value(
        "footfall_collector_events_dead_lettered_total", {"group": "analytics", "reason": "bad_json"})  # fmt: skip
    assert value == 1


async def test_a_poison_event_is_isolated_and_the_rest_applied(
    redis_client: aioredis.Redis, start_service: ServiceFactory, store: Store
) -> None:
    # A time far past DateTime64's range fails its batch's insert.
    await xadd_events(redis_client, [event(ts=T0, session="ok1"), event(ts=1e12, session="poison"),
                                     event(ts=T0, session="ok2", visitor="v2")])  # fmt: skip
    await start_service(frozenset({"analytics"}))
    await drained(redis_client, ("analytics",))
    assert count(store) == 2
    dead = await redis_client.xrange(f"{STREAM}:dead")
    assert [f[b"reason"] for _, f in dead] == [b"apply_error"]
    assert b'"poison"' in dead[0][1][b"event"]


async def test_stop_finishes_and_a_second_service_resumes(
    redis_client: aioredis.Redis, start_service: ServiceFactory, store: Store
) -> None:
    await xadd_events(redis_client, [event(ts=T0 + i, session=f"s{i}") for i in range(50)])
    first = await start_service(frozenset({"analytics"}), batch_size=10)
    await first.stop()
    assert not first.healthy
    await xadd_events(redis_client, [event(ts=T0 + 60 + i, session=f"t{i}") for i in range(50)])
    await start_service(frozenset({"analytics"}), consumer="c2", claim_idle_ms=100)
    await drained(redis_client, ("analytics",))
    assert count(store) == 100
    assert count(store, "kind = 'pageview'") == 100
