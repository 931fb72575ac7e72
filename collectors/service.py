"""CollectorService: the collectors of one process, their metrics and their HTTP routes.

``footfall collect`` calls :func:`serve` (own admin listener with ``/metrics``,
``/healthz`` and the API); ``footfall run`` builds a :class:`CollectorService`,
``await start()``, mounts ``registry`` and ``add_routes(app)`` on its admin app,
and ``await stop()`` at shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from collectors import api, dashboard
from collectors.analytics.keys import prefix_for
from collectors.analytics.query import Query
from collectors.analytics.store import AnalyticsSink
from collectors.dashboard import SiteInfo
from collectors.performance import PerformanceSink
from collectors.runtime import Consumer, Sink
from collectors.runtime_metrics import RuntimeMetrics, monitor
from collectors.settings import CollectorSettings
from proxy.auth import auth_middleware, login_routes
from proxy.tasks import spawn

log = logging.getLogger(__name__)
KINDS = frozenset({"analytics", "performance"})
STOP_TIMEOUT = 10.0


def default_consumer_name() -> str:
    """Unique per process and host, so a restarted process claims its predecessor's work."""
    return f"{socket.gethostname()}-{os.getpid()}"


class CollectorService:
    def __init__(
        self,
        redis_url: str,
        stream_key: str,
        settings: CollectorSettings,
        which: frozenset[str],
        consumer: str,
    ) -> None:
        unknown = which - KINDS
        if unknown or not which:
            raise ValueError(f"which: must be a non-empty subset of {sorted(KINDS)}")
        self.stream_key = stream_key
        self.settings = settings
        self.which = which
        self.registry = CollectorRegistry()
        self.metrics = RuntimeMetrics(self.registry)
        self.redis: aioredis.Redis = aioredis.Redis.from_url(
            redis_url, socket_timeout=30, socket_connect_timeout=5, health_check_interval=30
        )
        self.query = Query(self.redis, prefix_for(stream_key), settings)
        self.sinks: list[Sink] = []
        if "analytics" in which:
            self.sinks.append(AnalyticsSink(self.redis, stream_key, settings))
        if "performance" in which:
            self.sinks.append(PerformanceSink(self.redis, stream_key, settings).register(self.registry))
        self.consumers = [
            Consumer(self.redis, stream_key, sink, settings, consumer, self.metrics)
            for sink in self.sinks
        ]
        self._tasks: list[asyncio.Task[Any]] = []
        self._monitor: asyncio.Task[None] | None = None
        self._stop_monitor = asyncio.Event()

    async def start(self) -> None:
        """Create the groups and start one consumer task per group plus the sampler."""
        for c in self.consumers:
            await c.ensure_group()
            self._tasks.append(spawn(c.run(), name=f"collector-{c.group}"))
        groups = [c.group for c in self.consumers]
        self._stop_monitor.clear()
        self._monitor = spawn(
            monitor(self.redis, self.stream_key, groups, self.metrics, self._stop_monitor),
            name="collector-monitor",
        )
        log.info("collectors %s consuming %s", ",".join(groups), self.stream_key)

    async def stop(self) -> None:
        """Finish the batches in hand (applied and acked), then close the connection."""
        for c in self.consumers:
            c.stop()
        if self._tasks:
            _, late = await asyncio.wait(self._tasks, timeout=STOP_TIMEOUT)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self._monitor is not None:
            self._stop_monitor.set()
            await asyncio.wait([self._monitor], timeout=STOP_TIMEOUT)
        self._tasks.clear()
        await self.redis.aclose()

    @property
    def healthy(self) -> bool:
        return bool(self._tasks) and not any(t.done() for t in self._tasks)

    def add_routes(self, app: web.Application, hosts: Sequence[str] = ()) -> None:
        """The query API and ``/dashboard`` on ``app``; ``hosts`` are sites the
        dashboard lists first (the proxy's upstream hosts)."""
        api.add_routes(app, self.query)
        dashboard.add_routes(app, self.settings, [SiteInfo(h) for h in hosts])


async def serve(
    redis_url: str,
    stream_key: str,
    settings: CollectorSettings,
    which: frozenset[str],
    admin_host: str,
    admin_port: int,
    token: str = "",
) -> None:
    """Run the collectors with their own admin listener until cancelled; ``token``
    is ``admin.token`` (see :mod:`proxy.auth`)."""
    service = CollectorService(redis_url, stream_key, settings, which, default_consumer_name())

    async def metrics(request: web.Request) -> web.Response:
        body = generate_latest(service.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(request: web.Request) -> web.Response:
        ok = service.healthy
        return web.json_response({"ok": ok}, status=200 if ok else 503)

    app = web.Application(middlewares=[auth_middleware(token)])
    login_routes(app, token)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    service.add_routes(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await service.start()
    try:
        await web.TCPSite(runner, admin_host, admin_port).start()
        log.info("collector admin on http://%s:%d/", admin_host, admin_port)
        await asyncio.Event().wait()
    finally:
        await service.stop()
        await runner.cleanup()
