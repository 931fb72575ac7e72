"""Behavioural bot score: signals, their weights, and the per-actor state they are read from.

Pure. An *actor* is what one client looks like to one proxy worker: a visitor cookie that
came back, or, until one does, the client address + User-Agent + site (see
:mod:`proxy.tracking.enrich.behaviour`). Each signal is a fact a proxy sees without any
JavaScript; the score combines them the way Cloudflare's bot score reads (1 = automated,
99 = human)::

    bot_score = clamp(50 + sum(human weights) - sum(bot weights), 1, 99)

and is only given once at least one signal was observable (else the event has none). The
table in README.md "Bot score" mirrors :data:`WEIGHTS`; weights were set so that one bot
signal alone does not cross the default threshold (30) when the client also shows the
human signals, but two bot signals, or one strong one with no human signal, do.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from dataclasses import dataclass, field

NEUTRAL = 50


class Signal(enum.Enum):
    # bot signals
    TRAP = "trap"  # fetched /robots.txt or a honeypot path
    HEADERS_MISSING = "headers_missing"  # a browser UA without headers that browser always sends
    RATE = "rate"  # pages faster than anyone reads
    HEADER_ORDER = "header_order"  # headers in an order the claimed browser never writes
    COOKIE_DROPPED = "cookie_dropped"  # 3+ visitor cookies set, none ever came back
    NO_ASSETS = "no_assets"  # 3+ HTML pages, none of their CSS/JS/images
    REGULAR = "regular"  # page intervals as even as a timer
    # human signals
    COOKIE_RETURNED = "cookie_returned"
    ASSETS = "assets"
    HEADERS_OK = "headers_ok"  # a browser's full header set, in its order


WEIGHTS: dict[Signal, int] = {
    Signal.TRAP: -60,
    Signal.HEADERS_MISSING: -45,
    Signal.RATE: -35,
    Signal.HEADER_ORDER: -35,
    Signal.COOKIE_DROPPED: -30,
    Signal.NO_ASSETS: -30,
    Signal.REGULAR: -25,
    Signal.COOKIE_RETURNED: 20,
    Signal.ASSETS: 15,
    Signal.HEADERS_OK: 10,
}

# Thresholds (why: README "Bot score").
MIN_PAGES = 3  # NO_ASSETS: pages seen before judging
MIN_COOKIES = 3  # COOKIE_DROPPED: cookies set before judging
RATE_PAGES = 10  # RATE: this many pages ...
RATE_SECONDS = 5.0  # ... within this many seconds
REGULAR_INTERVALS = 5  # REGULAR: intervals needed
REGULAR_CV = 0.1  # REGULAR: std/mean below this
REGULAR_MIN_MEAN = 0.2  # REGULAR: below this mean interval it is RATE's business


@dataclass(slots=True)
class Actor:
    """Everything remembered about one actor (~0.5 KB). ``shared`` marks a client key
    that several visitors turned out to share (a cookie set on it came back): its
    per-client signals are then off, since NAT and carrier-grade NAT put many people
    behind one address and User-Agent."""

    signals: set[Signal] = field(default_factory=set)
    pages: int = 0
    assets: int = 0
    cookies_set: int = 0
    cookies_back: int = 0
    shared: bool = False
    last_page: float | None = None
    intervals: int = 0
    interval_sum: float = 0.0
    interval_sq: float = 0.0
    recent_pages: deque[float] = field(default_factory=lambda: deque(maxlen=RATE_PAGES))


def note_page(actor: Actor, ts: float) -> None:
    """An HTML document fetched at ``ts`` (Unix seconds): counts, timing, rate."""
    actor.pages += 1
    if actor.last_page is not None:
        gap = max(0.0, ts - actor.last_page)
        actor.intervals += 1
        actor.interval_sum += gap
        actor.interval_sq += gap * gap
    actor.last_page = ts if actor.last_page is None else max(ts, actor.last_page)
    actor.recent_pages.append(ts)


def timing_signals(actor: Actor) -> set[Signal]:
    """RATE and REGULAR from the page timing kept in ``actor``."""
    out: set[Signal] = set()
    recent = actor.recent_pages
    if len(recent) == RATE_PAGES and max(recent) - min(recent) < RATE_SECONDS:
        out.add(Signal.RATE)
    if actor.intervals >= REGULAR_INTERVALS:
        mean = actor.interval_sum / actor.intervals
        if mean >= REGULAR_MIN_MEAN:
            variance = max(0.0, actor.interval_sq / actor.intervals - mean * mean)
            if math.sqrt(variance) / mean < REGULAR_CV:
                out.add(Signal.REGULAR)
    return out


def state_signals(actor: Actor, site_has_assets: bool) -> set[Signal]:
    """The signals read from counters (as opposed to those noted per request)."""
    out: set[Signal] = set()
    if actor.shared:
        return out  # many people behind one key: its counters describe no one
    if actor.cookies_set >= MIN_COOKIES and actor.cookies_back == 0:
        out.add(Signal.COOKIE_DROPPED)
    if actor.assets:
        out.add(Signal.ASSETS)
    elif site_has_assets and actor.pages >= MIN_PAGES:
        out.add(Signal.NO_ASSETS)
    return out | timing_signals(actor)


def score(signals: set[Signal]) -> int | None:
    """The bot score for these signals; ``None`` when there are none (not enough evidence)."""
    if not signals:
        return None
    return max(1, min(99, NEUTRAL + sum(WEIGHTS[s] for s in signals)))
