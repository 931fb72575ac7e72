"""The query API over real HTTP: parameters, 400s naming the parameter, JSON bodies."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web

from collectors.api import BadParam, parse_time
from proxy.stream.embedded import free_port
from tests.collectors.conftest import ServiceFactory, drained
from tests.collectors.factory import T0, xadd_events
from tests.collectors.population import SITE, population


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1700000000", 1700000000), ("1700000000.9", 1700000000),
     ("2023-11-14T22:13:20Z", 1700000000), ("2023-11-14T22:13:20", 1700000000),
     ("2023-11-14T23:13:20+01:00", 1700000000)],
)  # fmt: skip
def test_parse_time(value: str, expected: int) -> None:
    assert parse_time("from", value) == expected


def test_parse_time_rejects_garbage() -> None:
    with pytest.raises(BadParam, match=r"^from: not ISO 8601"):
        parse_time("from", "yesterday")


@pytest.fixture
async def api(redis_client: aioredis.Redis, start_service: ServiceFactory) -> AsyncIterator[str]:
    await xadd_events(redis_client, population())
    service = await start_service(frozenset({"analytics"}))
    await drained(redis_client, ("analytics",))
    app = web.Application()
    service.add_routes(app)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.mark.parametrize(
    ("path", "error"),
    [("/api/v1/stats?from=0&to=1", "site: required"),
     (f"/api/v1/stats?site={SITE}&from=tomorrow", "from: not ISO 8601"),
     (f"/api/v1/stats?site={SITE}&from=10&to=5", "from: must be before to"),
     (f"/api/v1/breakdown?site={SITE}&dimension=shoe", "dimension: must be one of"),
     (f"/api/v1/breakdown?site={SITE}&dimension=page&limit=0", "limit: must be an integer"),
     (f"/api/v1/timeseries?site={SITE}&interval=week", "interval: must be one of"),
     (f"/api/v1/timeseries?site={SITE}&metric=x", "metric: must be one of"),
     (f"/api/v1/timeseries?site={SITE}&interval=minute&from=0", "interval: more than"),
     (f"/api/v1/funnel?site={SITE}", "funnel: required"),
     (f"/api/v1/funnel?site={SITE}&steps=/a,/b", "steps: no configured funnel")],
)  # fmt: skip
async def test_bad_parameters_get_400_naming_them(api: str, path: str, error: str) -> None:
    async with aiohttp.ClientSession() as http, http.get(api + path) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"].startswith(error)


async def test_endpoints_answer_json(api: str) -> None:
    rng = f"site={SITE}&from={int(T0)}&to={int(T0) + 3600}"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{api}/api/v1/stats?{rng}") as resp:
            stats = await resp.json()
        assert (stats["pageviews"], stats["visitors"], stats["sessions"]) == (10, 3, 4)
        async with http.get(f"{api}/api/v1/breakdown?{rng}&dimension=utm_campaign&limit=1") as resp:
            assert (await resp.json())["results"][0]["value"] == "(none)"
        async with http.get(f"{api}/api/v1/timeseries?{rng}&interval=hour&metric=pageviews") as resp:
            assert (await resp.json())["results"] == [{"time": int(T0), "pageviews": 10}]
        async with http.get(f"{api}/api/v1/funnel?{rng}&steps=/cart,/checkout,/thank-you") as resp:
            assert [s["sessions"] for s in (await resp.json())["steps"]] == [2, 1, 1]
        async with http.get(f"{api}/api/v1/goals?{rng}") as resp:
            assert [g["goal"] for g in (await resp.json())["results"]] == ["buy", "pricing"]
        async with http.get(f"{api}/api/v1/pages/performance?{rng}") as resp:
            assert (await resp.json())["results"][0]["value"] == "/blog/{slug}"
        async with http.get(f"{api}/dashboard") as resp:
            assert resp.status == 200
            assert "/api/v1/stats" in await resp.text()
