"""A real Footfall (``footfall run``, admin token set) with a known population in its
store, and helpers to ask its API the questions the page asks."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import random
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
import redis

from proxy.auth import COOKIE, session_value
from proxy.stream.embedded import free_port
from tests.browser import ARGS, CHROMIUM
from tests.collectors.factory import STREAM, event

SITE = "shop.example"
TZ = "Europe/Berlin"
TOKEN = "dashboard-test-token-0123456789"
CONFIG = f"""
[admin]
token = "{TOKEN}"

[[collectors.sites]]
host = "{SITE}"
timezone = "{TZ}"

[[collectors.goals]]
name = "buy"
method = "POST"
path = "/checkout"
status = "2xx,303"

[[collectors.goals]]
name = "pricing"
path = "/pricing"

[[collectors.funnels]]
name = "checkout"
steps = ["/pricing", "/cart", "/thank-you"]
"""
SOURCES = [  # (weight, referrer, utm, channel)
    (5, {"url": "https://www.google.com/", "host": "www.google.com", "medium": "search", "source": "Google"},
     {}, "Organic Search"),
    (3, {"medium": "direct"}, {}, "Direct"),
    (2, {"url": "https://t.co/", "host": "t.co", "medium": "social", "source": "Twitter"}, {}, "Organic Social"),
    (2, None, {"source": "newsletter", "medium": "email", "campaign": "spring"}, "Email"),
]  # fmt: skip
DEVICES = [("Chrome", "Windows", "desktop"), ("Safari", "iOS", "mobile"), ("Firefox", "Linux", "desktop")]
COUNTRIES = ["DE", "US", "FR", "GB"]
PAGES = ["/", "/pricing", "/blog/a", "/blog/b", "/cart"]


def population(seed: int = 7, sessions: int = 500) -> list[dict[str, Any]]:
    """Sessions over the last 56 days (so 7 d, 30 d and their previous periods all have
    data): 1-5 pageviews, minutes apart, assets, some checkouts, errors and slow pages,
    abandoned pages, and the beacon's vitals for half of the page views."""
    rng = random.Random(seed)
    now = time.time() - 600
    out: list[dict[str, Any]] = []
    for s in range(sessions):
        start = now - rng.uniform(0, 56 * 86400) * rng.choice((1, 1, 0.3))  # more recent traffic
        _, referrer, utm, channel = rng.choices(SOURCES, weights=[x[0] for x in SOURCES])[0]
        browser_name, os_name, device = rng.choice(DEVICES)
        visitor = f"v{rng.randrange(sessions * 2 // 3)}"
        common = {
            "site": SITE, "visitor": visitor, "session": f"s{s}", "country": rng.choice(COUNTRIES),
            "ua": {"browser": browser_name, "browser_version": "1", "os": os_name, "device": device},
            "referrer": referrer, "utm": utm, "channel": channel,
        }  # fmt: skip
        ts = start
        n = rng.choices((1, 2, 3, 5), weights=(4, 3, 2, 1))[0]
        path = rng.choice(PAGES)
        for i in range(n):
            slow = rng.random() < 0.05
            status = 500 if rng.random() < 0.03 else 200
            duration = rng.uniform(800, 2500) if slow else rng.uniform(5, 120)
            left = rng.random() < 0.05  # the visitor went away before the last byte
            pv = event(**common, ts=ts, path=path, status=status, duration_ms=duration, new_session=i == 0,
                       upstream_ms=duration * 0.8, error="client_disconnect" if left else None)  # fmt: skip
            out.append(pv)
            if rng.random() < 0.5:  # the beacon's report of the page view
                out.append(event(**common, ts=ts + 2, kind="vitals", via="beacon", path=path, page_id=pv["id"],
                                 upstream_ms=None, vitals={"ttfb": round(duration + rng.uniform(20, 300)),
                                                           "lcp": round(duration + 900)}))  # fmt: skip
            out.append(event(**common, ts=ts + 0.2, kind="request", path="/static/app.css", content_type="text/css",
                             duration_ms=rng.uniform(1, 10)))  # fmt: skip
            ts += rng.uniform(20, 150)
            path = rng.choice(PAGES)
        if rng.random() < 0.25:
            out.append(event(**common, ts=ts, kind="request", method="POST", path="/checkout", status=303,
                             content_type=None, duration_ms=rng.uniform(30, 200)))  # fmt: skip
            out.append(event(**common, ts=ts + 1, path="/thank-you"))
    return out


@dataclass
class Footfall:
    admin: str  # http://127.0.0.1:PORT
    data_dir: Path

    def api(self, path: str, body: dict[str, Any] | None = None, token: str | None = TOKEN) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.admin + path, data=data, method="POST" if data else "GET")
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def query(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.api("/api/v2/query", {"site_id": SITE, **body})  # type: ignore[no-any-return]

    def cookie(self) -> dict[str, Any]:
        """The login cookie, as the login form would set it (for tests not about logging in)."""
        value = session_value(TOKEN, int(time.time()) + 3600)
        return {"name": COOKIE, "value": value, "url": self.admin, "httpOnly": True, "sameSite": "Strict"}


def local_range(days: int) -> list[str]:
    """The page's ``N days`` preset: today and the N-1 days before, in the site's zone."""
    today = dt.datetime.now(ZoneInfo(TZ)).date()
    return [(today - dt.timedelta(days=days - 1)).isoformat(), today.isoformat()]


def _wait(predicate: Any, what: str, proc: subprocess.Popen[bytes], seconds: float = 45) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"footfall exited early while waiting for {what}"
        try:
            if predicate():
                return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@contextlib.contextmanager
def running(root: Path, events: list[dict[str, Any]] | None = None) -> Iterator[Footfall]:
    """``footfall run`` on free loopback ports with its data in ``root``, its store
    loaded with ``events`` (default :func:`population`); stopped on exit."""
    config = root / "footfall.toml"
    config.write_text(CONFIG)
    admin_port = free_port()
    log = open(root / "footfall.log", "wb")  # noqa: SIM115 - closed after the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxy.cli", "run", "--config", str(config), "--upstream", f"{SITE}=http://127.0.0.1:9",
         "--listen", f"127.0.0.1:{free_port()}", "--admin-listen", f"127.0.0.1:{admin_port}",
         "--data-dir", str(root / "data")],  # fmt: skip
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    app = Footfall(f"http://127.0.0.1:{admin_port}", root / "data")
    try:
        _wait(lambda: _status(app.admin + "/readyz") == 200, "readyz", proc)
        events = population() if events is None else events
        client = redis.Redis.from_url(f"unix://{root / 'data' / 'redis' / 'redis.sock'}")
        with client.pipeline(transaction=False) as pipe:
            for e in events:
                pipe.xadd(STREAM, {"event": orjson.dumps(e)})
            pipe.execute()
        client.close()
        expected = sum(1 for e in events if e["kind"] == "pageview")
        _wait(lambda: app.query({"metrics": ["pageviews"], "date_range": "all"})["results"][0]["metrics"][0]
              == expected, f"{expected} pageviews in the store", proc)  # fmt: skip
        yield app
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="package")
def footfall(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Footfall]:
    """``footfall run`` with the known :func:`population` in its store."""
    with running(tmp_path_factory.mktemp("dashboard")) as app:
        yield app


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium per module through Playwright's sync API (these page tests are plain
    functions). It overrides tests/browser.py's per-test async ``browser`` here; module
    scope, not session: while the sync API runs, the thread has an event loop, and every
    asyncio test after it would fail with "cannot be called from a running event loop"."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: browser tests need Debian's Chromium "
                    "(apt-get install -y chromium; make check installs it)", pytrace=False)  # fmt: skip
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield instance
        instance.close()


def _status(url: str) -> int:
    """The status of a GET, its connection closed (an unclosed one warns, and warnings fail tests)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:  # a 503 while starting: the error is the response
        exc.close()
        return int(exc.code)
