"""The bundled demo site that ``footfall demo`` puts behind the proxy.

A tiny shop: HTML pages, a product route with ids, a stylesheet, a JSON API, a
checkout form answered with 303 (a server-side conversion), a slow page and a
failing page, so every kind of event and metric shows up at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
from typing import Any

from aiohttp import web

from proxy.settings import Settings, is_loopback

_STYLE = "body{font-family:system-ui;max-width:42rem;margin:2rem auto;line-height:1.5}nav a{margin-right:1rem}"


def _page(title: str, body: str) -> web.Response:
    html = f"""<!doctype html><html><head><meta charset="utf-8"><title>{title} · Demo shop</title>
<link rel="stylesheet" href="/static/style.css"></head><body>
<nav><a href="/">Home</a><a href="/products/1">Product 1</a><a href="/products/2">Product 2</a>
<a href="/blog/hello-world">Blog</a><a href="/cart">Cart</a><a href="/slow">Slow page</a>
<a href="/broken">Broken page</a></nav><h1>{title}</h1>{body}</body></html>"""
    return web.Response(text=html, content_type="text/html")


async def home(_: web.Request) -> web.Response:
    return _page("Welcome", "<p>Browse around: every click is an event in Footfall's stream.</p>")


async def product(request: web.Request) -> web.Response:
    pid = request.match_info["id"]
    return _page(
        f"Product {pid}",
        f'<p>A fine thing.</p><form method="post" action="/cart"><input type="hidden" name="id" value="{pid}">'
        '<button>Add to cart</button></form>',
    )


async def blog(request: web.Request) -> web.Response:
    return _page(request.match_info["slug"].replace("-", " ").title(), "<p>Words.</p>")


async def cart(_: web.Request) -> web.Response:
    return _page("Cart", '<form method="post" action="/checkout"><button>Buy now</button></form>')


async def add_to_cart(_: web.Request) -> web.Response:
    raise web.HTTPSeeOther("/cart")


async def checkout(_: web.Request) -> web.Response:
    raise web.HTTPSeeOther("/thank-you")


async def thank_you(_: web.Request) -> web.Response:
    return _page("Thank you", "<p>Order received (not really).</p>")


async def slow(_: web.Request) -> web.Response:
    await asyncio.sleep(0.4)
    return _page("Slow page", "<p>This one took 400 ms upstream.</p>")


async def broken(_: web.Request) -> web.Response:
    return web.Response(status=500, text="<h1>500</h1><p>Upstream failure.</p>", content_type="text/html")


async def api_price(request: web.Request) -> web.Response:
    return web.json_response({"id": request.match_info["id"], "price": 19.9})


async def style(_: web.Request) -> web.Response:
    return web.Response(text=_STYLE, content_type="text/css", headers={"Cache-Control": "max-age=60"})


def demo_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/", home)
    app.router.add_get("/products/{id}", product)
    app.router.add_get("/blog/{slug}", blog)
    app.router.add_get("/cart", cart)
    app.router.add_post("/cart", add_to_cart)
    app.router.add_post("/checkout", checkout)
    app.router.add_get("/thank-you", thank_you)
    app.router.add_get("/slow", slow)
    app.router.add_get("/broken", broken)
    app.router.add_get("/api/price/{id}", api_price)
    app.router.add_get("/static/style.css", style)
    return app


DEMO_ROUTES = ("/products/{id}", "/blog/{slug}", "/api/price/{id}")


# What a new user should see configured: goals (a server-side purchase, a pageview
# goal) and a funnel over the shop's pages. Used only when the config has none.
DEMO_GOALS: tuple[dict[str, Any], ...] = (
    {"name": "purchase", "method": "POST", "path": "/checkout", "status": "2xx,3xx"},
    {"name": "add-to-cart", "method": "POST", "path": "/cart", "status": "2xx,3xx"},
    {"name": "read-blog", "path": "/blog/*"},
)
DEMO_FUNNELS: tuple[dict[str, Any], ...] = (
    {"name": "checkout", "steps": ["/products/*", "/cart", "/thank-you"]},
)


def demo_settings(settings: Settings) -> Settings:
    """The demo's goals and funnel (unless configured), and loopback as a trusted proxy so
    the background visitors' country and address headers count (the demo listens on
    loopback; nobody else can send them).

    The behavioural bot score is off in the demo: its background visitors are a script,
    and the score rightly finds them automated (no assets, no browser headers in a
    browser's order), which would leave every panel empty. ``footfall run`` keeps it on.
    """
    collectors = dict(settings.collectors)
    collectors.setdefault("goals", [dict(g) for g in DEMO_GOALS])
    collectors.setdefault("funnels", [dict(f) for f in DEMO_FUNNELS])
    trusted = settings.trusted_proxies or (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
    enrichment = dataclasses.replace(settings.enrichment, bot_score=False)
    return settings.replace(collectors=collectors, trusted_proxies=trusted, enrichment=enrichment)


def site_host(settings: Settings) -> str:
    """The host visitors of the demo use (and so its site in the dashboard)."""
    host = settings.listen.host
    return "127.0.0.1" if host in ("", "0.0.0.0") else "::1" if host == "::" else host


def traffic_base(settings: Settings, port: int) -> str | None:
    """Where the background visitors connect, or None when the proxy is not on loopback."""
    host = site_host(settings)
    if not is_loopback(host):
        return None
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
