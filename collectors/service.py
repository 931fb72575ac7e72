"""CollectorService: the collectors of one process, their store, metrics and HTTP routes.

``footfall collect`` calls :func:`serve` (own admin listener with ``/metrics``,
``/healthz`` and the API); ``footfall run`` builds a :class:`CollectorService`,
``await start()``, mounts ``registry`` and ``add_routes(app)`` on its admin app,
and ``await stop()`` at shutdown.

With the ``analytics`` group the service opens the event store once for the
process (:attr:`CollectorService.store`): the loader writes through it and the
``/api/v2/*`` handlers read through it. The embedded store admits one process,
so nothing else in the process opens it again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from collectors import api, dashboard
from collectors.analytics.config import StoreSettings
from collectors.analytics.loader import StoreLoader
from collectors.analytics.store import Store, open_store_async
from collectors.dashboard import SiteInfo
from collectors.performance import PerformanceSink
from collectors.query import http as query_api
from collectors.runtime import Consumer, Sink
from collectors.runtime_metrics import RuntimeMetrics, every, sample
from collectors.settings import CollectorSettings
from collectors.shard_monitor import sample_shards
from collectors.sharded import ShardedConsumer
from proxy.auth import auth_middleware, login_routes
from proxy.startup import cannot_listen
from proxy.stream.clients import redis_client
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
        shard_keys: list[str] | None = None,
        *,
        store_settings: StoreSettings | None = None,
        data_dir: Path | str = "./footfall-data",
        store: Store | None = None,
    ) -> None:
        """``store``: an already open store to use (and not close); otherwise the
        analytics group opens one from ``store_settings`` in :meth:`start`."""
        unknown = which - KINDS
        if unknown or not which:
            raise ValueError(f"which: must be a non-empty subset of {sorted(KINDS)}")
        self.stream_key = stream_key
        self.settings = settings
        self.store_settings = store_settings or (store.settings if store else StoreSettings())
        self.data_dir = Path(data_dir)
        self.which = which
        self.consumer_name = consumer
        self.registry = CollectorRegistry()
        self.metrics = RuntimeMetrics(self.registry)
        self.redis: aioredis.Redis = redis_client(
            redis_url, socket_timeout=30, socket_connect_timeout=5, health_check_interval=30
        )
        self.store: Store | None = store
        self._owns_store = store is None
        self.performance = (
            PerformanceSink(self.redis, stream_key, settings).register(self.registry)
            if "performance" in which
            else None
        )
        self.shard_keys = shard_keys or [stream_key]
        self.consumers: list[Consumer | ShardedConsumer] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self._monitor: asyncio.Task[None] | None = None
        self._stop_monitor = asyncio.Event()

    async def start(self) -> None:
        """Open the store (analytics), then start one consumer task per group plus the
        sampler; never waits on Redis.

        Each consumer creates its group and waits out an unreachable Redis by
        itself (see :meth:`Consumer.run`); :attr:`ready` tells when all consume.
        """
        sinks: list[Sink] = []
        if "analytics" in self.which:
            if self.store is None:
                self.store = await open_store_async(self.store_settings, self.data_dir)
            sinks.append(StoreLoader(self.redis, self.stream_key, self.store))
        if self.performance is not None:
            sinks.append(self.performance)
        keys = self.shard_keys
        self.consumers = [
            Consumer(self.redis, self.stream_key, sink, self.settings, self.consumer_name, self.metrics)
            if keys == [self.stream_key]
            else ShardedConsumer(self.redis, self.stream_key, keys, sink, self.settings, self.consumer_name,
                                 self.metrics)  # fmt: skip
            for sink in sinks
        ]
        for c in self.consumers:
            self._tasks.append(spawn(c.run(), name=f"collector-{c.group}"))
        groups = [c.group for c in self.consumers]
        self._stop_monitor.clear()
        sampler = (
            every(lambda: sample(self.redis, self.stream_key, groups, self.metrics), self._stop_monitor)
            if self.shard_keys == [self.stream_key]
            else every(lambda: sample_shards(self.redis, self.shard_keys, groups, self.metrics), self._stop_monitor)
        )
        self._monitor = spawn(sampler, name="collector-monitor")
        log.info("collectors %s consuming %s", ",".join(groups), self.stream_key)

    async def stop(self) -> None:
        """Finish the batches in hand (stored and acked), then close the connection and the store."""
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
        if self.store is not None and self._owns_store:
            await self.store.aclose()
            self.store = None

    @property
    def healthy(self) -> bool:
        return bool(self._tasks) and not any(t.done() for t in self._tasks)

    @property
    def ready(self) -> bool:
        """Every consumer is running and its last Redis round trip succeeded."""
        return self.healthy and all(c.ready for c in self.consumers)

    def status(self) -> str:
        """``ready``, or ``not ready (<group>: <why>)`` for ``/readyz``."""
        if self.ready:
            return "ready"
        why = "; ".join(f"{c.group}: {c.problem}" for c in self.consumers if not c.ready)
        return f"not ready ({why or 'not running'})"

    def add_routes(self, app: web.Application, hosts: Sequence[str] = ()) -> None:
        """The ``/api/v2/*`` routes (they reach the store through this service) and
        ``/dashboard`` on ``app``; ``hosts`` are sites the dashboard lists first."""
        api.add_routes(app, self)
        query_api.add_routes(app, lambda: self.store, self.settings, hosts, self.registry)  # /api/v2/*: the store
        dashboard.add_routes(app, self.settings, [SiteInfo(h) for h in hosts])


async def serve(
    redis_url: str,
    stream_key: str,
    settings: CollectorSettings,
    which: frozenset[str],
    admin_host: str,
    admin_port: int,
    shard_keys: list[str] | None = None,
    *,
    store_settings: StoreSettings | None = None,
    data_dir: Path | str = "./footfall-data",
    token: str = "",
) -> None:
    """Run the collectors with their own admin listener until cancelled; ``token``
    is ``admin.token`` (see :mod:`proxy.auth`)."""
    service = CollectorService(
        redis_url, stream_key, settings, which, default_consumer_name(), shard_keys=shard_keys,
        store_settings=store_settings, data_dir=data_dir,
    )  # fmt: skip

    async def metrics(request: web.Request) -> web.Response:
        body = generate_latest(service.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(request: web.Request) -> web.Response:
        ok = service.healthy
        return web.json_response({"ok": ok}, status=200 if ok else 503)

    async def readyz(request: web.Request) -> web.Response:
        ok = service.ready
        return web.Response(text=f"collectors: {service.status()}\n", status=200 if ok else 503)

    app = web.Application(middlewares=[auth_middleware(token)])
    login_routes(app, token)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    service.add_routes(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await service.start()
    try:
        try:
            await web.TCPSite(runner, admin_host, admin_port).start()
        except OSError as exc:
            raise cannot_listen(exc, admin_host, admin_port, "admin") from None
        log.info("collector admin on http://%s:%d/", admin_host, admin_port)
        await asyncio.Event().wait()
    finally:
        await service.stop()
        await runner.cleanup()
