"""``footfall tail``: print events from the stream (every shard) as JSON lines, as they arrive."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError

from proxy.settings import Settings
from proxy.stream.clients import redis_client
from proxy.stream.embedded import EmbeddedRedis


async def _last_id(client: Any, key: str) -> Any:
    """The newest entry id of ``key`` ("0-0" when empty): what ``$`` means, fixed now."""
    newest: Any = await client.xrevrange(key, count=1)
    return newest[0][0] if newest else "0-0"


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
    client = redis_client(url)
    keys = settings.redis.shard_keys
    seen = 0
    out = sys.stdout.buffer
    try:
        # One key: block on it. Shards (possibly on several cluster nodes): poll each
        # from its own last id; events of different shards are not in time order.
        last: dict[str, Any] = {k: "0-0" if from_start else await _last_id(client, k) for k in keys}
        while True:
            got = 0
            for key in keys:
                block = 1000 if len(keys) == 1 else None
                reply: Any = await client.xread({key: last[key]}, count=500, block=block)
                for _, entries in reply or ():
                    for entry_id, fields in entries:
                        last[key] = entry_id
                        out.write(fields.get(b"event", b"{}") + b"\n")
                        seen += 1
                        got += 1
                        if count and seen >= count:
                            out.flush()
                            return 0
            out.flush()
            if not got and len(keys) > 1:
                await asyncio.sleep(0.2)
    except RedisConnectionError as exc:
        print(f"footfall tail: lost the connection to Redis: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, BrokenPipeError):
        return 0
    finally:
        await client.aclose()
