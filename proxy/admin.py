"""The admin listener: ``/metrics`` (Prometheus), ``/healthz`` (alive), ``/readyz``
(ready to take traffic). In ``footfall run`` the collectors add their query API
and dashboard to the same app. With ``admin.token`` set, everything but those three
probes needs the credential (:mod:`proxy.auth`).

``/readyz`` answers 200 only when the proxy can take traffic without losing
events (Redis connected, or the spool writable). Other components (the
collectors of ``footfall run``) are listed in the body, one ``name: status`` line
each, without changing the status code: a collector waiting for Redis must not
take a proxy that spools safely out of a load balancer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from proxy.auth import auth_middleware, login_routes

Ready = Callable[[], bool]
Status = Callable[[], str]  # "ready" or "not ready (why)"


def admin_app(
    registries: Iterable[CollectorRegistry],
    ready: Ready,
    components: Mapping[str, Status] | None = None,
    token: str = "",
) -> web.Application:
    regs = tuple(registries)
    others = dict(components or {})

    async def metrics(_: web.Request) -> web.Response:
        body = b"".join(generate_latest(r) for r in regs)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        ok = ready()
        lines = ["ready" if ok else "not ready"]
        lines += [f"{name}: {status()}" for name, status in others.items()]
        return web.Response(status=200 if ok else 503, text="\n".join(lines) + "\n")

    app = web.Application(middlewares=[auth_middleware(token)])
    login_routes(app, token)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def start_admin(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Serve ``app``; the caller keeps the runner and calls ``cleanup()`` at the end.

    A listener that cannot bind raises ``OSError`` with the runner already cleaned up.
    """
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
