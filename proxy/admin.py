"""The admin listener: ``/metrics`` (Prometheus), ``/healthz`` (alive), ``/readyz``
(ready to take traffic). In ``footfall run`` the collectors add their query API
and dashboard to the same app. With ``admin.token`` set, everything but those three
probes needs the credential (:mod:`proxy.auth`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from proxy.auth import auth_middleware, login_routes

Ready = Callable[[], bool]


def admin_app(registries: Iterable[CollectorRegistry], ready: Ready, token: str = "") -> web.Application:
    regs = tuple(registries)

    async def metrics(_: web.Request) -> web.Response:
        body = b"".join(generate_latest(r) for r in regs)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        if ready():
            return web.Response(text="ready\n")
        return web.Response(status=503, text="not ready\n")

    app = web.Application(middlewares=[auth_middleware(token)])
    login_routes(app, token)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def start_admin(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Serve ``app``; the caller keeps the runner and calls ``cleanup()`` at the end."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner

