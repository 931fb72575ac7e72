"""How well ``bot_score`` separates real browsers from scripts copying a browser's User-Agent.

A test population goes through a real Footfall proxy (real sockets, loopback only) to a
small site whose pages have CSS, JS and an image:

- humans: headless Chromium (Debian's /usr/bin/chromium via Playwright) with a normal
  Chrome User-Agent (``HeadlessChrome`` → ``Chrome``, so the UA bot list does not decide),
  following links with a reader's random pauses and loading every asset;
- scripts, each with a copied Chrome User-Agent: ``urllib`` (UA only), ``aiohttp`` with
  the browser-like header dict scrapers paste (with and without a cookie jar), and careful
  ``aiohttp`` clients sending Chrome's full header set in Chrome's order (pages only on a
  timer; with a cookie jar and assets and random pauses — expected to pass as human).

Every member gets its own client address through ``X-Forwarded-For`` from a trusted
loopback peer. Events are read back from the stream; a *session* (the analytics unit) is
flagged when its lowest ``bot_score`` is below the threshold; a *client* (one member)
when any of its sessions is. Prints precision and recall for both and each kind's
scores. Run: .venv/bin/python load_tests/eval_bots.py [--humans 8] [--scripts 3]
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import random  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from collections import defaultdict  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

import aiohttp  # noqa: E402
import orjson  # noqa: E402
from aiohttp import web  # noqa: E402

CHROME_UA = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
             "Chrome/131.0.0.0 Safari/537.36")  # fmt: skip
PAGES = 6
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
# What scrapers paste: a browser UA and the usual Accept headers, in the usual order.
COPIED = {"User-Agent": CHROME_UA, "Accept": "text/html,application/xhtml+xml,*/*;q=0.8",
          "Accept-Language": "en-US,en;q=0.9", "Accept-Encoding": "gzip, deflate"}  # fmt: skip
# Chrome's own navigation headers, in Chrome's order (copied from DevTools).
CHROME_FULL = {"sec-ch-ua": '"Google Chrome";v="131", "Chromium";v="131", "Not_A Brand";v="24"',
               "sec-ch-ua-mobile": "?0", "sec-ch-ua-platform": '"Linux"', "Upgrade-Insecure-Requests": "1",
               "User-Agent": CHROME_UA, "Accept": "text/html,application/xhtml+xml,*/*;q=0.8",
               "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-User": "?1",
               "Sec-Fetch-Dest": "document", "Accept-Encoding": "gzip, deflate",
               "Accept-Language": "en-US,en;q=0.9"}  # fmt: skip
SCRIPT_KINDS = ("urllib-ua-only", "aiohttp-copied", "aiohttp-copied-jar", "aiohttp-chrome-timer-jar",
                "aiohttp-chrome-random", "aiohttp-chrome-jar-assets")  # fmt: skip


def site_app() -> web.Application:
    """Pages that link to each other and load a stylesheet, a script and an image."""

    async def page(request: web.Request) -> web.Response:
        n = int(request.match_info.get("n", "0"))
        links = "".join(f'<a href="/p/{i}">page {i}</a> ' for i in range(PAGES))
        body = (f'<!doctype html><html><head><title>p{n}</title><link rel="stylesheet" href="/static/site.css">'
                f'<script src="/static/app.js"></script></head><body><img src="/static/logo.png">'
                f"<p>{'text ' * 200}</p>{links}</body></html>")  # fmt: skip
        return web.Response(text=body, content_type="text/html")

    async def static(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        kind = {"css": "text/css", "js": "application/javascript", "png": "image/png"}[name.rsplit(".", 1)[1]]
        return web.Response(body=b"/* asset */", content_type=kind, headers={"Cache-Control": "max-age=3600"})

    async def favicon(_: web.Request) -> web.Response:
        return web.Response(body=b"\0", content_type="image/x-icon")

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/p/{n}", page)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/favicon.ico", favicon)
    return app


@dataclass
class Member:
    ip: str  # its X-Forwarded-For address (its own /24, so anonymisation keeps members apart)
    kind: str
    human: bool


@dataclass
class Outcome:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    unscored_humans: int = 0
    unscored_bots: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


@dataclass
class Report:
    threshold: int
    sessions: Outcome = field(default_factory=Outcome)
    clients: Outcome = field(default_factory=Outcome)
    by_kind: dict[str, list[int | None]] = field(default_factory=dict)  # lowest score per member
    flagged_humans: list[str] = field(default_factory=list)


def _ip(i: int) -> str:
    return f"10.{i // 200}.{i % 200}.7"


async def _human(browser: Any, base: str, member: Member, rng: random.Random, think: tuple[float, float]) -> None:
    context = await browser.new_context(user_agent=CHROME_UA, extra_http_headers={"X-Forwarded-For": member.ip})
    try:
        page = await context.new_page()
        await page.goto(f"{base}/", wait_until="load")
        for _ in range(rng.randint(3, 5)):
            await asyncio.sleep(rng.uniform(*think))
            await page.click(f"a[href='/p/{rng.randrange(PAGES)}']")
            await page.wait_for_load_state("load")
    finally:
        await context.close()


def _urllib_pages(base: str, member: Member, gaps: list[float]) -> None:
    for i, gap in enumerate(gaps):
        request = urllib.request.Request(f"{base}/p/{i % PAGES}",
                                         headers={"User-Agent": CHROME_UA, "X-Forwarded-For": member.ip})  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as resp:
            resp.read()
        time.sleep(gap)


async def _aiohttp(base: str, member: Member, gaps: list[float], headers: dict[str, str], *,
                   jar: bool, assets: bool) -> None:  # fmt: skip
    cookie_jar: aiohttp.abc.AbstractCookieJar = aiohttp.CookieJar(unsafe=True) if jar else aiohttp.DummyCookieJar()
    async with aiohttp.ClientSession(cookie_jar=cookie_jar, skip_auto_headers=("User-Agent",)) as session:
        for i, gap in enumerate(gaps):
            async with session.get(f"{base}/p/{i % PAGES}", headers={**headers, "X-Forwarded-For": member.ip}) as r:
                await r.read()
            if assets:
                for name in ("site.css", "app.js", "logo.png"):
                    asset_headers = {**headers, "Accept": "*/*", "Sec-Fetch-Dest": "style",
                                     "Sec-Fetch-Mode": "no-cors", "X-Forwarded-For": member.ip}  # fmt: skip
                    asset_headers.pop("Sec-Fetch-User", None)
                    async with session.get(f"{base}/static/{name}", headers=asset_headers) as r:
                        await r.read()
            await asyncio.sleep(gap)


async def _script(base: str, member: Member, rng: random.Random, think: tuple[float, float]) -> None:
    timer = [think[0]] * PAGES
    reader = [rng.uniform(*think) for _ in range(PAGES)]
    if member.kind == "urllib-ua-only":
        await asyncio.to_thread(_urllib_pages, base, member, timer)
    elif member.kind == "aiohttp-copied":
        await _aiohttp(base, member, reader, COPIED, jar=False, assets=False)
    elif member.kind == "aiohttp-copied-jar":
        await _aiohttp(base, member, reader, COPIED, jar=True, assets=False)
    elif member.kind == "aiohttp-chrome-timer-jar":
        await _aiohttp(base, member, timer, CHROME_FULL, jar=True, assets=False)
    elif member.kind == "aiohttp-chrome-random":
        await _aiohttp(base, member, reader, CHROME_FULL, jar=False, assets=False)
    elif member.kind == "aiohttp-chrome-jar-assets":
        await _aiohttp(base, member, reader, CHROME_FULL, jar=True, assets=True)
    else:
        raise ValueError(member.kind)


async def run_population(base: str, *, humans: int, scripts_per_kind: int, seed: int = 7,
                         think: tuple[float, float] = (0.3, 1.5), parallel: int = 4) -> list[Member]:  # fmt: skip
    """Drive the population through the proxy at ``base``; at most ``parallel`` members at once."""
    from playwright.async_api import async_playwright

    rng = random.Random(seed)
    members = [Member(_ip(i), "chromium", True) for i in range(humans)]
    members += [Member(_ip(humans + i), kind, False)
                for i, kind in enumerate(k for k in SCRIPT_KINDS for _ in range(scripts_per_kind))]  # fmt: skip
    gate = asyncio.Semaphore(parallel)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:

            async def one(member: Member, member_rng: random.Random) -> None:
                async with gate:
                    if member.human:
                        await _human(browser, base, member, member_rng, think)
                    else:
                        await _script(base, member, member_rng, think)

            await asyncio.gather(*(one(m, random.Random(rng.random())) for m in members))
        finally:
            await browser.close()
    return members


def evaluate(events: list[dict[str, Any]], members: list[Member], threshold: int) -> Report:
    """Sessions and clients flagged (lowest non-zero score below ``threshold``) vs the truth."""
    by_ip = {m.ip.rsplit(".", 1)[0] + ".0": m for m in members}  # as anonymised (/24)
    sessions: dict[tuple[str, str], list[int]] = defaultdict(list)
    member_of: dict[tuple[str, str], Member] = {}
    for event in events:
        member = by_ip.get(event.get("ip") or "")
        if member is None:
            continue
        key = (member.ip, event.get("session") or event["id"])
        member_of[key] = member
        if event.get("bot_score"):
            sessions[key].append(event["bot_score"])
        else:
            sessions.setdefault(key, [])
    report = Report(threshold)
    lowest: dict[str, int | None] = {}
    for key, scores in sessions.items():
        member = member_of[key]
        low = min(scores) if scores else None
        if low is not None:
            lowest[member.ip] = low if lowest.get(member.ip) is None else min(low, lowest[member.ip] or 99)
        else:
            lowest.setdefault(member.ip, None)
        _count(report.sessions, member.human, low, threshold)
        if member.human and low is not None and low < threshold:
            report.flagged_humans.append(f"{member.ip} session {key[1][:8]}: {scores}")
    for member in members:
        low = lowest.get(member.ip)
        _count(report.clients, member.human, low, threshold)
        report.by_kind.setdefault(member.kind, []).append(low)
    return report


def _count(outcome: Outcome, human: bool, low: int | None, threshold: int) -> None:
    flagged = low is not None and low < threshold
    if human:
        outcome.fp += flagged
        outcome.tn += not flagged
        outcome.unscored_humans += low is None
    else:
        outcome.tp += flagged
        outcome.fn += not flagged
        outcome.unscored_bots += low is None


def print_report(report: Report) -> None:
    print(f"threshold {report.threshold} (flagged: lowest bot_score of the session below it)")
    for name, o in (("sessions", report.sessions), ("clients", report.clients)):
        print(f"{name:9} precision {o.precision:.2f}  recall {o.recall:.2f}  "
              f"(tp {o.tp}, fp {o.fp}, fn {o.fn}, tn {o.tn}; unscored: {o.unscored_humans} human, "
              f"{o.unscored_bots} scripted)")  # fmt: skip
    print("lowest score per client, by kind:")
    for kind, scores in report.by_kind.items():
        print(f"  {kind:28} {scores}")
    for line in report.flagged_humans:
        print("  FLAGGED HUMAN", line)


async def read_events(redis_url: str, expect_at_least: int, settle: float = 1.0) -> list[dict[str, Any]]:
    """Every event on the stream once its length stops growing for ``settle`` seconds."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)
    try:
        last, stable_since = -1, time.monotonic()
        while True:
            n = await client.xlen("footfall:events")
            quiet = time.monotonic() - stable_since
            if n != last:
                last, stable_since = n, time.monotonic()
            elif (n >= expect_at_least and quiet >= settle) or quiet > 10:
                break
            await asyncio.sleep(0.1)
        return [orjson.loads(fields[b"event"]) for _, fields in await client.xrange("footfall:events")]
    finally:
        await client.aclose()


async def main() -> None:
    from proxy.edge.server import ProxyWorker
    from proxy.settings import load
    from proxy.stream.embedded import EmbeddedRedis, free_port

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--humans", type=int, default=8)
    parser.add_argument("--scripts", type=int, default=2, help="clients per scripted kind")
    parser.add_argument("--threshold", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        redis = EmbeddedRedis(Path(tmp) / "redis", port=free_port()).start()
        runner = web.AppRunner(site_app(), access_log=None)
        await runner.setup()
        upstream_site = web.TCPSite(runner, "127.0.0.1", 0)
        await upstream_site.start()
        upstream = f"http://127.0.0.1:{runner.addresses[0][1]}"
        values = {"listen": "127.0.0.1:0", "data_dir": str(Path(tmp) / "data"), "upstreams": [upstream],
                  "trusted_proxies": ["127.0.0.1/32"], "publisher.flush_interval_ms": 5}  # fmt: skip
        settings = load(None, values, env={})
        worker = ProxyWorker(settings, redis_url=redis.url)
        await worker.start()
        try:
            t0 = time.perf_counter()
            members = await run_population(f"http://127.0.0.1:{worker.port}", humans=args.humans,
                                           scripts_per_kind=args.scripts)  # fmt: skip
            events = await read_events(redis.url, len(members))
            print(f"{len(members)} clients, {len(events)} events in {time.perf_counter() - t0:.1f} s")
            print_report(evaluate(events, members, args.threshold))
        finally:
            await worker.stop(grace=2.0)
            await runner.cleanup()
            redis.kill()


if __name__ == "__main__":
    asyncio.run(main())
