"""Access control of the admin listener, on real sockets (and the CLI's refusal to
start without a credential on a non-loopback address)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from proxy.admin import admin_app, start_admin
from proxy.auth import (
    COOKIE,
    SHARE_COOKIE,
    safe_next,
    session_value,
    share_key,
    shared_site,
    valid_bearer,
    valid_session,
)
from proxy.settings import Address, admin_token_errors, is_loopback
from proxy.stream.embedded import free_port

TOKEN = "correct-horse-battery-staple"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.9.9.9", True), ("::1", True), ("localhost", True), ("LocalHost", True),
     ("0.0.0.0", False), ("::", False), ("10.0.0.5", False), ("admin.example", False)],  # fmt: skip
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("host", "token", "error"),
    [
        ("127.0.0.1", "", None),
        ("0.0.0.0", TOKEN, None),
        ("0.0.0.0", "", "admin.token: required when admin_listen (0.0.0.0:9108) is not a loopback"),
        ("127.0.0.1", "short", "admin.token: at least 16 characters"),
    ],
)
def test_admin_token_errors(host: str, token: str, error: str | None) -> None:
    errors = admin_token_errors(Address(host, 9108), token)
    assert errors == [] if error is None else (len(errors) == 1 and errors[0].startswith(error))


@pytest.mark.parametrize(
    ("target", "expected"),
    [(None, "/dashboard"), ("", "/dashboard"), ("/dashboard?site=a&f=x", "/dashboard?site=a&f=x"),
     ("//evil.example/", "/dashboard"), ("https://evil.example/", "/dashboard"),
     ("/\\evil", "/dashboard")],  # fmt: skip
)
def test_safe_next(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected


def test_session_cookie_is_an_expiring_hmac_not_the_token() -> None:
    value = session_value(TOKEN, 2_000)
    assert TOKEN not in value
    assert valid_session(TOKEN, value, now=1_999)
    assert not valid_session(TOKEN, value, now=2_001)  # expired
    assert not valid_session("another-token-entirely", value, now=1_999)  # token changed
    assert not valid_session(TOKEN, value.replace("v1.2000", "v1.9000"), now=1_999)  # expiry edited
    assert not valid_session(TOKEN, "", now=0)


@pytest.mark.parametrize(
    ("header", "ok"),
    [(f"Bearer {TOKEN}", True), (f"bearer {TOKEN}", True), (f"Basic {TOKEN}", False),
     ("Bearer wrong", False), ("", False), (TOKEN, False)],  # fmt: skip
)
def test_valid_bearer(header: str, ok: bool) -> None:
    assert valid_bearer(TOKEN, header) is ok


async def _serve(token: str) -> tuple[web.AppRunner, str]:
    app = admin_app([CollectorRegistry()], lambda: True, token=token)

    async def query(request: web.Request) -> web.Response:
        return web.json_response({"results": [], "site": (await request.json())["site_id"]})

    async def dashboard(_: web.Request) -> web.Response:
        return web.Response(text="<h1>dashboard</h1>", content_type="text/html")

    async def other(request: web.Request) -> web.Response:
        return web.json_response({"site": request.query.get("site_id")})

    async def batch(request: web.Request) -> web.Response:
        return web.json_response({"sites": [q["site_id"] for q in (await request.json())["queries"]]})

    app.router.add_post("/api/v2/query", query)
    app.router.add_post("/api/v2/batch", batch)
    app.router.add_get("/api/v2/realtime", other)
    app.router.add_get("/api/v2/export", other)
    app.router.add_get("/dashboard", dashboard)
    port = free_port()
    runner = await start_admin(app, "127.0.0.1", port)
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def guarded() -> AsyncIterator[str]:
    runner, base = await _serve(TOKEN)
    yield base
    await runner.cleanup()


@pytest.mark.parametrize("path", ["/metrics", "/healthz", "/readyz"])
async def test_probes_stay_open(guarded: str, path: str) -> None:
    async with aiohttp.ClientSession() as http, http.get(guarded + path) as resp:
        assert resp.status == 200


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"Authorization": "Bearer nope"}, 401), ({"Authorization": f"Basic {TOKEN}"}, 401),
     ({"Authorization": f"Bearer {TOKEN}"}, 200)],  # fmt: skip
)
async def test_api_needs_the_bearer_token(guarded: str, headers: dict[str, str], status: int) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{guarded}/api/v2/query", json={"site_id": "a"}, headers=headers) as resp:
            assert resp.status == status
            body = await resp.json()
            if status == 401:
                assert "Bearer" in body["error"] and resp.headers["WWW-Authenticate"].startswith("Bearer")
            else:
                assert body["site"] == "a"


async def test_dashboard_redirects_to_login_and_the_cookie_opens_page_and_api(guarded: str) -> None:
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        async with http.get(f"{guarded}/dashboard?site=shop&f=a", allow_redirects=False) as resp:
            assert resp.status == 303
            location = urlsplit(resp.headers["Location"])
            assert location.path == "/login" and parse_qs(location.query)["next"] == ["/dashboard?site=shop&f=a"]
        async with http.get(f"{guarded}{resp.headers['Location']}") as resp:
            page = await resp.text()
            assert 'name="token"' in page and 'value="/dashboard?site=shop&amp;f=a"' in page
        form = {"token": "wrong-token-wrong-token", "next": "/dashboard?site=shop"}
        async with http.post(f"{guarded}/login", data=form, allow_redirects=False) as resp:
            assert resp.status == 401 and "not right" in await resp.text()
            assert COOKIE not in {c.key for c in jar}
        form["token"] = TOKEN
        async with http.post(f"{guarded}/login", data=form, allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"] == "/dashboard?site=shop"
            cookie = resp.cookies[COOKIE]
            assert TOKEN not in cookie.value
            assert cookie["httponly"] and cookie["samesite"] == "Strict"
        async with http.get(f"{guarded}/dashboard", allow_redirects=False) as resp:
            assert resp.status == 200 and "dashboard" in await resp.text()
        async with http.post(f"{guarded}/api/v2/query", json={"site_id": "b"}) as resp:
            assert resp.status == 200
        # A cross-site write riding on the cookie is refused even if a browser sent it.
        headers = {"Origin": "http://evil.example"}
        async with http.post(f"{guarded}/api/v2/query", json={"site_id": "b"}, headers=headers) as resp:
            assert resp.status == 401
        async with http.post(f"{guarded}/logout", allow_redirects=False) as resp:
            assert resp.status == 303
        async with http.get(f"{guarded}/dashboard", allow_redirects=False) as resp:
            assert resp.status == 303


async def test_without_a_token_everything_is_open_on_loopback() -> None:
    runner, base = await _serve("")
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{base}/api/v2/query", json={"site_id": "a"}) as resp:
                assert resp.status == 200
            async with http.get(f"{base}/dashboard", allow_redirects=False) as resp:
                assert resp.status == 200
            async with http.get(f"{base}/login") as resp:
                assert resp.status == 404
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("command", ["run", "collect"])
def test_refuses_to_start_on_a_public_admin_address_without_a_token(command: str, tmp_path: Path) -> None:
    args = ["--admin-listen", f"0.0.0.0:{free_port()}", "--data-dir", str(tmp_path)]
    if command == "run":
        args += ["--upstream", "http://127.0.0.1:9"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOOTFALL_")}
    result = subprocess.run(
        [sys.executable, "-m", "proxy.cli", command, *args], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 2, result.stderr
    assert "admin.token: required when" in result.stderr and "FOOTFALL_ADMIN_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr


def test_share_keys_are_per_site_and_per_token() -> None:
    key = share_key(TOKEN, "a.example")
    assert shared_site(TOKEN, f"a.example|{key}") == "a.example"
    assert shared_site(TOKEN, f"b.example|{key}") is None
    assert shared_site("another-token-entirely", f"a.example|{key}") is None
    assert shared_site(TOKEN, "a.example") is None and shared_site(TOKEN, "") is None


async def test_a_share_link_opens_one_sites_dashboard_and_nothing_else(guarded: str) -> None:
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as admin:
        async with admin.get(f"{guarded}/api/share?site=a.example", headers=bearer) as resp:
            link = (await resp.json())["url"]
        async with admin.get(f"{guarded}/api/share?site=a.example") as resp:
            assert resp.status == 401  # only an admin hands out links
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as guest:
        async with guest.get(f"{guarded}{link[:-1]}x", allow_redirects=False) as resp:
            assert resp.status == 404
        async with guest.get(f"{guarded}{link}", allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"] == "/dashboard?site=a.example"
            assert resp.cookies[SHARE_COOKIE]["samesite"] == "Lax" and resp.cookies[SHARE_COOKIE]["httponly"]
        async with guest.get(f"{guarded}/dashboard?site=a.example", allow_redirects=False) as resp:
            assert resp.status == 200
        async with guest.post(f"{guarded}/api/v2/query", json={"site_id": "a.example"}) as resp:
            assert resp.status == 200 and (await resp.json())["site"] == "a.example"
        async with guest.post(f"{guarded}/api/v2/query", json={"site_id": "b.example"}) as resp:
            assert resp.status == 401
        async with guest.post(f"{guarded}/api/v2/query", data=b"not json") as resp:
            assert resp.status == 401
        # the dashboard's batch: every query of it about the shared site, or none at all
        both = [{"site_id": "a.example"}, {"site_id": "a.example"}]
        async with guest.post(f"{guarded}/api/v2/batch", json={"queries": both}) as resp:
            assert resp.status == 200 and (await resp.json())["sites"] == ["a.example", "a.example"]
        for sneaky in ([{"site_id": "a.example"}, {"site_id": "b.example"}], [{"site_id": "a.example"}, 1], "x"):
            async with guest.post(f"{guarded}/api/v2/batch", json={"queries": sneaky}) as resp:
                assert resp.status == 401, sneaky
        async with guest.post(f"{guarded}/api/v2/batch", data=b"not json") as resp:
            assert resp.status == 401
        async with guest.get(f"{guarded}/api/v2/realtime?site_id=a.example") as resp:
            assert resp.status == 200
        async with guest.get(f"{guarded}/api/v2/realtime?site_id=b.example") as resp:
            assert resp.status == 401
        async with guest.get(f"{guarded}/api/v2/export?site_id=a.example") as resp:
            assert resp.status == 401  # raw events are not part of a dashboard
        async with guest.get(f"{guarded}/api/share?site=b.example") as resp:
            assert resp.status == 401  # a guest cannot mint links
