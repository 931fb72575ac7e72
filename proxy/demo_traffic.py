"""Background visitors for ``footfall demo``: realistic visits through the proxy.

:func:`plan_visit` is pure (a seeded ``random.Random`` in, a :class:`Visit` out):
where the visitor comes from (search, social, AI assistants, newsletters, paid
campaigns with ``utm_*``, direct), on which device and browser, from which country,
and which pages they open — browsing, the cart, the checkout (the demo's goals and
funnel), sometimes the slow or the failing page. :func:`drive` sends such visits to
the proxy on loopback at a bounded rate, so a new user sees every dashboard panel
filled within a minute. Tests use the same plans with a fixed seed.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field

import aiohttp

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
    return Visit(rng.randrange(pool), ua, _pick(rng, COUNTRIES), tuple(steps))


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
    """Send one visit's requests to ``base`` (the proxy); ``pace`` scales the thinking
    time (0: no waiting). Returns the number of requests answered; a failure ends
    the visit quietly (the demo's traffic is decoration, never a reason to log errors)."""
    sent = 0
    ip = f"203.0.113.{visit.visitor % 250 + 1}"
    timeout = aiohttp.ClientTimeout(total=10)
    try:
        async with aiohttp.ClientSession(cookie_jar=jar, timeout=timeout) as http:
            for step in visit.steps:
                if step.delay and pace:
                    await asyncio.sleep(step.delay * pace)
                hdrs = headers(visit, step, host, ip)
                async with http.request(step.method, base + step.path, headers=hdrs) as resp:
                    await resp.read()
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

