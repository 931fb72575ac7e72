import redis.asyncio as aioredis

from proxy.stream.embedded import EmbeddedRedis


async def test_redis_fixture_is_real(redis_client: aioredis.Redis) -> None:
    await redis_client.xadd("s", {"event": b"{}"})
    assert await redis_client.xlen("s") == 1


async def test_embedded_unix_socket_is_shared(tmp_path) -> None:
    first = EmbeddedRedis(tmp_path).start()
    try:
        second = EmbeddedRedis(tmp_path).start()
        assert second.shared and second.url == first.url
        client = aioredis.Redis.from_url(first.url)
        assert await client.ping()
        await client.aclose()
    finally:
        first.stop()
