"""``python -m tests.collectors.analytics.crash_loader REDIS_URL DATA_DIR N``: run the real
analytics loader on the real embedded store and SIGKILL this process right after the
N-th batch is inserted, before its XACK (the loader's one crash window)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from collectors.analytics.config import StoreSettings
from collectors.analytics.loader import StoreLoader
from collectors.analytics.store import open_store
from collectors.runtime import Consumer
from collectors.runtime_metrics import RuntimeMetrics
from collectors.settings import CollectorSettings

STREAM = "footfall:events"


class CrashingLoader(StoreLoader):
    crash_at = 0
    batches = 0

    async def ack(self, acks: list[str]) -> None:
        self.batches += 1
        if self.batches == self.crash_at:
            print(f"inserted {len(acks)}, killed before XACK", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        await super().ack(acks)


async def main(url: str, data_dir: str, crash_at: int) -> None:
    store = open_store(StoreSettings(batch_size=1000, flush_seconds=0.2), data_dir)
    redis = aioredis.Redis.from_url(url)
    loader = CrashingLoader(redis, STREAM, store)
    loader.crash_at = crash_at
    consumer = Consumer(redis, STREAM, loader, CollectorSettings(block_ms=100), "doomed",
                        RuntimeMetrics(CollectorRegistry()))  # fmt: skip
    await consumer.run()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
