"""Redirects that name the upstream's own origin are rewritten to the proxy's."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict

from proxy.edge.redirects import client_origin, rewrite_headers, rewrite_refresh, rewrite_url, upstream_prefixes

UP = upstream_prefixes("http://127.0.0.1:8765")
CLIENT = "https://shop.example"


@pytest.mark.parametrize(
    ("upstream", "prefixes"),
    [
        ("http://127.0.0.1:8765", ("http://127.0.0.1:8765",)),
        ("http://Backend", ("http://backend", "http://backend:80")),
        ("http://backend:80", ("http://backend", "http://backend:80")),
        ("https://backend:443/", ("https://backend", "https://backend:443")),
        ("http://[::1]:8000", ("http://[::1]:8000",)),
        ("http://backend:8000/app/", ("http://backend:8000/app",)),
    ],
)
def test_upstream_prefixes(upstream: str, prefixes: tuple[str, ...]) -> None:
    assert upstream_prefixes(upstream) == prefixes


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("http://127.0.0.1:8765/tutorial/", "https://shop.example/tutorial/"),
        ("http://127.0.0.1:8765", "https://shop.example/"),
        ("http://127.0.0.1:8765?x=1", "https://shop.example/?x=1"),
        ("http://127.0.0.1:8765#top", "https://shop.example/#top"),
        ("HTTP://127.0.0.1:8765/Case/Kept", "https://shop.example/Case/Kept"),
        ("http://127.0.0.1:87650/other-port", None),  # a longer port is another origin
        ("http://127.0.0.1:8766/", None),
        ("https://127.0.0.1:8765/", None),  # another scheme is another origin
        ("http://127.0.0.1.evil/", None),
        ("/relative/path", None),
        ("https://elsewhere.example/", None),
        ("", None),
    ],
)
def test_rewrite_url(value: str, expected: str | None) -> None:
    assert rewrite_url(value, UP, CLIENT) == expected


def test_rewrite_url_to_a_relative_reference_without_a_host() -> None:
    assert rewrite_url("http://127.0.0.1:8765/a?b", UP, client_origin("http", None)) == "/a?b"


def test_default_port_spelled_or_not() -> None:
    prefixes = upstream_prefixes("http://backend")
    assert rewrite_url("http://backend:80/x", prefixes, CLIENT) == "https://shop.example/x"
    assert rewrite_url("http://backend/x", prefixes, CLIENT) == "https://shop.example/x"
    assert rewrite_url("http://backend:8080/x", prefixes, CLIENT) is None


def test_an_upstream_path_prefix_is_replaced_like_nginx() -> None:
    prefixes = upstream_prefixes("http://backend:8000/app")
    assert rewrite_url("http://backend:8000/app/x", prefixes, CLIENT) == "https://shop.example/x"
    assert rewrite_url("http://backend:8000/other", prefixes, CLIENT) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("5; url=http://127.0.0.1:8765/next", "5; url=https://shop.example/next"),
        ("0;URL='http://127.0.0.1:8765/a'", "0;URL='https://shop.example/a'"),
        ('3, url="http://127.0.0.1:8765/"', '3, url="https://shop.example/"'),
        ("5; url=/relative", None),
        ("5", None),
        ("5; url=https://elsewhere.example/", None),
    ],
)
def test_rewrite_refresh(value: str, expected: str | None) -> None:
    assert rewrite_refresh(value, UP, CLIENT) == expected


def test_rewrite_headers_touches_only_the_three() -> None:
    headers = CIMultiDict(
        {
            "location": "http://127.0.0.1:8765/a",
            "Content-Location": "http://127.0.0.1:8765/b",
            "Refresh": "1; url=http://127.0.0.1:8765/c",
            "Link": "<http://127.0.0.1:8765/d>; rel=preload",
        }
    )
    rewrite_headers(headers, UP, CLIENT)
    assert {k.lower(): v for k, v in headers.items()} == {
        "location": "https://shop.example/a",
        "content-location": "https://shop.example/b",
        "refresh": "1; url=https://shop.example/c",
        "link": "<http://127.0.0.1:8765/d>; rel=preload",
    }


def _redirecting_site(base: list[str]) -> web.Application:
    async def moved(_: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": f"{base[0]}/tutorial/"})

    async def elsewhere(_: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "https://elsewhere.example/x"})

    async def refresh(_: web.Request) -> web.Response:
        return web.Response(text="soon", headers={"Refresh": f"5; url={base[0]}/later"})

    app = web.Application()
    app.router.add_get("/old", moved)
    app.router.add_get("/away", elsewhere)
    app.router.add_get("/refresh", refresh)
    return app


@pytest.mark.parametrize("enabled", [True, False])
async def test_redirects_come_back_through_the_proxy(upstream_factory: Any, proxy_factory: Any, enabled: bool) -> None:
    base: list[str] = []
    upstream = await upstream_factory(_redirecting_site(base))
    base.append(upstream)
    proxy = await proxy_factory({"upstreams": [f"shop.example={upstream}"], "rewrite_redirects": enabled})
    proxy_url = f"http://127.0.0.1:{proxy.port}"
    async with aiohttp.ClientSession() as client:
        host = {"Host": f"shop.example:{proxy.port}"}
        async with client.get(f"{proxy_url}/old", headers=host, allow_redirects=False) as resp:
            assert resp.status == 302
            location = resp.headers["Location"]
        async with client.get(f"{proxy_url}/away", headers=host, allow_redirects=False) as resp:
            assert resp.headers["Location"] == "https://elsewhere.example/x"
        async with client.get(f"{proxy_url}/refresh", headers=host) as resp:
            refresh = resp.headers["Refresh"]
    if enabled:
        assert location == f"http://shop.example:{proxy.port}/tutorial/"
        assert refresh == f"5; url=http://shop.example:{proxy.port}/later"
    else:
        assert location == f"{upstream}/tutorial/"
        assert refresh == f"5; url={upstream}/later"


async def test_the_scheme_is_the_one_the_client_used_behind_a_trusted_proxy(
    upstream_factory: Any, proxy_factory: Any
) -> None:
    base: list[str] = []
    upstream = await upstream_factory(_redirecting_site(base))
    base.append(upstream)
    proxy = await proxy_factory({"upstreams": [upstream], "trusted_proxies": ["127.0.0.1/32"]})
    async with aiohttp.ClientSession() as client:
        headers = {"Host": "www.example", "X-Forwarded-Proto": "https"}
        async with client.get(f"http://127.0.0.1:{proxy.port}/old", headers=headers, allow_redirects=False) as resp:
            assert resp.headers["Location"] == "https://www.example/tutorial/"
