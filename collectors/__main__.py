"""``python -m collectors REDIS_URL [analytics|performance|all] [HOST:PORT]``.

A bare entry point for running collectors without the ``footfall`` CLI (used by
the crash test to run a collector it can SIGKILL); settings are the defaults
plus ``FOOTFALL_COLLECTOR_CLAIM_IDLE_MS`` and ``FOOTFALL_COLLECTOR_BATCH_SIZE``; the
store is ``FOOTFALL_DATA_DIR`` (default ``./footfall-data``) or ``FOOTFALL_STORE_URL``,
with ``FOOTFALL_STORE_BATCH_SIZE`` and ``FOOTFALL_STORE_FLUSH_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys

from collectors.analytics import config
from collectors.service import serve
from collectors.settings import parse


def main(argv: list[str]) -> None:
    url = argv[0]
    which = argv[1] if len(argv) > 1 else "all"
    host, _, port = (argv[2] if len(argv) > 2 else "127.0.0.1:9109").rpartition(":")
    raw = {}
    for key in ("claim_idle_ms", "batch_size"):
        env = os.environ.get(f"FOOTFALL_COLLECTOR_{key.upper()}")
        if env:
            raw[key] = int(env)
    errors: list[str] = []
    settings = parse(raw, errors)
    store_raw = {key: os.environ[f"FOOTFALL_STORE_{key.upper()}"]
                 for key in ("url", "batch_size", "flush_seconds") if os.environ.get(f"FOOTFALL_STORE_{key.upper()}")}
    if "url" in store_raw:
        store_raw["store_url"] = store_raw.pop("url")
    store = config.parse(store_raw, errors)
    if errors:
        sys.exit("\n".join(errors))
    kinds = frozenset({"analytics", "performance"} if which == "all" else {which})
    logging.basicConfig(level=logging.INFO)
    with contextlib.suppress(KeyboardInterrupt):
        data_dir = os.environ.get("FOOTFALL_DATA_DIR", "./footfall-data")
        asyncio.run(serve(url, "footfall:events", settings, kinds, host, int(port),
                          store_settings=store, data_dir=data_dir))  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
