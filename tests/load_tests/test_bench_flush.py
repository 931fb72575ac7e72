"""The flush-stall benchmark runs the real flush task to a real Redis and counts right.
No timing is asserted: these machines are noisy."""

from __future__ import annotations

from pathlib import Path

import redis.asyncio as aioredis

import proxy.tracking.pipeline
from load_tests import bench_flush
from proxy.stream.embedded import EmbeddedRedis


async def test_one_run_publishes_every_event_and_restores_the_slice(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    default = proxy.tracking.pipeline.SLICE_KEEPING_UP
    result = await bench_flush.one_run(redis_server.url, tmp_path / "spool", 2000.0, 0.3, 0.0001)
    assert default == proxy.tracking.pipeline.SLICE_KEEPING_UP
    assert result["events"] >= 400
    assert result["published"] == result["events"]
    assert 0 < result["stall_p999_ms"] <= result["stall_max_ms"]
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        assert await client.xlen("footfall:events") == result["events"]
    finally:
        await client.aclose()
