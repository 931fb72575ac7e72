"""Process orchestration for ``footfall proxy | run | demo``.

One process (``--workers 1``): proxy, admin listener and, for ``run``/``demo``, the
collectors share one event loop. ``--workers N``: N proxy processes share the
listening port (SO_REUSEPORT) and report metrics through prometheus-client's
multiprocess directory; this parent process owns the embedded Redis, the admin
listener and the collectors. SIGTERM/SIGINT: stop accepting, finish in-flight
requests, drain events to Redis or the spool, then exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import shutil
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import REGISTRY, CollectorRegistry

from proxy.admin import admin_app, start_admin
from proxy.settings import Settings
from proxy.startup import StartupError, cannot_listen, cannot_use_data_dir
from proxy.stream.embedded import EmbeddedRedis
from proxy.stream.spool import SpoolLocked

log = logging.getLogger(__name__)


def install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def resolve_redis(settings: Settings) -> tuple[str, EmbeddedRedis | None]:
    """The Redis URL to use, starting the embedded Redis when none is configured.

    Raises :class:`StartupError` when the embedded Redis cannot start.
    """
    if settings.redis.url:
        return settings.redis.url, None
    try:
        embedded = EmbeddedRedis(Path(settings.data_dir) / "redis").start()
    except OSError as exc:
        raise cannot_use_data_dir(exc, settings.data_dir) from None
    except RuntimeError as exc:
        last = next((line for line in reversed(str(exc).splitlines()) if line.strip()), "")
        raise StartupError(f"the embedded Redis did not start: {last.strip()}") from None
    return embedded.url, embedded


@dataclass
class Plan:
    """What one ``footfall`` invocation runs besides the proxy itself."""

    collectors: frozenset[str] = frozenset()
    demo: bool = False
    demo_traffic: bool = True  # the demo's background visitors (``footfall demo --traffic off``)
    announce: Callable[[str], None] = field(default=lambda line: print(line, flush=True))


def warn_orphan_spools(settings: Settings) -> None:
    """Spools of workers that no longer exist (``--workers`` was lowered) are not
    replayed by anyone: say so, with the way out."""
    root = Path(settings.data_dir) / "spool"
    for path in sorted(root.glob("worker-*")):
        index = path.name.removeprefix("worker-")
        if index.isdigit() and int(index) >= settings.workers and any(path.glob("seg-*")):
            log.warning(
                "spool %s holds events of a worker that no longer runs; start with --workers %d once "
                "to replay them",
                path,
                int(index) + 1,
            )


def run(settings: Settings, plan: Plan) -> int:
    """Blocking entry point of the serving commands; returns the exit status.

    Raises :class:`StartupError` (one line for the user) when something cannot
    start, after releasing whatever had started (listeners, embedded Redis).
    """
    install_uvloop()
    from proxy.edge.server import ensure_cookie_secret

    try:
        settings = ensure_cookie_secret(settings)
    except OSError as exc:
        raise cannot_use_data_dir(exc, settings.data_dir) from None
    warn_orphan_spools(settings)
    needs_redis = settings.tracking or bool(plan.collectors)
    redis_url, embedded = resolve_redis(settings) if needs_redis else (None, None)
    try:
        if settings.workers > 1:
            return _run_workers(settings, plan, redis_url)
        asyncio.run(_serve_single(settings, plan, redis_url))
        return 0
    finally:
        if embedded is not None and not embedded.shared:
            embedded.stop()


async def _start_demo_upstream(settings: Settings) -> tuple[Settings, web.AppRunner]:
    from proxy.demo import DEMO_ROUTES, demo_app, demo_settings
    from proxy.settings import Upstream

    settings = demo_settings(settings)
    runner = web.AppRunner(demo_app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    upstreams = (*settings.upstreams, Upstream("", f"http://127.0.0.1:{port}"))
    if any(u.host == "" for u in settings.upstreams):
        upstreams = settings.upstreams
    return settings.replace(upstreams=upstreams, routes=settings.routes or DEMO_ROUTES), runner


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def _start_worker(worker: Any, settings: Settings) -> None:
    """``worker.start()`` with its failures as :class:`StartupError` (the caller stops it)."""
    try:
        await worker.start()
    except SpoolLocked as exc:
        raise StartupError(f"{exc}; give each process its own --data-dir") from None
    except OSError as exc:
        raise cannot_use_data_dir(exc, settings.data_dir) from None


async def _start_admin(app: web.Application, settings: Settings) -> web.AppRunner:
    host, port = settings.admin_listen.host, settings.admin_listen.port
    try:
        return await start_admin(app, host, port)
    except OSError as exc:
        raise cannot_listen(exc, host, port, "admin") from None


async def _start_collectors(settings: Settings, plan: Plan, redis_url: str | None) -> Any:
    """The collectors of ``run``/``demo``; they wait for Redis themselves (never raise for it)."""
    if not plan.collectors or redis_url is None:
        return None
    from collectors.analytics import config
    from collectors.service import CollectorService
    from collectors.settings import from_settings

    errors: list[str] = []
    csettings = from_settings(settings, errors)
    service = CollectorService(
        redis_url, settings.redis.stream_key, csettings, plan.collectors, consumer=f"run-{os.getpid()}",
        shard_keys=settings.redis.shard_keys,
        store_settings=config.parse(settings.analytics, errors), data_dir=settings.data_dir,
    )  # fmt: skip
    await service.start()
    return service


def example_host(upstreams: tuple[Any, ...]) -> str | None:
    """A Host the proxy serves when it has no catch-all (None when it has one)."""
    if any(u.host == "" for u in upstreams) or not upstreams:
        return None
    host: str = upstreams[0].host
    return "www" + host[1:] if host.startswith("*.") else host


def dashboard_hosts(settings: Settings, plan: Plan) -> list[str]:
    """Sites the dashboard lists first: the exact upstream hosts, and for the demo the
    host its visitors (and its background traffic) use."""
    from proxy.demo import site_host

    hosts = [u.host for u in settings.upstreams if u.host and "*" not in u.host]
    if plan.demo:
        hosts.insert(0, site_host(settings))
    return list(dict.fromkeys(hosts))


def _start_demo_traffic(settings: Settings, plan: Plan, port: int) -> asyncio.Task[None] | None:
    if not (plan.demo and plan.demo_traffic):
        return None
    from proxy.demo import site_host, traffic_base
    from proxy.demo_traffic import drive
    from proxy.tasks import spawn

    base = traffic_base(settings, port)
    if base is None:
        log.info("demo traffic off: the proxy does not listen on loopback")
        return None
    plan.announce(f"Demo traffic        a few simulated visitors per second to {base}/ (--traffic off to stop)")
    return spawn(drive(base, site_host(settings)), name="demo-traffic")


async def _stop_task(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _announce(settings: Settings, plan: Plan, admin_port: int, proxy_port: int) -> None:
    host = settings.listen.host
    say = plan.announce
    served = example_host(settings.upstreams)
    if served is None:
        say(f"Footfall proxy      http://{host}:{proxy_port}/")
    else:  # the listen address alone would be refused (421): show a request that works
        say(f"Footfall proxy      http://{host}:{proxy_port}/ (only for the hosts below)")
        say(f"  try               curl -H 'Host: {served}' http://{host}:{proxy_port}/")
    for up in settings.upstreams:
        say(f"  upstream          {up.host or '(any host)'} -> {up.url}")
    admin = f"http://{settings.admin_listen.host}:{admin_port}"
    say(f"Metrics             {admin}/metrics")
    if plan.collectors:
        signin = " (sign in with admin.token)" if settings.admin.token else ""
        say(f"Dashboard           {admin}/dashboard{signin}")
        say(f"Analytics API       {admin}/api/v2/query (POST)")
    say(f"Events              footfall tail --data-dir {settings.data_dir}")


async def _serve_single(settings: Settings, plan: Plan, redis_url: str | None) -> None:
    from proxy.edge.server import ProxyWorker

    stop = _stop_event()
    # Each started piece registers its cleanup at once: a failure further down (a
    # port in use) releases everything before the error reaches the user.
    async with contextlib.AsyncExitStack() as started:
        if plan.demo:
            settings, demo_runner = await _start_demo_upstream(settings)
            started.push_async_callback(demo_runner.cleanup)
        # Collectors first: a store held by another process stops us before we listen.
        collectors = await _start_collectors(settings, plan, redis_url)
        if collectors is not None:
            started.push_async_callback(collectors.stop)
        worker = ProxyWorker(settings, redis_url=redis_url)
        started.push_async_callback(worker.stop)
        await _start_worker(worker, settings)
        registries: list[CollectorRegistry] = [worker.metrics.registry, REGISTRY]
        components: dict[str, Callable[[], str]] = {}
        if collectors is not None:
            registries.append(collectors.registry)
            components["collectors"] = collectors.status
        app = admin_app(registries, worker.ready, components, token=settings.admin.token)
        if collectors is not None:
            collectors.add_routes(app, dashboard_hosts(settings, plan))
        admin = await _start_admin(app, settings)
        started.push_async_callback(admin.cleanup)
        _announce(settings, plan, admin.addresses[0][1], worker.port)
        started.push_async_callback(_stop_task, _start_demo_traffic(settings, plan, worker.port))
        await stop.wait()
        log.info("stopping: draining in-flight requests and events")


def _worker_main(settings: Settings, redis_url: str | None, index: int, ready: Any) -> None:
    """Entry point of one worker process (spawned: a fresh interpreter)."""
    install_uvloop()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def main() -> None:
        from proxy.edge.server import ProxyWorker

        stop = _stop_event()
        worker = ProxyWorker(settings, redis_url=redis_url, worker_index=index, reuse_port=True)
        try:
            await _start_worker(worker, settings)
            ready.set()
            await stop.wait()
        finally:
            await worker.stop()

    try:
        asyncio.run(main())
    except StartupError as exc:
        print(f"footfall: worker {index}: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)


def _run_workers(settings: Settings, plan: Plan, redis_url: str | None) -> int:
    metrics_dir = Path(settings.data_dir) / "metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    try:
        metrics_dir.mkdir(parents=True)
    except OSError as exc:
        raise cannot_use_data_dir(exc, settings.data_dir) from None
    # Children are spawned (fresh interpreters) and read this at import time.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    ctx = multiprocessing.get_context("spawn")

    async def main() -> int:
        from prometheus_client import multiprocess

        nonlocal settings
        stop = _stop_event()
        async with contextlib.AsyncExitStack() as started:
            if plan.demo:
                settings, demo_runner = await _start_demo_upstream(settings)
                started.push_async_callback(demo_runner.cleanup)
            collectors = await _start_collectors(settings, plan, redis_url)  # before the workers: see _serve_single
            if collectors is not None:
                started.push_async_callback(collectors.stop)
            events = [ctx.Event() for _ in range(settings.workers)]
            procs = [
                ctx.Process(target=_worker_main, args=(settings, redis_url, i, events[i]),
                            name=f"footfall-worker-{i}")  # fmt: skip
                for i in range(settings.workers)
            ]

            async def stop_workers() -> None:
                for p in procs:
                    if p.is_alive() and p.pid is not None:
                        os.kill(p.pid, signal.SIGTERM)
                for p in procs:
                    if p.pid is not None:
                        await asyncio.get_running_loop().run_in_executor(None, p.join, 30)

            started.push_async_callback(stop_workers)
            for p in procs:
                p.start()
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=str(metrics_dir))  # type: ignore[no-untyped-call]
            registries = [registry]
            components: dict[str, Callable[[], str]] = {}
            if collectors is not None:
                registries.append(collectors.registry)
                components["collectors"] = collectors.status

            def ready() -> bool:
                return all(e.is_set() for e in events) and all(p.is_alive() for p in procs)

            app = admin_app(registries, ready, components, token=settings.admin.token)
            if collectors is not None:
                collectors.add_routes(app, dashboard_hosts(settings, plan))
            admin = await _start_admin(app, settings)
            started.push_async_callback(admin.cleanup)
            while not ready():  # a worker that cannot start has said why on stderr
                if not all(p.is_alive() for p in procs):
                    raise StartupError("a worker process could not start (its error is above)")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.05)
                if stop.is_set():
                    return 0
            _announce(settings, plan, admin.addresses[0][1], settings.listen.port)
            started.push_async_callback(_stop_task, _start_demo_traffic(settings, plan, settings.listen.port))
            while not stop.is_set() and all(p.is_alive() for p in procs):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.5)
            if not stop.is_set():
                log.error("a worker process exited; stopping the others")
                return 1
            return 0

    return asyncio.run(main())


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use the footfall command")
