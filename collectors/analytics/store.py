"""The analytics sink: aggregate a batch in Python, apply it and XACK in one Lua call.

Exactly-once: the script checks the batch's event ids against the applied-ids
sets first and writes nothing when some were already applied (a proxy retry, or
a consumer that claimed the same entries); we drop those and run it again. The
aggregates, the session state, the applied ids and the XACK then change in one
atomic script, so a crash before it loses nothing (the entries stay pending and
are claimed again) and a crash after it counts nothing twice.
"""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
import redis.asyncio as aioredis

from collectors.analytics.aggregate import aggregate
from collectors.analytics.keys import prefix_for
from collectors.analytics.matcher import Matcher
from collectors.events import Event
from collectors.settings import CollectorSettings

log = logging.getLogger(__name__)

APPLY_LUA = (Path(__file__).with_name("apply.lua")).read_text()


class AnalyticsSink:
    """Consumer group ``analytics``: Redis aggregates for the query API."""

    group = "analytics"

    def __init__(self, redis: aioredis.Redis, stream_key: str, settings: CollectorSettings):
        self.redis = redis
        self.stream_key = stream_key
        self.settings = settings
        self.prefix = prefix_for(stream_key)
        self.matcher = Matcher(settings)
        self.retention = settings.retention_seconds()
        self._script = redis.register_script(APPLY_LUA)

    async def apply(self, batch: list[tuple[str, Event]], acks: list[str]) -> int:
        """Apply ``batch`` (entry id, event) and XACK ``acks``; return events newly applied
        (the rest were duplicates of applied event ids)."""
        unique: dict[str, Event] = {}
        for _, event in batch:
            unique.setdefault(event["id"], event)
        for _ in range(3):  # a retry only happens when ids were applied meanwhile
            events = list(unique.values())
            payload = aggregate(
                events, self.matcher, self.prefix, self.retention, self.settings.session_ttl_seconds
            )
            ids = [f"{int(e['ts'] // 3600)}|{e['id']}" for e in events]
            result = await self._script(
                keys=[self.stream_key, f"{self.prefix}seen:"],
                args=[
                    self.group, orjson.dumps(payload), self.settings.dedupe_window_seconds,
                    *ids, "--", *acks,
                ],
            )  # fmt: skip
            if int(result[0]) == 1:
                return len(events)
            dups = {d.decode() if isinstance(d, bytes) else d for d in result[1:]}
            log.info("skipping %d already applied events", len(dups))
            for d in dups:
                unique.pop(d, None)
        raise RuntimeError("batch kept colliding with concurrent applies")
