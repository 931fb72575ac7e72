"""One proxy process: upstream pool, forwarder, publisher and listener, with a
start → serve → stop lifecycle (stop: close the listener, let in-flight requests
finish, drain the event buffer to Redis or the spool, close the pool).
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

import redis.asyncio as aioredis
from aiohttp import ClientSession, ClientTimeout, DummyCookieJar, TCPConnector

from proxy.edge.forward import Forwarder
from proxy.edge.guard import GuardedServer
from proxy.edge.h1client import UpstreamPool
from proxy.edge.watchdog import Watchdog
from proxy.metrics import ProxyMetrics
from proxy.settings import Settings
from proxy.startup import cannot_listen
from proxy.stream.clients import redis_client
from proxy.stream.cluster import StreamWire, connect_stream
from proxy.stream.publisher import Publisher
from proxy.tasks import spawn
from proxy.tracking.enrich import Enricher
from proxy.tracking.event import EventBuilder, Exchange
from proxy.tracking.pipeline import EventPipeline

log = logging.getLogger(__name__)


def ensure_cookie_secret(settings: Settings) -> Settings:
    """Give every worker the same cookie-signing secret.

    Configured (``identity.cookie_secret`` / ``FOOTFALL_COOKIE_SECRET``) wins; else
    one is created once in ``data_dir/cookie_secret`` (mode 0600) and reused, so
    sessions survive restarts. Hosts sharing a site must configure the same one.
    """
    if settings.identity.cookie_secret or not settings.tracking:
        return settings
    path = Path(settings.data_dir) / "cookie_secret"
    try:
        secret = path.read_text().strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        secret = os.urandom(32).hex()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secret + "\n")
    return settings.replace(identity=dataclasses.replace(settings.identity, cookie_secret=secret))


def upstream_session(settings: Settings) -> ClientSession:
    """The aiohttp client session of a proxy process, for WebSocket upgrades
    (HTTP exchanges use the leaner :class:`~proxy.edge.h1client.UpstreamPool`).

    Bodies are relayed as they are (no decompression), no cookie jar (cookies
    belong to the browser), no automatic headers the client did not send, and
    timeouts on connect and on each read rather than on the whole exchange, so a
    long download is fine while a silent upstream is not (enforced by the watchdog).
    """
    limits = settings.limits
    connector = TCPConnector(
        limit=limits.upstream_pool_size,
        limit_per_host=0,
        ttl_dns_cache=60,
        keepalive_timeout=30,
    )
    # Only the TCP connect of a new pooled connection is timed by aiohttp; the read
    # deadlines are the watchdog's (proxy/edge/watchdog.py), without a timer per read.
    timeout = ClientTimeout(total=None, sock_connect=limits.upstream_connect_timeout_seconds)
    return ClientSession(
        connector=connector,
        timeout=timeout,
        auto_decompress=False,
        cookie_jar=DummyCookieJar(),
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        trust_env=False,
    )


class ProxyWorker:
    """Everything one proxy process runs. ``redis_url`` is ignored when tracking is off."""

    def __init__(
        self,
        settings: Settings,
        *,
        redis_url: str | None,
        worker_index: int = 0,
        metrics: ProxyMetrics | None = None,
        reuse_port: bool = False,
    ) -> None:
        self.settings = settings
        self.redis_url = redis_url
        self.worker_index = worker_index
        self.metrics = metrics or ProxyMetrics()
        self.reuse_port = reuse_port
        self.publisher: Publisher[Exchange] | None = None
        self._enricher: Enricher | None = None
        self._redis: aioredis.Redis | None = None
        self._session: ClientSession | None = None
        self._pool: UpstreamPool | None = None
        self._server: GuardedServer | None = None
        self._listener: asyncio.Server | None = None
        self._stopped = False
        self._watchdog_task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        assert self._listener is not None
        port: int = self._listener.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        s = self.settings
        sink = None
        if s.tracking:
            if self.redis_url is None:
                raise ValueError("tracking needs a Redis URL")
            self._enricher = Enricher(s.enrichment)
            cookieless = None
            if s.identity.mode == "cookieless":
                from proxy.tracking.cookieless import CookielessSessions, SaltStore

                self._redis = redis_client(self.redis_url, socket_timeout=2.0)
                prefix = s.redis.stream_prefix
                cookieless = CookielessSessions(
                    self._redis, prefix, s.identity, SaltStore(self._redis, prefix)
                )
            pipeline = EventPipeline(
                EventBuilder(s, self._enricher), self.metrics, cookieless, batch_size=s.publisher.batch_size
            )
            self.publisher = Publisher(
                redis_url=self.redis_url,
                stream_key=s.redis.stream_key,
                maxlen=s.redis.stream_maxlen,
                settings=s.publisher,
                spool_dir=Path(s.data_dir) / "spool" / f"worker-{self.worker_index}",
                metrics=self.metrics,
                prepare=pipeline.prepare,
                connect=self._stream_connector(),
            )
            await self.publisher.start()
            sink = self.publisher.submit
        self._session = upstream_session(s)
        limits = s.limits
        self._pool = UpstreamPool(
            limit=limits.upstream_pool_size,
            connect_timeout=limits.upstream_connect_timeout_seconds,
            idle_timeout=limits.upstream_idle_seconds,
        )
        self._pool.start()
        watchdog = Watchdog(
            header_timeout=limits.header_timeout_seconds,
            upstream_timeout=limits.upstream_read_timeout_seconds,
            body_idle=limits.client_body_idle_seconds,
            body_min_rate=limits.client_body_min_rate_bytes,
            in_flight_gauge=self.metrics.in_flight,
        )
        from proxy.beacon.service import make_beacon

        beacon = make_beacon(s, self.metrics.registry, sink)
        forwarder = Forwarder(s, self._pool, self._session, self.metrics, sink, watchdog, beacon)
        self._server = GuardedServer(
            forwarder,
            max_header_bytes=limits.max_header_bytes,
            on_refused=forwarder.refusals,
            keepalive_timeout=limits.keepalive_timeout_seconds,
            max_line_size=limits.max_header_bytes,
            max_field_size=limits.max_header_bytes,
            auto_decompress=False,
            access_log=None,
        )
        watchdog.attach(self._server)
        self._watchdog_task = spawn(watchdog.run(), name=f"watchdog-{self.worker_index}")
        loop = asyncio.get_running_loop()
        try:
            self._listener = await loop.create_server(
                self._server,
                s.listen.host,
                s.listen.port,
                reuse_port=self.reuse_port or None,
                backlog=2048,
            )
        except OSError as exc:
            raise cannot_listen(exc, s.listen.host, s.listen.port, "proxy") from None
        # Startup objects (parsers, crawler patterns, modules) never die: move them out
        # of the collector's way so full collections only walk what traffic allocates.
        gc.collect()
        gc.freeze()
        for sock in self._listener.sockets:
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        log.info("proxy worker %d listening on %s", self.worker_index, s.listen)

    def _stream_connector(self) -> Callable[[], Awaitable[StreamWire]]:
        """The publisher's connection: one node, shards on one node, or Redis Cluster."""
        url, keys = self.redis_url, self.settings.redis.shard_keys
        timeout = self.settings.publisher.redis_timeout_seconds
        wait = self.settings.redis.wait_replicas
        assert url is not None
        return lambda: connect_stream(url, keys, timeout, wait)

    def ready(self) -> bool:
        """Serving, with an open upstream pool and a usable stream or spool."""
        if self._listener is None or not self._listener.is_serving():
            return False
        if self._session is None or self._session.closed or self._pool is None or self._pool.closed:
            return False
        return self.publisher is None or self.publisher.ready()

    async def stop(self, grace: float = 10.0) -> None:
        """Stop accepting, let in-flight exchanges finish (up to ``grace`` s), drain events.
        Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self._listener is not None:
            self._listener.close()
        if self._server is not None:
            await self._server.shutdown(grace)
        if self._watchdog_task is not None:
            self._watchdog_task.cancel()
        if self.publisher is not None:
            await self.publisher.close()
        if self._pool is not None:
            await self._pool.close()
        if self._session is not None:
            await self._session.close()
        if self._redis is not None:
            await self._redis.aclose()
        if self._enricher is not None:
            self._enricher.close()
        log.info("proxy worker %d stopped", self.worker_index)
