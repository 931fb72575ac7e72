"""A collector process for the sharded-stream tests: one ShardedConsumer with a recording sink.

    python -m tests.collectors.shard_worker URL SHARDS GROUP NAME OUT [--hang]

Each applied event id is appended to OUT (one per line) right after its XACK.
``--hang`` never finishes its first batch (entries stay pending under NAME), so a
test can SIGKILL the process mid-batch. Lease TTL 1.5 s, claim_idle_ms 500.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

from collectors.events import Event
from collectors.runtime_metrics import RuntimeMetrics
from collectors.settings import CollectorSettings
from collectors.sharded import ShardedConsumer
from proxy.stream.clients import redis_client
from proxy.stream.shards import shard_keys

STREAM = "footfall:events"


class RecordingSink:
    def __init__(self, redis: Any, group: str, out: str, hang: bool) -> None:
        self.redis = redis
        self.group = group
        self.stream_key = STREAM
        self.out = out
        self.hang = hang

    async def apply(self, batch: list[tuple[str, Event]], acks: list[str]) -> int:
        if self.hang:
            with open(self.out + ".hung", "w") as fh:
                fh.write(f"{self.stream_key} {len(batch)}\n")
            await asyncio.Event().wait()
        await self.redis.xack(self.stream_key, self.group, *acks)
        with open(self.out, "a") as fh:
            fh.write("".join(f"{e['id']}\n" for _, e in batch))
        return len(batch)


async def main(url: str, shards: int, group: str, name: str, out: str, hang: bool) -> None:
    from prometheus_client import CollectorRegistry

    redis = redis_client(url, socket_timeout=5)
    keys = shard_keys(STREAM, shards, cluster=url.startswith("redis-cluster://"))
    settings = CollectorSettings(batch_size=50, block_ms=100, claim_idle_ms=500)
    consumer = ShardedConsumer(
        redis, STREAM, keys, RecordingSink(redis, group, out, hang), settings, name,
        RuntimeMetrics(CollectorRegistry()), lease_ttl_ms=1500,
    )  # fmt: skip
    await consumer.ensure_group()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, consumer.stop)
    open(out, "a").close()  # the test waits for this file: started
    await consumer.run()
    await redis.aclose()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    for arg in ("url", "shards", "group", "name", "out"):
        p.add_argument(arg)
    p.add_argument("--hang", action="store_true")
    a = p.parse_args()
    asyncio.run(main(a.url, int(a.shards), a.group, a.name, a.out, a.hang))
