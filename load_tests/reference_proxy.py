"""The reference: a minimal, honest aiohttp reverse proxy with no tracking at all.

What a competent engineer writes in about 80 lines: ``web.Application`` with a
catch-all route, uvloop, one pooled ``ClientSession`` opened in ``cleanup_ctx``,
``auto_decompress=False`` so bytes and ``Content-Encoding`` pass through
unchanged, hop-by-hop headers removed both ways, request and response bodies
streamed. Footfall with tracking off should cost about what this costs; it is the
ceiling for this stack in the benchmark.

    python -m load_tests.reference_proxy --upstream http://127.0.0.1:8081 --listen 127.0.0.1:8080
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
        "TE", "Trailer", "Transfer-Encoding", "Upgrade", "Host",
    )
)  # fmt: skip

SESSION = web.AppKey("session", aiohttp.ClientSession)
UPSTREAM = web.AppKey("upstream", str)


def _forwardable(headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    """Copy of ``headers`` without hop-by-hop ones (nor those named in Connection)."""
    named = {t.strip().lower() for v in headers.getall("Connection", ()) for t in v.split(",")}
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in HOP_BY_HOP and k.lower() not in named)


async def proxy(request: web.Request) -> web.StreamResponse:
    session = request.app[SESSION]
    data = request.content if request.body_exists else None
    async with session.request(
        request.method,
        request.app[UPSTREAM] + request.raw_path,
        headers=_forwardable(request.headers),
        data=data,
        allow_redirects=False,
    ) as upstream:
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        response.headers.extend(_forwardable(upstream.headers))
        await response.prepare(request)
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
        return response


def make_app(upstream: str) -> web.Application:
    app = web.Application()
    app[UPSTREAM] = upstream.rstrip("/")

    async def session_ctx(app: web.Application) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60)
        app[SESSION] = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        yield
        await app[SESSION].close()

    app.cleanup_ctx.append(session_ctx)
    app.router.add_route("*", "/{tail:.*}", proxy)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="minimal aiohttp reverse proxy (reference)")
    parser.add_argument("--upstream", required=True, help="e.g. http://127.0.0.1:8081")
    parser.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT")
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")

    import uvloop

    web.run_app(make_app(args.upstream), host=host, port=int(port), access_log=None,
                print=None, backlog=4096, loop=uvloop.new_event_loop())  # fmt: skip


if __name__ == "__main__":
    main()
