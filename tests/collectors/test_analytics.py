"""Analytics end to end on a real Redis: events in the stream → exact numbers from Query."""

from __future__ import annotations

import redis.asyncio as aioredis

from tests.collectors.conftest import ServiceFactory, drained
from tests.collectors.factory import T0, event, google_ad, xadd_events
from tests.collectors.population import SITE, population

START, END = int(T0), int(T0) + 3600


async def test_population_totals_breakdowns_goals_funnel(
    redis_client: aioredis.Redis, start_service: ServiceFactory
) -> None:
    await xadd_events(redis_client, population())
    # Small batches: sessions, goals and funnels span several atomic applies.
    service = await start_service(frozenset({"analytics"}), batch_size=3)
    await drained(redis_client, ("analytics",))
    q = service.query

    assert await q.stats(SITE, START, END) == {
        "pageviews": 10, "visitors": 3, "sessions": 4, "bounce_rate": 0.25,
        "views_per_session": 2.5, "avg_session_seconds": 285.0,
        "requests": 2, "errors": 1, "bot_hits": 2,
    }  # fmt: skip
    # A minute-bucket cover: [T0, T0+2min) holds A's / and /cart, B's / and C's first post.
    assert (await q.stats(SITE, START, START + 120))["pageviews"] == 4

    # Acquisition is session-scoped: A's four pageviews (one tagged "Internal", two
    # Direct) all count under A's first touch, Paid Search; B's two sessions are Direct.
    channels = {r["value"]: r for r in await q.breakdown(SITE, START, END, "channel", 10)}
    assert channels["Direct"] == {"value": "Direct", "pageviews": 3, "visitors": 1, "sessions": 2}
    assert channels["Paid Search"] == {"value": "Paid Search", "pageviews": 4, "visitors": 1,
                                       "sessions": 1}  # fmt: skip
    assert "Internal" not in channels  # not a first touch
    assert channels["Organic Social"]["pageviews"] == 3

    entry = await q.breakdown(SITE, START, END, "entry_page", 10)
    assert [(r["value"], r["sessions"], r["converted_sessions"]) for r in entry] == [
        ("/", 2, 1), ("/blog/{slug}", 1, 0), ("/pricing", 1, 1),
    ]  # fmt: skip
    exits = {r["value"]: r["sessions"] for r in await q.breakdown(SITE, START, END, "exit_page", 10)}
    assert exits == {"/thank-you": 1, "/": 1, "/cart": 1, "/blog/{slug}": 1}
    pages = {r["value"]: r for r in await q.breakdown(SITE, START, END, "page", 2)}
    assert list(pages) == ["/blog/{slug}", "/"]  # top 2 by pageviews, then by name
    assert pages["/blog/{slug}"]["visitors"] == 1
    devices = {r["value"]: r["visitors"] for r in await q.breakdown(SITE, START, END, "device", 5)}
    assert devices == {"desktop": 2, "mobile": 1}
    sources = {r["value"]: r["sessions"]
               for r in await q.breakdown(SITE, START, END, "referrer_source", 5)}  # fmt: skip
    assert sources == {"(none)": 2, "Google": 1, "Facebook": 1}

    goals = {g["goal"]: g for g in await q.goals(SITE, START, END)}
    buy = goals["buy"]
    assert (buy["conversions"], buy["converters"], buy["conversion_rate"]) == (1, 1, 0.3333)
    # First-touch attribution: the POST itself came in as Direct with no campaign.
    assert buy["by_channel"] == [{"value": "Paid Search", "conversions": 1,
                                  "converted_sessions": 1, "sessions": 1, "conversion_rate": 1.0}]  # fmt: skip
    assert [r["value"] for r in buy["by_campaign"]] == ["spring"]
    assert goals["pricing"]["conversions"] == 1
    assert goals["pricing"]["by_channel"][0]["value"] == "Direct"

    funnel = await q.funnel(SITE, START, END, "checkout")
    assert [s["sessions"] for s in funnel["steps"]] == [2, 1, 1]
    assert funnel["steps"][1]["rate_from_start"] == 0.5

    perf = {r["value"]: r for r in await q.performance(SITE, START, END, "page", 10)}
    blog = perf["/blog/{slug}"]
    assert blog["pageviews"] == 3
    assert blog["error_rate"] == 0.3333
    assert 92 <= blog["p50_ms"] <= 108
    assert (blog["sessions"], blog["conversion_rate"]) == (1, 0.0)
    assert (perf["/"]["sessions"], perf["/"]["conversion_rate"]) == (2, 0.5)
    assert 9 <= perf["/"]["p50_ms"] <= 11 and 37 <= perf["/"]["p95_ms"] <= 43
    campaigns = {r["value"]: r for r in await q.performance(SITE, START, END, "utm_campaign", 5)}
    assert campaigns["spring"]["conversion_rate"] == 1.0

    series = await q.timeseries(SITE, START, START + 600, "m")
    assert len(series) == 10
    assert [p["pageviews"] for p in series[:3]] == [3, 1, 2]


async def test_replayed_and_duplicated_events_count_once(
    redis_client: aioredis.Redis, start_service: ServiceFactory
) -> None:
    events = population()
    await xadd_events(redis_client, events)
    await xadd_events(redis_client, events[:5])  # the proxy's at-least-once retries
    service = await start_service(frozenset({"analytics"}), batch_size=4)
    await drained(redis_client, ("analytics",))
    await xadd_events(redis_client, events[5:])  # later duplicates, in a separate apply
    await drained(redis_client, ("analytics",))
    stats = await service.query.stats(SITE, START, END)
    assert (stats["pageviews"], stats["sessions"], stats["bounce_rate"]) == (10, 4, 0.25)
    duplicates = service.registry.get_sample_value(
        "footfall_collector_events_duplicate_total", {"group": "analytics"})  # fmt: skip
    assert duplicates == 5 + len(events[5:])


async def test_current_visitors_and_sessionless_pageviews(
    redis_client: aioredis.Redis, start_service: ServiceFactory
) -> None:
    import time

    now = time.time()
    await xadd_events(redis_client, [
        event(ts=now - 10, visitor="x1", session="y1"),
        event(ts=now - 20, visitor="x2", session="y2"),
        event(ts=now - 400, visitor="x3", session="y3"),  # outside the 5-minute window
        event(ts=now - 5, visitor=None, session=None, consent="denied"),
    ])  # fmt: skip
    service = await start_service(frozenset({"analytics"}))
    await drained(redis_client, ("analytics",))
    assert await service.query.current_visitors(SITE, now) == 2
    stats = await service.query.stats(SITE, int(now) - 3600, int(now) + 60)
    assert (stats["pageviews"], stats["visitors"], stats["sessions"]) == (4, 3, 3)


async def test_every_key_written_expires(redis_client: aioredis.Redis, start_service: ServiceFactory) -> None:
    """EXPIREAT is skipped when a write created nothing; no key may be left without a TTL."""
    await xadd_events(redis_client, population())
    await xadd_events(redis_client, population())  # new ids, same keys: the skip path
    await start_service(frozenset({"analytics"}), batch_size=3)
    await drained(redis_client, ("analytics",))
    keys = [k async for k in redis_client.scan_iter("footfall:a:*")]
    assert len(keys) > 100
    async with redis_client.pipeline(transaction=False) as pipe:
        for k in keys:
            pipe.ttl(k)
        ttls = await pipe.execute()
    assert [k for k, t in zip(keys, ttls, strict=True) if t <= 0] == []


async def test_session_state_left_as_a_hash_by_an_earlier_version(
    redis_client: aioredis.Redis, start_service: ServiceFactory
) -> None:
    """Session state was a hash; a session in progress at the upgrade continues it
    (not a new session) under its stored first touch, and is rewritten as a string."""
    key = f"footfall:a:{SITE}:s:s-old"
    await redis_client.hset(key, mapping={"st": T0, "lt": T0, "n": 1, "xp": "/", "ep": "/",
                                          "ch": "Paid Search", "cp": "spring"})  # fmt: skip
    await redis_client.expire(key, 7200)
    await xadd_events(redis_client, [event(ts=T0 + 60, path="/cart", session="s-old")])
    service = await start_service(frozenset({"analytics"}))
    await drained(redis_client, ("analytics",))
    channels = await service.query.breakdown(SITE, START, END, "channel", 10)
    assert [(r["value"], r["pageviews"], r["sessions"]) for r in channels] == [("Paid Search", 1, 0)]
    campaigns = await service.query.breakdown(SITE, START, END, "utm_campaign", 10)
    assert [(r["value"], r["pageviews"]) for r in campaigns] == [("spring", 1)]
    assert await redis_client.type(key) == b"string"


async def test_session_visitor_counted_in_every_bucket_it_reaches(
    redis_client: aioredis.Redis, start_service: ServiceFactory
) -> None:
    """The script adds a session's visitor once per bucket (noted in the session state):
    a session crossing an hour, in batches of one, counts its visitor in both hours,
    under its first touch."""
    await xadd_events(redis_client, [
        google_ad(ts=T0 + 3000, visitor="vX", session="sX"),
        event(ts=T0 + 3300, path="/a", visitor="vX", session="sX"),  # same buckets: skipped
        event(ts=T0 + 3610, path="/b", visitor="vX", session="sX"),  # the next hour
    ])  # fmt: skip
    service = await start_service(frozenset({"analytics"}), batch_size=1)
    await drained(redis_client, ("analytics",))
    q = service.query
    for start, end, pageviews in ((START, END, 2), (END, END + 3600, 1), (START, END + 3600, 3)):
        assert (await q.stats(SITE, start, end))["visitors"] == 1, (start, end)
        rows = await q.breakdown(SITE, start, end, "channel", 5)
        assert [(r["value"], r["pageviews"], r["visitors"]) for r in rows] == [("Paid Search", pageviews, 1)]
        rows = await q.breakdown(SITE, start, end, "utm_campaign", 5)
        assert [(r["value"], r["visitors"]) for r in rows] == [("spring", 1)]
    minute = await q.stats(SITE, int(T0) + 3300, int(T0) + 3360)
    assert (minute["pageviews"], minute["visitors"]) == (1, 1)
