"""The known population of the end-to-end test, and the numbers it must produce.

Pure. A population is data: visitors (a browser or a bot) with sessions of hits
on a small shop. The expected analytics and performance numbers are derived
from that data by the rules of README.md "Collectors", written independently of the
collectors' code (no shared matcher, no shared aggregation): if both sides agree
it is because the collectors do what the documentation says.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qs

SITE = "shop.example"
ORIGIN = f"http://{SITE}"
NONE = "(none)"  # breakdown value of a missing dimension
GOOGLE = "https://www.google.com/"
FACEBOOK = "https://www.facebook.com/"

# --- the shop's responses (the upstream serves exactly these bodies) -----------------

ERROR_PAGES = frozenset({"/sale"})  # the sale page crashes: 500, with an HTML error page
CSS = b"body{font-family:sans-serif}.cart{float:right}"
API_JSON = b'{"items": 2, "total": "59.80"}'


def page_html(path: str) -> bytes:
    """The HTML body the shop answers ``path`` with (any status)."""
    title = "Internal Server Error" if path in ERROR_PAGES else f"Shop {path}"
    return (
        f"<!doctype html><html><head><title>{title}</title>"
        '<link rel="stylesheet" href="/static/app.css"></head>'
        f"<body><h1>{title}</h1>{'<p>lorem ipsum</p>' * 20}</body></html>"
    ).encode()


def route_of(path: str) -> str:
    """The route template the proxy is configured with (``/products/{id}``), else the path."""
    return "/products/{id}" if path.startswith("/products/") else path


# --- the population ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Agent:
    user_agent: str
    browser: str  # what ua-parser calls it
    device: str
    bot: bool = False


DESKTOP_CHROME = Agent(
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36", "Chrome", "desktop")  # fmt: skip
IPHONE_SAFARI = Agent(
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1", "Mobile Safari", "mobile")  # fmt: skip
ANDROID_TABLET = Agent(  # Android without "Mobile": a tablet
    "Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36", "Chrome", "tablet")  # fmt: skip
ANDROID_PHONE = Agent(
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36", "Chrome Mobile", "mobile")  # fmt: skip
GOOGLEBOT = Agent(
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "Googlebot", "bot", bot=True
)


class Kind(StrEnum):
    PAGE = "page"  # a document navigation (GET, Sec-Fetch-Dest: document)
    ASSET = "asset"  # the stylesheet
    API = "api"  # a fetch() of the cart JSON
    SUBMIT = "submit"  # the checkout form: POST /checkout, answered 303 → /thank-you


@dataclass(frozen=True, slots=True)
class Hit:
    kind: Kind
    url: str  # path and query
    referer: str | None = None
    source: str = NONE  # expected referrer_source of a page hit
    channel: str = "Direct"  # expected channel of a page hit

    @property
    def path(self) -> str:
        return self.url.partition("?")[0]

    @property
    def campaign(self) -> str:
        return parse_qs(self.url.partition("?")[2]).get("utm_campaign", [NONE])[0]

    @property
    def method(self) -> str:
        return "POST" if self.kind is Kind.SUBMIT else "GET"

    @property
    def status(self) -> int:
        if self.kind is Kind.SUBMIT:
            return 303
        return 500 if self.kind is Kind.PAGE and self.path in ERROR_PAGES else 200

    @property
    def body(self) -> bytes:
        return {Kind.PAGE: page_html(self.path), Kind.ASSET: CSS, Kind.API: API_JSON, Kind.SUBMIT: b""}[self.kind]

    @property
    def metric_kind(self) -> str:
        """The performance collector's ``kind`` label."""
        return {Kind.PAGE: "pageview", Kind.ASSET: "asset"}.get(self.kind, "api")


def land(url: str, referer: str | None = None, source: str = NONE, channel: str = "Direct") -> Hit:
    """The first pageview of a session (from outside the site, or typed in)."""
    return Hit(Kind.PAGE, url, referer, source, channel)


STYLESHEET = Hit(Kind.ASSET, "/static/app.css")
CART_API = Hit(Kind.API, "/api/cart")
SUBMIT = Hit(Kind.SUBMIT, "/checkout")


def session(first: Hit, *rest: Hit | str) -> tuple[Hit, ...]:
    """A session: ``first`` then hits on the page in view; a string is a click to that
    page (an internal navigation: Referer is the page in view, so source is the site
    itself and the channel Direct)."""
    hits, current = [first], first.url
    for item in rest:
        if isinstance(item, str):
            hits.append(Hit(Kind.PAGE, item, f"{ORIGIN}{current}", SITE, "Direct"))
            current = item
        else:
            hits.append(Hit(item.kind, item.url, f"{ORIGIN}{current}"))
    return tuple(hits)


@dataclass(frozen=True, slots=True)
class Visitor:
    name: str
    agent: Agent
    sessions: tuple[tuple[Hit, ...], ...]
    gpc: bool = False  # Sec-GPC: 1 → counted, but no cookie, no visitor, no session


SPRING = "utm_source=newsletter&utm_medium=email&utm_campaign=spring-sale"
SPRING_ADS = "utm_source=facebook&utm_medium=cpc&utm_campaign=spring-sale"

POPULATION: tuple[Visitor, ...] = (
    # from a Google search, browses, buys
    Visitor("alice", DESKTOP_CHROME, (session(
        land("/", GOOGLE, "Google", "Organic Search"), STYLESHEET, CART_API,
        "/products/1", "/products/2", "/cart", CART_API, "/checkout", SUBMIT, "/thank-you"),)),
    # from a Facebook post, bounces
    Visitor("bob", IPHONE_SAFARI, (session(land("/products/7", FACEBOOK, "Facebook", "Organic Social"),
                                           STYLESHEET),)),
    # the spring newsletter, abandons at checkout
    Visitor("carol", ANDROID_TABLET, (session(
        land(f"/?{SPRING}", channel="Email"), STYLESHEET, "/products/3", "/cart", "/checkout"),)),
    # a spring-sale Facebook ad, buys
    Visitor("dave", ANDROID_PHONE, (session(
        land(f"/products/5?{SPRING_ADS}", FACEBOOK, "Facebook", "Paid Social"),
        "/cart", "/checkout", SUBMIT, "/thank-you"),)),
    # typed the address, hits the crashing sale page; comes back after 31 idle minutes
    # straight to /checkout (a bookmark): a second session, out of funnel order
    Visitor("erin", DESKTOP_CHROME, (session(land("/"), "/sale"), session(land("/checkout")))),
    Visitor("frank", DESKTOP_CHROME, (session(land("/")),)),  # typed the address, bounces
    # opted out with Global Privacy Control: counted, never identified
    Visitor("grace", IPHONE_SAFARI, (session(land("/products/2", GOOGLE, "Google", "Organic Search"),
                                             STYLESHEET),), gpc=True),
    Visitor("googlebot", GOOGLEBOT, (session(land("/"), "/products/3"),)),
)  # fmt: skip

# The [collectors] goals and funnel, and the same rules written as plain predicates.
GOALS: list[dict[str, Any]] = [
    {"name": "purchase", "method": "POST", "path": "/checkout", "status": "2xx,303"},
    {"name": "cart", "path": "/cart"},  # a pageview goal
]
FUNNELS: list[dict[str, Any]] = [{"name": "checkout", "steps": ["/cart", "/checkout", "/thank-you"]}]


# --- the events the proxy must produce, and what the collectors must make of them ---------


@dataclass(frozen=True, slots=True)
class Ev:
    hit: Hit
    agent: Agent
    who: str | None  # visitor name; None for bots and opted-out visitors
    sess: tuple[str, int] | None

    @property
    def pageview(self) -> bool:
        return self.hit.kind is Kind.PAGE

    @property
    def error(self) -> bool:
        return self.hit.status >= 500

    def dim(self, name: str) -> str:
        h = self.hit
        return {
            "page": route_of(h.path), "referrer_source": h.source, "channel": h.channel,
            "utm_campaign": h.campaign, "browser": self.agent.browser, "device": self.agent.device,
        }[name]  # fmt: skip


# Session-scoped: every pageview of a session counts under its first pageview's value
# (README.md "Collectors", "Attribution"); the other dimensions are the pageview's own.
ACQUISITION = frozenset({"referrer_source", "channel", "utm_campaign"})

GOAL_RULES: dict[str, Callable[[Ev], bool]] = {
    "purchase": lambda e: e.hit.method == "POST" and e.hit.path == "/checkout" and e.hit.status == 303,
    "cart": lambda e: e.pageview and e.hit.path == "/cart",
}


def events(population: Iterable[Visitor] = POPULATION) -> list[Ev]:
    out = []
    for v in population:
        anonymous = v.agent.bot or v.gpc
        for i, hits in enumerate(v.sessions):
            for hit in hits:
                out.append(Ev(hit, v.agent, None if anonymous else v.name, None if anonymous else (v.name, i)))
    return out


def _ratio(a: float, b: float, digits: int = 4) -> float | None:
    return round(a / b, digits) if b else None


@dataclass
class Model:
    """Expected numbers for ``evs`` (all events of the population, bots included)."""

    evs: list[Ev]
    humans: list[Ev] = field(init=False)
    pageviews: list[Ev] = field(init=False)
    sessions: dict[tuple[str, int], list[Ev]] = field(init=False)  # session → its pageviews, in order

    def __post_init__(self) -> None:
        self.humans = [e for e in self.evs if not e.agent.bot]
        self.pageviews = [e for e in self.humans if e.pageview]
        self.sessions = defaultdict(list)
        for e in self.pageviews:
            if e.sess is not None:
                self.sessions[e.sess].append(e)

    def converted(self, sess: tuple[str, int]) -> bool:
        return any(rule(e) for e in self.humans if e.sess == sess for rule in GOAL_RULES.values())

    def dim(self, e: Ev, name: str) -> str:
        """``e``'s value of dimension ``name``: its session's first touch for acquisition."""
        if name in ACQUISITION and e.sess is not None:
            return self.sessions[e.sess][0].dim(name)
        return e.dim(name)

    def visitors(self) -> int:
        return len({e.who for e in self.pageviews if e.who})

    def stats(self) -> dict[str, Any]:
        """The exact fields of /api/v1/stats (``visitors`` is an HLL estimate of it)."""
        n, pv = len(self.sessions), len(self.pageviews)
        bounces = sum(len(s) == 1 for s in self.sessions.values())
        return {
            "pageviews": pv, "sessions": n, "bounce_rate": _ratio(bounces, n),
            "views_per_session": _ratio(pv, n, 2),
            "requests": sum(not e.pageview for e in self.humans),
            "errors": sum(e.error for e in self.humans),
            "bot_hits": sum(e.agent.bot for e in self.evs),
            "current_visitors": len({e.who for e in self.humans if e.who}),  # exact: a sorted set
        }  # fmt: skip

    def breakdown(self, dim: str) -> list[tuple[str, int, int, int]]:
        """``(value, pageviews, sessions, visitors)`` as the API orders them (pageviews desc,
        value). Sessions are first-touch; ``page`` has none (that is ``entry_page``)."""
        pv: Counter[str] = Counter(self.dim(e, dim) for e in self.pageviews)
        first: Counter[str] = Counter(s[0].dim(dim) for s in self.sessions.values())
        who: dict[str, set[str]] = defaultdict(set)
        for e in self.pageviews:
            if e.who:
                who[self.dim(e, dim)].add(e.who)
        rows = [(v, pv[v], 0 if dim == "page" else first[v], len(who[v])) for v in pv]
        return sorted(rows, key=lambda r: (-r[1], r[0]))

    def entry_exit(self, which: str) -> list[tuple[str, int, int, int]]:
        """``(page, sessions, visitors, converted sessions)`` by entry or exit page."""
        pick = 0 if which == "entry_page" else -1
        rows: dict[str, list[Any]] = defaultdict(lambda: [0, set(), 0])
        for sess, pvs in self.sessions.items():
            row = rows[route_of(pvs[pick].hit.path)]
            row[0] += 1
            row[1].add(sess[0])
            row[2] += self.converted(sess) if which == "entry_page" else 0
        out = [(v, r[0], len(r[1]), r[2]) for v, r in rows.items()]
        return sorted(out, key=lambda r: (-r[1], r[0]))

    def session_viewers(self, page: str) -> int:
        """Visitors with a session that viewed ``page``: the most an exit page's visitors
        can be, a session's earlier pages having been its exit between two applies."""
        return len({s[0] for s, pvs in self.sessions.items() if any(route_of(e.hit.path) == page for e in pvs)})

    def goals(self) -> list[dict[str, Any]]:
        """Per goal; ``converters`` is an HLL estimate, ``conversion_rate`` derives from it."""
        out = []
        for goal in GOALS:
            hits = [e for e in self.humans if GOAL_RULES[goal["name"]](e)]
            assert all(e.sess for e in hits), "every conversion of this population is in a session"
            by: dict[str, list[dict[str, Any]]] = {}
            for key, dim in (("by_channel", "channel"), ("by_campaign", "utm_campaign")):
                touch = {s: pvs[0].dim(dim) for s, pvs in self.sessions.items()}
                sessions_of = Counter(touch.values())
                conv = Counter(touch[e.sess] for e in hits if e.sess)
                cs = Counter(touch[s] for s in {e.sess for e in hits if e.sess})
                rows = [{"value": v, "conversions": n, "converted_sessions": cs[v], "sessions": sessions_of[v],
                         "conversion_rate": _ratio(cs[v], sessions_of[v])} for v, n in conv.items()]  # fmt: skip
                by[key] = sorted(rows, key=lambda r: (-r["conversions"], r["value"]))
            out.append({
                "goal": goal["name"], "conversions": len(hits),
                "converted_sessions": len({e.sess for e in hits}),
                "converters": len({e.who for e in hits}), **by,
            })  # fmt: skip
        return out

    def funnel(self, steps: list[str]) -> list[dict[str, Any]]:
        """Sessions reaching each step in order (a later step before the first does not count)."""
        reached = []
        for pvs in self.sessions.values():
            n = 0
            for e in pvs:
                if n < len(steps) and e.hit.path == steps[n]:
                    n += 1
            reached.append(n)
        counts = [sum(r > i for r in reached) for i in range(len(steps))]
        return [{"step": step, "sessions": n, "rate_from_start": _ratio(n, counts[0]),
                 "rate_from_previous": _ratio(n, counts[i - 1]) if i else (1.0 if n else None)}
                for i, (step, n) in enumerate(zip(steps, counts, strict=True))]  # fmt: skip

    def performance(self, dim: str) -> list[dict[str, Any]]:
        """/api/v1/pages/performance without the percentiles: sessions and conversions are
        landing-page sessions for ``page``, first-touch sessions for ``utm_campaign``."""
        pv: Counter[str] = Counter(self.dim(e, dim) for e in self.pageviews)
        err: Counter[str] = Counter(self.dim(e, dim) for e in self.pageviews if e.error)
        first = {s: pvs[0].dim(dim) for s, pvs in self.sessions.items()}
        sessions = Counter(first.values())
        conv = Counter(v for s, v in first.items() if self.converted(s))
        rows = [{"value": v, "pageviews": n, "error_rate": _ratio(err[v], n), "sessions": sessions[v],
                 "converted_sessions": conv[v], "conversion_rate": _ratio(conv[v], sessions[v])}
                for v, n in pv.items()]  # fmt: skip
        return sorted(rows, key=lambda r: (-r["pageviews"], r["value"]))

    # --- performance collector (every event, bots included: IT pays for their hits) ---

    def request_counts(self) -> Counter[tuple[str, str, str, str, str]]:
        """Observations per ``(site, route, method, status_class, kind)`` histogram series."""
        return Counter(
            (SITE, route_of(e.hit.path), e.hit.method, f"{e.hit.status // 100}xx", e.hit.metric_kind) for e in self.evs
        )

    def response_bytes(self) -> dict[tuple[str, str], float]:
        out: dict[tuple[str, str], float] = defaultdict(float)
        for e in self.evs:
            out[(SITE, e.hit.metric_kind)] += len(e.hit.body)
        return dict(out)

    def apdex(self) -> dict[tuple[str, str], float]:
        """Per route, with a threshold no loopback request reaches: errors alone frustrate."""
        total: Counter[str] = Counter(route_of(e.hit.path) for e in self.evs)
        good: Counter[str] = Counter(route_of(e.hit.path) for e in self.evs if not e.error)
        return {(SITE, r): good[r] / n for r, n in total.items()}
