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


class Signal(enum.IntFlag):
    """One bit each: an actor's signals are an ``int`` mask (set operations on enum
    members cost microseconds per event; ints cost nothing)."""

    # bot signals
    TRAP = 1  # fetched /robots.txt or a honeypot path
    HEADERS_MISSING = 2  # a browser UA without headers that browser always sends
    RATE = 4  # pages faster than anyone reads
    HEADER_ORDER = 8  # headers in an order the claimed browser never writes
    COOKIE_DROPPED = 16  # 3+ visitor cookies set, none ever came back
    NO_ASSETS = 32  # 3+ HTML pages, none of their CSS/JS/images
    REGULAR = 64  # page intervals as even as a timer
    # human signals
    COOKIE_RETURNED = 128
    ASSETS = 256
    HEADERS_OK = 512  # a browser's full header set, in its order
    # beacon signals (only where the first-party script was injected)
    BEACON_MISSING = 1024  # an injected page's script never reported, none ever did (weak)
    BEACON_REPORTED = 2048  # an injected page's script reported back


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
    # Weak both ways: blockers, failed loads and tabs closed at once leave a page
    # unreported too, and a headless browser runs the script like anyone.
    Signal.BEACON_MISSING: -10,
    Signal.BEACON_REPORTED: 10,
}

# Thresholds (why: README "Bot score").
MIN_PAGES = 3  # NO_ASSETS: pages seen before judging
MIN_COOKIES = 3  # COOKIE_DROPPED: cookies set before judging
RATE_PAGES = 10  # RATE: this many pages ...
RATE_SECONDS = 5.0  # ... within this many seconds
REGULAR_INTERVALS = 5  # REGULAR: intervals needed
REGULAR_CV = 0.1  # REGULAR: std/mean below this
REGULAR_MIN_MEAN = 0.2  # REGULAR: below this mean interval it is RATE's business
BEACON_GRACE = 30.0  # BEACON_MISSING: seconds after leaving a page its report may take (setting)
BEACON_PAGES = 8  # injected pages awaiting their report, per actor (older ones are forgotten)


# Plain ints for the per-event code: IntFlag operators run in Python.
_RATE, _REGULAR, _COOKIE_DROPPED = int(Signal.RATE), int(Signal.REGULAR), int(Signal.COOKIE_DROPPED)
_ASSETS, _NO_ASSETS = int(Signal.ASSETS), int(Signal.NO_ASSETS)
_BEACON_MISSING, _BEACON_REPORTED = int(Signal.BEACON_MISSING), int(Signal.BEACON_REPORTED)


def _score(mask: int) -> int | None:
    if not mask:
        return None
    return max(1, min(99, NEUTRAL + sum(w for signal, w in WEIGHTS.items() if mask & signal)))


_SCORES = tuple(_score(mask) for mask in range(1 << len(WEIGHTS)))  # every combination, 4,096


@dataclass(slots=True)
class InjectedPage:
    """A proxied HTML page the beacon's script was injected into, until its report
    comes back or its grace period ends. Shared by reference between the actor that
    fetched it and the scorer's page-id index.

    The script reports when the page is hidden or left (and 5 s after an interaction),
    so a reader's report comes *after* their next page's request: the grace period runs
    from ``left`` (the actor's next document fetch), not from the fetch itself — a page
    still open, however long, is never judged."""

    ts: float
    left: float | None = None
    reported: bool = False


@dataclass(slots=True)
class Actor:
    """Everything remembered about one actor (~0.5 KB). ``shared`` marks a client key
    that several visitors turned out to share (a cookie set on it came back): its
    per-client signals are then off, since NAT and carrier-grade NAT put many people
    behind one address and User-Agent."""

    signals: int = 0  # Signal bits noted per request (sticky)
    timing: int = 0  # RATE / REGULAR as of the last page
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
    injected: deque[InjectedPage] | None = None  # awaiting their report (only with the beacon on)
    beacon_reported: int = 0  # injected pages whose script reported
    beacon_missing: int = 0  # injected pages still unreported after the grace period


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
    actor.timing = timing_signals(actor)


def note_injected(actor: Actor, page: InjectedPage) -> None:
    """``actor`` fetched a page with the beacon's script in it."""
    if actor.injected is None:
        actor.injected = deque(maxlen=BEACON_PAGES)
    actor.injected.append(page)


def leave_pages(actor: Actor, ts: float) -> None:
    """The actor fetched another document at ``ts``: its open injected pages were left."""
    for page in reversed(actor.injected or ()):
        if page.left is not None:
            break  # older pages were left before
        page.left = ts


def settle_beacon(actor: Actor, now: float, grace: float) -> None:
    """Count the injected pages left more than ``grace`` seconds before ``now`` without a
    report (lazily: called when the actor's next event is scored, no timers). Pages are
    in fetch order, so the oldest unsettled one stops the walk."""
    pages = actor.injected
    while pages:
        page = pages[0]
        if not page.reported and (page.left is None or now - page.left <= grace):
            break
        pages.popleft()
        if not page.reported:
            actor.beacon_missing += 1


def timing_signals(actor: Actor) -> int:
    """RATE and REGULAR from the page timing kept in ``actor``."""
    out = 0
    recent = actor.recent_pages
    if len(recent) == RATE_PAGES and max(recent) - min(recent) < RATE_SECONDS:
        out |= _RATE
    if actor.intervals >= REGULAR_INTERVALS:
        mean = actor.interval_sum / actor.intervals
        if mean >= REGULAR_MIN_MEAN:
            variance = max(0.0, actor.interval_sq / actor.intervals - mean * mean)
            if math.sqrt(variance) / mean < REGULAR_CV:
                out |= _REGULAR
    return out


def state_signals(actor: Actor, site_has_assets: bool) -> int:
    """The signals read from counters (as opposed to those noted per request)."""
    if actor.shared:
        return 0  # many people behind one key: its counters describe no one
    out = actor.timing
    if actor.cookies_set >= MIN_COOKIES and actor.cookies_back == 0:
        out |= _COOKIE_DROPPED
    if actor.assets:
        out |= _ASSETS
    elif site_has_assets and actor.pages >= MIN_PAGES:
        out |= _NO_ASSETS
    if actor.beacon_reported:  # one report is enough: a missed page is then a blip
        out |= _BEACON_REPORTED
    elif actor.beacon_missing:
        out |= _BEACON_MISSING
    return out


def score(signals: int) -> int | None:
    """The bot score for a mask of signals; ``None`` when there are none (not enough evidence)."""
    return _SCORES[signals]
