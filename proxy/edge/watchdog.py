"""One coarse timer per process instead of timers per request.

aiohttp's per-request client timeouts arm and re-arm a loop timer on every read;
with one listener serving thousands of requests a second that bookkeeping costs
more than the deadlines are worth (measured: ~6 % of throughput). Deadlines of
tens of seconds do not need millisecond precision, so a single task wakes every
``tick`` seconds and enforces them all:

- the header phase of each client connection (``limits.header_timeout_seconds``):
  the connection gets 408 and is closed;
- each upstream exchange (``limits.upstream_read_timeout_seconds`` without
  progress: no response headers yet, or no body chunk since the last one): the
  handler's task is cancelled with the exchange marked expired, and the handler
  answers 504 (or cuts the connection if the body had already started).

It also publishes the in-flight gauge, so the hot path does not touch a lock.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from proxy.edge.guard import GuardedRequestHandler

log = logging.getLogger(__name__)


class Watch:
    """One upstream exchange under watch. The forwarder bumps ``since`` on progress."""

    __slots__ = ("expired", "since", "task")

    def __init__(self, task: asyncio.Task[Any], since: float) -> None:
        self.task = task
        self.since = since
        self.expired = False


class Watchdog:
    def __init__(
        self,
        *,
        header_timeout: float,
        upstream_timeout: float,
        in_flight_gauge: Any = None,
    ) -> None:
        self.header_timeout = header_timeout
        self.upstream_timeout = upstream_timeout
        self.tick = max(0.05, min(1.0, header_timeout / 4, upstream_timeout / 4))
        self._watched: dict[Watch, None] = {}
        self._server: Any = None
        self._in_flight = in_flight_gauge
        self._loop = asyncio.get_running_loop()

    def attach(self, server: Any) -> None:
        """Watch the header phase of an ``aiohttp.web.Server``'s connections."""
        self._server = server

    def watch(self) -> Watch:
        task = asyncio.current_task()
        assert task is not None
        w = Watch(task, self._loop.time())
        self._watched[w] = None
        return w

    def unwatch(self, w: Watch) -> None:
        self._watched.pop(w, None)

    def now(self) -> float:
        return self._loop.time()

    def check(self) -> None:
        """One sweep: expire what is overdue. Runs every ``tick`` seconds."""
        now = self._loop.time()
        header_deadline = now - self.header_timeout
        for handler in self._server.connections if self._server is not None else ():
            started = getattr(handler, "header_started", None)
            if started is not None and started < header_deadline and isinstance(handler, GuardedRequestHandler):
                handler.expire_headers()
        upstream_deadline = now - self.upstream_timeout
        for w in list(self._watched):
            if not w.expired and w.since < upstream_deadline:
                w.expired = True
                w.task.cancel()
        if self._in_flight is not None:
            self._in_flight.set(len(self._watched))

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            try:
                self.check()
            except Exception:  # the watchdog must outlive any bug in one sweep
                log.exception("watchdog sweep failed")
