"""Access control of the admin listener: one aiohttp middleware.

With no ``admin.token`` everything is open (settings refuse that unless the
listener is on loopback). With a token:

- ``/metrics``, ``/healthz``, ``/readyz`` stay open (scrapers and probes), and so
  do the dashboard's static assets (code, no data) and the login page;
- ``/api/*`` needs ``Authorization: Bearer <token>`` or the login cookie, else
  401 with a JSON error; a cookie-authenticated write must come from this origin;
- every other page needs the login cookie, else a redirect to ``/login?next=…``.

The cookie holds an expiry and an HMAC of it keyed by the token, never the token
itself: changing the token logs everyone out, and a stolen cookie expires. All
secret comparisons are constant time (``hmac.compare_digest``).

A read-only share link per site (``/share/<site>/<key>``, the key an HMAC of the site
keyed by the token; an admin gets it from ``GET /api/share?site=``) sets a cookie that
opens that site's dashboard and its read queries, nothing else.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import time
from urllib.parse import quote, urlsplit

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

COOKIE = "ff_admin"
COOKIE_MAX_AGE = 30 * 86400
SHARE_COOKIE = "ff_share"
SHARE_SITE = web.RequestKey("footfall_share_site", str)  # the one site a share cookie opens
OPEN_PATHS = frozenset({"/metrics", "/healthz", "/readyz", "/login", "/favicon.ico"})
OPEN_PREFIXES = ("/dashboard/static/", "/share/")
SHARE_PAGES = frozenset({"/dashboard", "/dashboard/", "/dashboard/config.json"})
SHARE_QUERIES = frozenset({"/api/v2/query", "/api/v2/funnel"})
SHARE_BATCH = "/api/v2/batch"  # every query of the batch must be about the shared site


def session_value(token: str, expires: int) -> str:
    """The cookie for a session ending at ``expires`` (Unix seconds)."""
    mac = hmac.new(token.encode(), f"footfall-admin-session:{expires}".encode(), hashlib.sha256)
    return f"v1.{expires}.{mac.hexdigest()}"


def valid_session(token: str, value: str, now: float) -> bool:
    version, _, rest = value.partition(".")
    expires, _, _mac = rest.partition(".")
    if version != "v1" or not expires.isdigit() or int(expires) < now:
        return False
    return hmac.compare_digest(value.encode(), session_value(token, int(expires)).encode())


def valid_bearer(token: str, header: str) -> bool:
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


def share_key(token: str, site: str) -> str:
    return hmac.new(token.encode(), f"footfall-share:{site}".encode(), hashlib.sha256).hexdigest()[:32]


def shared_site(token: str, value: str) -> str | None:
    """The site a share cookie (``site|key``) opens, or None."""
    site, _, key = value.rpartition("|")
    if not site or not hmac.compare_digest(key.encode(), share_key(token, site).encode()):
        return None
    return site


async def share_allows(request: web.Request, site: str) -> bool:
    """A share cookie reads one site: its page and its queries; nothing else."""
    if request.method == "GET" and request.path in SHARE_PAGES:
        return True
    if request.method == "GET" and request.path == "/api/v2/realtime":
        return request.query.get("site_id") == site
    batch = request.path == SHARE_BATCH
    if request.method == "POST" and (batch or request.path in SHARE_QUERIES) and same_origin(request):
        try:
            body = json.loads(await request.read())  # aiohttp keeps the bytes for the handler
        except ValueError:
            return False
        queries = body.get("queries") if batch and isinstance(body, dict) else [body]
        return isinstance(queries, list) and all(isinstance(q, dict) and q.get("site_id") == site for q in queries)
    return False


def safe_next(target: str | None) -> str:
    """Only a path on this listener: ``//evil.example`` or ``https://…`` → ``/dashboard``."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/dashboard"
    return target


def same_origin(request: web.Request) -> bool:
    """Browsers send ``Origin`` on POST; it must name this host (``SameSite=Strict``
    already keeps the cookie off cross-site requests; this is the second lock)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc == request.host


def _is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def auth_middleware(token: str) -> Middleware:
    """The middleware for an admin app; with an empty token it lets everything through."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not token or _is_open(request.path):
            return await handler(request)
        api = request.path.startswith("/api/")
        if api and valid_bearer(token, request.headers.get("Authorization", "")):
            return await handler(request)
        if valid_session(token, request.cookies.get(COOKIE, ""), time.time()) and (
            not api or request.method in ("GET", "HEAD") or same_origin(request)
        ):
            return await handler(request)
        site = shared_site(token, request.cookies.get(SHARE_COOKIE, ""))
        if site is not None and await share_allows(request, site):
            request[SHARE_SITE] = site
            return await handler(request)
        if api:
            return web.json_response(
                {"error": "unauthorized: send Authorization: Bearer <admin.token>"},
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="footfall"'},
            )
        raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='/')}")

    return middleware


def login_routes(app: web.Application, token: str) -> None:
    """``GET /login`` shows the form, ``POST /login`` checks the token once and sets
    the cookie; ``POST /logout`` clears it. Nothing is added when there is no token."""
    if not token:
        return

    async def show(request: web.Request) -> web.Response:
        return _login_page(safe_next(request.query.get("next")), error="")

    async def submit(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        given = str(form.get("token", ""))
        target = safe_next(str(form.get("next", "")))
        if not same_origin(request) or not hmac.compare_digest(given.encode(), token.encode()):
            return _login_page(target, error="That token is not right.", status=401)
        response = web.HTTPSeeOther(target)
        response.set_cookie(
            COOKIE,
            session_value(token, int(time.time()) + COOKIE_MAX_AGE),
            max_age=COOKIE_MAX_AGE,
            path="/",
            httponly=True,
            samesite="Strict",
            secure=request.secure,
        )
        raise response

    async def logout(request: web.Request) -> web.StreamResponse:
        response = web.HTTPSeeOther("/login")
        response.del_cookie(COOKIE, path="/")
        raise response

    async def share_link(request: web.Request) -> web.Response:
        site = request.query.get("site", "")
        if not site or "/" in site or "|" in site:
            return web.json_response({"error": "site: a site host is required"}, status=400)
        return web.json_response({"url": f"/share/{quote(site, safe='')}/{share_key(token, site)}"})

    async def open_share(request: web.Request) -> web.StreamResponse:
        site, key = request.match_info["site"], request.match_info["key"]
        if not hmac.compare_digest(key.encode(), share_key(token, site).encode()):
            raise web.HTTPNotFound()
        response = web.HTTPSeeOther(f"/dashboard?site={quote(site, safe='')}")
        # Lax, not Strict: a share link is opened from mail or chat, another site.
        response.set_cookie(SHARE_COOKIE, f"{site}|{key}", path="/", httponly=True, samesite="Lax",
                            secure=request.secure)  # fmt: skip
        raise response

    app.router.add_get("/login", show)
    app.router.add_post("/login", submit)
    app.router.add_post("/logout", logout)
    app.router.add_get("/api/share", share_link)
    app.router.add_get("/share/{site}/{key}", open_share)


def _login_page(target: str, error: str, status: int = 200) -> web.Response:
    message = f'<p class="err" role="alert">{html.escape(error)}</p>' if error else ""
    body = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><title>Sign in · Footfall</title>
<meta name="color-scheme" content="light dark"><style>
body{{font:16px/1.5 system-ui,sans-serif;display:grid;place-items:center;min-height:90vh;margin:0 1rem}}
form{{max-width:22rem;width:100%}}input,button{{font:inherit;width:100%;box-sizing:border-box;padding:.6rem;
margin:.3rem 0}}button{{cursor:pointer}}.err{{color:#c0392b}}small{{opacity:.7}}</style></head>
<body><form method="post" action="/login"><h1>Footfall</h1>
<label for="token">Admin token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<input type="hidden" name="next" value="{html.escape(target)}">{message}
<button type="submit">Sign in</button>
<small>The token is <code>[admin] token</code> in the config or <code>FOOTFALL_ADMIN_TOKEN</code>.</small>
</form></body></html>"""
    return web.Response(text=body, content_type="text/html", status=status)
