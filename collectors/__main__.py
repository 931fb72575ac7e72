"""``python -m collectors REDIS_URL [analytics|performance|all] [HOST:PORT]``.

A bare entry point for running collectors without the ``footfall`` CLI (used by
the crash test to run a collector it can SIGKILL); settings are the defaults
plus ``FOOTFALL_COLLECTOR_CLAIM_IDLE_MS`` and ``FOOTFALL_COLLECTOR_BATCH_SIZE``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys

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
    if errors:
        sys.exit("\n".join(errors))
    kinds = frozenset({"analytics", "performance"} if which == "all" else {which})
    logging.basicConfig(level=logging.INFO)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(url, "footfall:events", settings, kinds, host, int(port)))


if __name__ == "__main__":
    main(sys.argv[1:])
