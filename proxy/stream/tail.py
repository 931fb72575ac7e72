"""``footfall tail``: print events from the stream as JSON lines, as they arrive."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from proxy.settings import Settings
from proxy.stream.embedded import EmbeddedRedis


def _url(settings: Settings) -> str | None:
    if settings.redis.url:
        return settings.redis.url
    embedded = EmbeddedRedis(Path(settings.data_dir) / "redis")
    return embedded.url if embedded.alive() else None


async def tail(settings: Settings, *, from_start: bool = False, count: int = 0) -> int:
    """Follow ``footfall:events``; ``count`` > 0 exits after that many events."""
    url = _url(settings)
    if url is None:
        print(
            f"footfall tail: no embedded Redis is running in {settings.data_dir}; start "
            "`footfall proxy|run|demo` with the same --data-dir first, or pass --redis-url",
            file=sys.stderr,
        )
        return 1
    client = aioredis.Redis.from_url(url)
    key = settings.redis.stream_key
    last = "0-0" if from_start else "$"
    seen = 0
    out = sys.stdout.buffer
    try:
        while True:
            reply: Any = await client.xread({key: last}, count=500, block=1000)
            for _, entries in reply:
                for entry_id, fields in entries:
                    last = entry_id
                    out.write(fields.get(b"event", b"{}") + b"\n")
                    seen += 1
                    if count and seen >= count:
                        out.flush()
                        return 0
            out.flush()
    except RedisConnectionError as exc:
        print(f"footfall tail: lost the connection to Redis: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, BrokenPipeError):
        return 0
    finally:
        await client.aclose()
