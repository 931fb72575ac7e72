"""Background visitors for ``footfall demo``: realistic visits through the proxy.

:func:`plan_visit` is pure (a seeded ``random.Random`` in, a :class:`Visit` out):
where the visitor comes from (search, social, AI assistants, newsletters, paid
campaigns with ``utm_*``, direct), on which device and browser, from which country,
and which pages they open — browsing, the cart, the checkout (the demo's goals and
funnel), sometimes the slow or the failing page. :func:`drive` sends such visits to
the proxy on loopback at a bounded rate, so a new user sees every dashboard panel
filled within a minute. Tests use the same plans with a fixed seed.

A simulated visitor runs no JavaScript, so on a page the proxy gave the beacon's
script it reports what the script would (:func:`page_report`): Web Vitals
consistent with the page's own server time and the device (a phone on a slower
network than a desktop), and on leaving, the time engaged and how far it scrolled;
one visit in seven or so blocks the script (:data:`SCRIPT_BLOCKED`), as blockers do.
They go to the beacon's endpoint named by the injected tag, so the dashboard's Web
Vitals, TTFB split and engagement panels fill too. They are synthetic, as the
visits are.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from proxy.tasks import spawn

log = logging.getLogger(__name__)

UAS = {  # device → user agents (real browsers' strings)
    "desktop": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/18.1 Safari/605.1.15",
        "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    ),
    "mobile": (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/18.1 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Mobile Safari/537.36",
    ),
    "tablet": (
        "Mozilla/5.0 (iPad; CPU OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/18.1 Mobile/15E148 Safari/604.1",
    ),
}
DEVICE_WEIGHTS = {"desktop": 55, "mobile": 38, "tablet": 7}
# (weight, Referer or None, query string of the landing page)
SOURCES: tuple[tuple[int, str | None, str], ...] = (
    (30, "https://www.google.com/", ""),
    (6, "https://www.bing.com/", ""),
    (3, "https://duckduckgo.com/", ""),
    (18, None, ""),
    (5, "https://t.co/x1y2z3", ""),
    (5, "https://www.facebook.com/", ""),
    (3, "https://www.linkedin.com/", ""),
    (4, "https://news.ycombinator.com/item?id=1", ""),
    (3, "https://www.reddit.com/r/shopping/", ""),
    (4, "https://chatgpt.com/", ""),
    (7, None, "utm_source=newsletter&utm_medium=email&utm_campaign=spring_sale"),
    (6, "https://www.google.com/", "utm_source=google&utm_medium=cpc&utm_campaign=brand_search&gclid=demo"),
    (4, "https://www.facebook.com/", "utm_source=facebook&utm_medium=paid_social&utm_campaign=retargeting"),
    (2, "https://partner-blog.example/reviews", "utm_source=partner&utm_medium=affiliate&utm_campaign=reviews"),
)
COUNTRIES = {"US": 30, "DE": 14, "GB": 11, "FR": 8, "IN": 8, "BR": 6, "CA": 6, "NL": 5, "JP": 5, "ES": 4, "AU": 3}
LANDINGS = {"/": 40, "/products/1": 15, "/products/2": 10, "/products/3": 6, "/blog/hello-world": 12,
            "/blog/spring-collection": 8, "/slow": 3, "/broken": 1}  # fmt: skip
SCRIPT_BLOCKED = 0.15  # share of visits whose browser never runs the beacon (blockers, no JS)
BROWSE = ("/", "/products/1", "/products/2", "/products/3", "/products/4", "/blog/hello-world",
          "/blog/spring-collection", "/slow")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Step:
    method: str
    path: str  # with query string on the landing page
    navigation: bool = True  # a document navigation (GET pages, form posts)
    referer: str | None = None
    delay: float = 0.0  # seconds to wait before this step (thinking time)


@dataclass(frozen=True, slots=True)
class Visit:
    visitor: int  # index into a pool: the same index is a returning visitor
    user_agent: str
    country: str
    steps: tuple[Step, ...] = field(default=())
    device: str = "desktop"
    seed: int = 0  # for the beacon reports' numbers (page_report)
    blocks_script: bool = False  # an ad blocker or no JavaScript: the beacon never reports


# the beacon's tag as the proxy injects it (proxy/beacon/injector.py): the script's URL
# (whose directory holds the endpoint, ``e``) and the page id
_TAG = re.compile(rb'<script src="(/[^"]*/)[^"/]*\.js" defer data-ff-page="([0-9a-f]{32})"')
_SERVER_MS = re.compile(r"ff-(?:proxy|origin);dur=([0-9.]+)")
# a page's network round trips and rendering, by device: (min, max) ms
_NETWORK_MS = {"desktop": (15, 90), "tablet": (30, 160), "mobile": (40, 260)}
_RENDER_MS = {"desktop": (250, 1300), "tablet": (400, 2000), "mobile": (600, 3200)}


def page_report(rng: random.Random, device: str, page_id: str, url: str, referrer: str | None,
                server_ms: float, engaged_s: float) -> list[dict[str, Any]]:  # fmt: skip
    """The items the beacon's script would send for one page (pure): its Web Vitals
    (TTFB = network + the proxy's and the origin's time from ``Server-Timing``; FCP and
    LCP after it; CLS mostly small) and, on leaving, ``engaged_s`` seconds engaged."""
    ttfb = server_ms + rng.uniform(*_NETWORK_MS.get(device, _NETWORK_MS["desktop"]))
    render = rng.uniform(*_RENDER_MS.get(device, _RENDER_MS["desktop"]))
    fcp = ttfb + render * rng.uniform(0.35, 0.7)
    vitals = {"ttfb": round(ttfb, 1), "fcp": round(fcp, 1), "lcp": round(max(fcp, ttfb + render), 1),
              "cls": round(rng.choice((0.0, 0.0, 0.01, 0.02, 0.05, 0.12, 0.28)), 3),
              "inp": round(rng.uniform(40, 180 if device == "desktop" else 420), 1)}  # fmt: skip
    page = {"page_id": page_id, "url": url, "referrer": referrer or ""}
    return [
        {"kind": "vitals", **page, "vitals": vitals},
        {"kind": "engagement", **page, "engaged_ms": int(engaged_s * 1000), "scroll_depth": rng.randint(10, 100)},
    ]


def beacon_of(body: bytes) -> tuple[str, str] | None:
    """The endpoint path and page id of a page the proxy gave the script, or None."""
    found = _TAG.search(body)
    return None if found is None else (found[1].decode() + "e", found[2].decode())


def server_ms(server_timing: str) -> float:
    """The proxy's plus the origin's time from the page's ``Server-Timing``."""
    return sum(float(ms) for ms in _SERVER_MS.findall(server_timing))


def _pick(rng: random.Random, weighted: dict[str, int]) -> str:
    return rng.choices(list(weighted), weights=list(weighted.values()))[0]


def plan_visit(rng: random.Random, pool: int = 400) -> Visit:
    """One visit: source, device, country, and 1-6 steps (assets, API calls, checkout)."""
    device = _pick(rng, DEVICE_WEIGHTS)
    ua = rng.choice(UAS[device])
    _, referer, query = rng.choices(SOURCES, weights=[s[0] for s in SOURCES])[0]
    landing = _pick(rng, LANDINGS)
    steps = [Step("GET", landing + (f"?{query}" if query else ""), referer=referer)]
    here = landing
    buys = rng.random() < (0.35 if query else 0.18)
    for _ in range(rng.choices((0, 1, 2, 3, 4), weights=(40, 25, 18, 10, 7))[0]):
        nxt = rng.choice(BROWSE)
        steps.append(Step("GET", nxt, referer=_local(here), delay=rng.uniform(1, 6)))
        here = nxt
    for step in list(steps):
        if step.path.split("?")[0] != "/broken":
            steps.append(Step("GET", "/static/style.css", navigation=False, referer=_local(step.path)))
            break
    if buys or here.startswith("/products/"):
        product = here if here.startswith("/products/") else f"/products/{rng.randint(1, 4)}"
        if product != here:
            steps.append(Step("GET", product, referer=_local(here), delay=rng.uniform(1, 4)))
        steps.append(Step("GET", f"/api/price/{product.rsplit('/', 1)[1]}", navigation=False, referer=_local(product)))
        if buys or rng.random() < 0.3:
            steps.append(Step("POST", "/cart", referer=_local(product), delay=rng.uniform(2, 8)))  # → 303 /cart
            if buys:
                steps.append(Step("POST", "/checkout", referer=_local("/cart"), delay=rng.uniform(3, 10)))
    blocks = rng.random() < SCRIPT_BLOCKED
    return Visit(rng.randrange(pool), ua, _pick(rng, COUNTRIES), tuple(steps), device, rng.getrandbits(32), blocks)


def _local(path: str) -> str:
    return "http://{host}" + path.split("?")[0]


def headers(visit: Visit, step: Step, host: str, client_ip: str) -> dict[str, str]:
    out = {"User-Agent": visit.user_agent, "CF-IPCountry": visit.country, "X-Forwarded-For": client_ip}
    if step.navigation:
        out.update({"Accept": "text/html,application/xhtml+xml", "Sec-Fetch-Dest": "document",
                    "Sec-Fetch-Mode": "navigate"})  # fmt: skip
    else:
        out.update({"Accept": "*/*", "Sec-Fetch-Dest": "empty", "Sec-Fetch-Mode": "cors"})
    if step.referer:
        out["Referer"] = step.referer.replace("{host}", host)
    return out


class Visitors:
    """Cookie jars of a pool of simulated visitors (returning visitors keep theirs)."""

    def __init__(self) -> None:
        self._jars: dict[int, aiohttp.CookieJar] = {}

    def jar(self, visitor: int) -> aiohttp.CookieJar:
        if visitor not in self._jars:
            self._jars[visitor] = aiohttp.CookieJar(unsafe=True)  # unsafe: cookies for IP hosts
        return self._jars[visitor]


async def run_visit(base: str, host: str, visit: Visit, jar: aiohttp.CookieJar, pace: float = 1.0) -> int:
    """Send one visit's requests to ``base`` (the proxy), and the beacon's reports for
    its pages that got the script; ``pace`` scales the thinking time (0: no waiting).
    Returns the number of requests answered; a failure ends the visit quietly (the
    demo's traffic is decoration, never a reason to log errors)."""
    sent = 0
    ip = f"203.0.113.{visit.visitor % 250 + 1}"
    timeout = aiohttp.ClientTimeout(total=10)
    rng = random.Random(visit.seed)
    report = {"User-Agent": visit.user_agent, "CF-IPCountry": visit.country, "X-Forwarded-For": ip,
              "Content-Type": "text/plain;charset=UTF-8", "Sec-Fetch-Dest": "empty"}  # fmt: skip
    leaving: tuple[str, list[dict[str, Any]]] | None = None  # the open page's engagement, sent when it is left
    try:
        async with aiohttp.ClientSession(cookie_jar=jar, timeout=timeout) as http:

            async def send(endpoint: str, items: list[dict[str, Any]]) -> None:
                async with http.post(base + endpoint, data=orjson.dumps({"items": items}), headers=report) as r:
                    await r.read()

            for i, step in enumerate(visit.steps):
                if step.delay and pace:
                    await asyncio.sleep(step.delay * pace)
                if leaving is not None and step.navigation:
                    await send(*leaving)
                    leaving, sent = None, sent + 1
                hdrs = headers(visit, step, host, ip)
                async with http.request(step.method, base + step.path, headers=hdrs) as resp:
                    body = await resp.read()
                    timing = resp.headers.get("Server-Timing", "")
                    url = resp.url.path_qs  # after a form's redirect: the page shown
                sent += 1
                reports = step.navigation and not visit.blocks_script and "ff;desc=" in timing
                beacon = beacon_of(body) if reports else None
                if beacon is not None:  # what the script would send: vitals now, engagement on leaving
                    later = [s.delay for s in visit.steps[i + 1 :] if s.navigation]
                    engaged = later[0] if later else rng.uniform(5, 40)
                    vitals, engagement = page_report(
                        rng, visit.device, beacon[1], url, hdrs.get("Referer"), server_ms(timing), engaged
                    )
                    await send(beacon[0], [vitals])
                    leaving, sent = (beacon[0], [engagement]), sent + 1
            if leaving is not None:  # the last page: read for a while, then closed
                await asyncio.sleep(leaving[1][0]["engaged_ms"] / 1000 * pace)
                await send(*leaving)
                sent += 1
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.debug("demo visit ended early: %s", exc)
    return sent


async def drive(base: str, host: str, rate: float = 3.0, seed: int | None = None, warmup_visits: int = 25) -> None:
    """Visits until cancelled, at most ``rate`` requests per second on average
    (``warmup_visits`` start quickly so the dashboard fills in the first minute)."""
    rng = random.Random(seed)
    visitors = Visitors()
    running: set[asyncio.Task[int]] = set()
    started = 0
    try:
        while True:
            visit = plan_visit(rng)
            pace = 0.2 if started < warmup_visits else 1.0
            task = spawn(run_visit(base, host, visit, visitors.jar(visit.visitor), pace), name="demo-visit")
            running.add(task)
            task.add_done_callback(running.discard)
            started += 1
            # Spread the visit's requests over time: the next visit starts after as many
            # request slots as this one uses.
            await asyncio.sleep(len(visit.steps) / rate * (0.5 if started < warmup_visits else 1.0))
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)

