"""The analytics sink: aggregate a batch in Python, apply it and XACK in one Lua call.

Exactly-once: the script checks the batch's event ids against the applied-ids
sets first and writes nothing when some were already applied (a proxy retry, or
a consumer that claimed the same entries); we drop those and run it again. The
aggregates, the session state, the applied ids and the XACK then change in one
atomic script, so a crash before it loses nothing (the entries stay pending and
are claimed again) and a crash after it counts nothing twice.

The sink is staged (:class:`collectors.runtime.StagedSink`): :meth:`prepare` is
pure CPU (aggregate, pack the EVALSHA with hiredis), :meth:`send` writes it on a
connection of its own and returns the reply to await, so the runtime aggregates
the next batch while Redis runs this one's script.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hiredis
import orjson
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from collectors.analytics.aggregate import aggregate
from collectors.analytics.keys import prefix_for
from collectors.analytics.matcher import Matcher
from collectors.events import Event
from collectors.settings import CollectorSettings

log = logging.getLogger(__name__)

APPLY_LUA = (Path(__file__).with_name("apply.lua")).read_text()
APPLY_SHA = hashlib.sha1(APPLY_LUA.encode()).hexdigest()


@dataclass(slots=True)
class Staged:
    """A batch ready to send: its unique events, acks, and the packed EVALSHA."""

    unique: dict[str, Event]
    acks: list[str]
    packed: bytes


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

    def prepare(self, batch: list[tuple[str, Event]], acks: list[str]) -> Staged:
        """Aggregate ``batch`` and pack its script call (no I/O)."""
        unique: dict[str, Event] = {}
        for _, event in batch:
            unique.setdefault(event["id"], event)
        return Staged(unique, acks, self._pack(unique, acks))

    def _pack(self, unique: dict[str, Event], acks: list[str]) -> bytes:
        events = list(unique.values())
        delta = aggregate(
            events, self.matcher, self.prefix, self.retention, self.settings.session_ttl_seconds
        )
        ids = [f"{int(e['ts'] // 3600)}|{e['id']}" for e in events]
        args: Any = (
            "EVALSHA", APPLY_SHA, 2, self.stream_key, f"{self.prefix}seen:",
            self.group, self.settings.dedupe_window_seconds, orjson.dumps(delta.header),
            len(ids), len(acks), delta.groups, *ids, *acks, *delta.flat,
        )  # fmt: skip
        packed: bytes = hiredis.pack_command(args)
        return packed

    async def send(self, staged: Staged) -> Coroutine[Any, Any, int]:
        """Write the script call; the returned coroutine awaits its reply and returns
        the number of events newly applied. Await it before the next :meth:`send`."""
        pool: Any = self.redis.connection_pool
        conn = await pool.get_connection()
        try:
            await conn.send_packed_command(staged.packed, check_health=False)
        except BaseException:
            await conn.disconnect()
            await pool.release(conn)
            raise
        return self._finish(conn, staged)

    async def _finish(self, conn: Any, staged: Staged) -> int:
        pool: Any = self.redis.connection_pool
        try:
            reply: Any = await conn.read_response()
        except NoScriptError:
            await pool.release(conn)
            return await self._again(staged, retries=3)
        except BaseException:
            await conn.disconnect()  # the reply may still be on its way: do not reuse
            await pool.release(conn)
            raise
        await pool.release(conn)
        return await self._settle(staged, reply, retries=3)

    async def _settle(self, staged: Staged, reply: Any, retries: int) -> int:
        if int(reply[0]) == 1:
            return len(staged.unique)
        if retries == 0:
            raise RuntimeError("batch kept colliding with concurrent applies")
        # Some ids were applied meanwhile (proxy retries, or a consumer that claimed
        # the same entries): nothing was written; drop them and run again.
        dups = {d.decode() if isinstance(d, bytes) else d for d in reply[1:]}
        log.info("skipping %d already applied events", len(dups))
        for d in dups:
            staged.unique.pop(d, None)
        staged.packed = self._pack(staged.unique, staged.acks)
        return await self._again(staged, retries - 1)

    async def _again(self, staged: Staged, retries: int) -> int:
        try:
            reply = await self._roundtrip(staged)
        except NoScriptError:  # a new or restarted Redis, or SCRIPT FLUSH
            await self.redis.script_load(APPLY_LUA)
            reply = await self._roundtrip(staged)
        return await self._settle(staged, reply, retries)

    async def _roundtrip(self, staged: Staged) -> Any:
        pool: Any = self.redis.connection_pool
        conn = await pool.get_connection()
        try:
            await conn.send_packed_command(staged.packed, check_health=False)
            reply = await conn.read_response()
        except BaseException:
            await conn.disconnect()
            raise
        finally:
            await pool.release(conn)
        return reply

    async def apply(self, batch: list[tuple[str, Event]], acks: list[str]) -> int:
        """Apply ``batch`` (entry id, event) and XACK ``acks``; return events newly applied
        (the rest were duplicates of applied event ids)."""
        staged = self.prepare(batch, acks)
        return await (await self.send(staged))
