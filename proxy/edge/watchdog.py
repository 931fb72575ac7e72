"""One coarse timer per process instead of timers per request.

aiohttp's per-request client timeouts arm and re-arm a loop timer on every read;
with one listener serving thousands of requests a second that bookkeeping costs
more than the deadlines are worth (measured: ~6 % of throughput). Deadlines of
tens of seconds do not need millisecond precision, so a single task wakes every
``tick`` seconds and enforces them all:

- the header phase of each client connection (``limits.header_timeout_seconds``,
  from the moment the connection opens): the connection gets 408 and is closed;
- the request body, while the exchange waits for the client to send more of it:
  silence longer than ``limits.client_body_idle_seconds``, or a body slower than
  ``limits.client_body_min_rate_bytes`` per second on average once that much time
  has passed, expires the exchange as ``client_timeout`` (the handler answers 408);
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
    """One exchange under watch. The forwarder bumps ``since`` on progress. While it
    waits for more of the client's body ``reading`` is true, so a stall there is the
    client's; ``body_started`` and ``body_bytes`` give the body's average rate.
    ``expired`` is the error kind once overdue."""

    __slots__ = ("body_bytes", "body_started", "expired", "reading", "since", "task")

    def __init__(self, task: asyncio.Task[Any], since: float) -> None:
        self.task = task
        self.since = since
        self.expired: str | None = None
        self.reading = False
        self.body_started = 0.0
        self.body_bytes = 0


class Watchdog:
    def __init__(
        self,
        *,
        header_timeout: float,
        upstream_timeout: float,
        body_idle: float = 20.0,
        body_min_rate: float = 0.0,
        in_flight_gauge: Any = None,
    ) -> None:
        self.header_timeout = header_timeout
        self.upstream_timeout = upstream_timeout
        self.body_idle = body_idle
        self.body_min_rate = body_min_rate  # bytes/s; 0: no rate check
        self.tick = max(0.05, min(1.0, header_timeout / 4, upstream_timeout / 4, body_idle / 4))
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
        body_deadline = now - self.body_idle
        rate = self.body_min_rate
        for w in list(self._watched):
            if w.expired is not None:
                continue
            if w.reading:
                late = rate and now > w.body_started + self.body_idle + w.body_bytes / rate
                if w.since < body_deadline or late:
                    w.expired = "client_timeout"
                    w.task.cancel()
            elif w.since < upstream_deadline:
                w.expired = "upstream_timeout"
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
