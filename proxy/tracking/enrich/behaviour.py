"""Per-actor behaviour → the event's ``bot_score``. Runs in the flush task, once per event.

Nothing here touches the response path: it reads what the :class:`~proxy.tracking.event.Exchange`
snapshot already holds (request headers in arrival order, visitor id and whether it came
back, consent, status, content type, timestamps).

Actors (bounded LRUs, ``enrichment.bot_score_actors`` each):

- a *visitor* actor per visitor cookie that came back (a browser, or a client with a
  cookie jar): one person, whatever address they roam from;
- a *client* actor per client address + User-Agent + site for requests without our
  cookie: a first visit, a client that drops cookies, or any client in cookieless mode or
  without consent;
- the visitor ids set on cookie-less requests wait in a third LRU until they come back,
  so the new visitor actor inherits that first request, and the client actor learns that
  a cookie it was given returned (it is then *shared*: see :class:`~.botscore.Actor`).

With the first-party beacon on, a proxied page the script was injected into carries a
``page_id``; it waits in a fourth LRU (page id → :class:`~.botscore.InjectedPage`) and
with the actor that fetched it, until a beacon event with the same ``page_id`` marks it
reported or the grace period after the actor left it ends (checked when that actor's
next event is scored; see :class:`~.botscore.InjectedPage`).

State is per proxy worker and in memory: with ``workers > 1`` a client's connections may
land on different workers, each seeing part of its traffic (the kernel spreads
connections, not sessions), and a restart forgets everything. Signals therefore need few
requests, and each is one worker's evidence only.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from proxy.tracking.enrich import headerprint
from proxy.tracking.enrich.botscore import (
    BEACON_GRACE,
    Actor,
    InjectedPage,
    Signal,
    leave_pages,
    note_injected,
    note_page,
    score,
    settle_beacon,
    state_signals,
)

if TYPE_CHECKING:
    from proxy.tracking.event import Exchange

_ASSET_TYPES = ("text/css", "text/javascript", "application/javascript", "application/x-javascript",
                "image/", "font/", "application/font", "application/x-font", "application/wasm",
                "video/", "audio/")  # fmt: skip
_HTML_TYPES = ("text/html", "application/xhtml")
_HEADERS_MISSING, _HEADER_ORDER = int(Signal.HEADERS_MISSING), int(Signal.HEADER_ORDER)
_HEADER_SIGNALS = _HEADERS_MISSING | _HEADER_ORDER
_HEADERS_OK = int(Signal.HEADERS_OK)
_TRAP = int(Signal.TRAP)
_COOKIE_RETURNED = int(Signal.COOKIE_RETURNED)
_VERDICT_CACHE = 4096
Browser = tuple[str | None, str | None]  # ua.browser, ua.browser_version


@dataclass(slots=True)
class _Pending:
    """A visitor id set on a cookie-less request, until it comes back."""

    client: tuple[str | None, str, str]
    signals: int
    ts: float
    page: bool
    injected: InjectedPage | None


class _Lru(OrderedDict[Any, Any]):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def touch(self, key: Any, factory: type | None = None) -> Any:
        value = self.get(key)
        if value is not None:
            self.move_to_end(key)
        elif factory is not None:
            value = self[key] = factory()
            if len(self) > self.size:
                self.popitem(last=False)
        return value


class BehaviourScorer:
    """``observe(exchange, path, ua) -> bot_score | None``; not thread-safe (flush task only)."""

    def __init__(self, *, cookie_mode: bool, honeypot_paths: tuple[str, ...], max_actors: int,
                 beacon_grace: float = BEACON_GRACE) -> None:  # fmt: skip
        self._cookie_mode = cookie_mode
        self._beacon_grace = beacon_grace
        self._injected = _Lru(max_actors)  # page id → InjectedPage, awaiting its report
        self._traps = frozenset(("/robots.txt", *honeypot_paths))
        self._visitors = _Lru(max_actors)
        self._clients = _Lru(max_actors)
        self._pending = _Lru(max_actors)
        self._sites_with_assets: set[str] = set()
        self._claims: dict[Browser, headerprint.Claim | None] = {}
        self._verdicts: dict[tuple[Browser, tuple[str, ...]], int] = {}  # by the header-order key

    def observe(self, ex: Exchange, path: str, ua: Mapping[str, Any]) -> int | None:
        """The event's ``bot_score`` (``None``: no evidence yet). ``path`` is the request
        path without query; ``ua`` the event's parsed ``ua`` object."""
        return score(self.record(ex, path, ua))

    def signals(self, ex: Exchange, path: str, ua: Mapping[str, Any]) -> Signal:
        """Like :meth:`observe`, but the signals themselves (for tests and tools)."""
        return Signal(self.record(ex, path, ua))

    def record(self, ex: Exchange, path: str, ua: Mapping[str, Any]) -> int:
        """Record the exchange; the signal mask of its actor so far."""
        request_signals = self._request_signals(ex, path, ua)
        page = _is_page(ex)
        injected = None
        if ex.page_id is not None and ex.extra is None:  # the beacon's script went out in it
            injected = InjectedPage(ex.ts)
            self._injected[ex.page_id] = injected
            if len(self._injected) > self._injected.size:
                self._injected.popitem(last=False)
        cookie_set = self._cookie_mode and ex.consent == "granted" and ex.visitor is not None
        if cookie_set and not ex.new_visitor:
            actor = self._visitor(ex.visitor)
            actor.signals |= request_signals  # one person: what they did once stays theirs
            remembered = actor.signals
        else:
            client = (ex.client_ip, ex.headers.get("User-Agent", ""), ex.site)
            actor = self._clients.touch(client, Actor)
            if cookie_set:
                actor.cookies_set += 1
                self._pending[ex.visitor] = _Pending(client, request_signals, ex.ts, page, injected)
                if len(self._pending) > self._pending.size:
                    self._pending.popitem(last=False)
            # A client key may be many people (NAT): header verdicts are per request, and
            # only a trap sticks, until the key turns out to be shared.
            actor.signals |= request_signals & _TRAP
            remembered = request_signals if actor.shared else request_signals | actor.signals
        if page and actor.injected and ex.headers.get("Sec-Fetch-Dest", "document") == "document":
            leave_pages(actor, ex.ts)  # a frame's document does not leave the page around it
        if injected is not None:
            note_injected(actor, injected)
        elif ex.extra is not None and ex.extra.get("via") == "beacon":
            reported: InjectedPage | None = self._injected.pop(ex.extra.get("page_id"), None)
            if reported is not None and not reported.reported:  # a page's first item only
                reported.reported = True
                actor.beacon_reported += 1
        if actor.injected:
            settle_beacon(actor, ex.ts, self._beacon_grace)
        if page:
            note_page(actor, ex.ts)
        elif _is_asset(ex):
            actor.assets += 1
            if len(self._sites_with_assets) < 10_000:
                self._sites_with_assets.add(ex.site)
        signals = remembered | state_signals(actor, ex.site in self._sites_with_assets)
        if signals & _HEADER_SIGNALS:
            signals &= ~_HEADERS_OK
        return signals

    def _visitor(self, visitor: Any) -> Actor:
        actor: Actor | None = self._visitors.touch(visitor)
        if actor is None:
            actor = self._visitors.touch(visitor, Actor)
            actor.signals |= _COOKIE_RETURNED
            first: _Pending | None = self._pending.pop(visitor, None)
            if first is not None:  # the request that set this cookie belongs to this actor
                actor.signals |= first.signals
                if first.page:
                    note_page(actor, first.ts)
                if first.injected is not None:
                    note_injected(actor, first.injected)
                origin: Actor | None = self._clients.get(first.client)
                if origin is not None:
                    origin.cookies_back += 1
                    origin.shared = True
        return actor

    def _request_signals(self, ex: Exchange, path: str, ua: Mapping[str, Any]) -> int:
        if path in self._traps:
            return _TRAP
        if not _is_page(ex) or not headerprint.secure_context(ex.scheme, ex.site):
            return 0
        browser = (ua.get("browser"), ua.get("browser_version"))
        if browser in self._claims:
            claim = self._claims[browser]
        else:
            if len(self._claims) >= _VERDICT_CACHE:
                self._claims.clear()
            claim = self._claims[browser] = headerprint.claim(*browser)
        if claim is None:
            return 0
        key = (browser, headerprint.order_key(ex.headers.keys()))
        found = self._verdicts.get(key)
        if found is None:
            verdict = headerprint.check(claim, key[1])
            found = (_HEADERS_MISSING if verdict.missing else 0) | (_HEADER_ORDER if verdict.out_of_order else 0)
            found = found or _HEADERS_OK
            if len(self._verdicts) >= _VERDICT_CACHE:
                self._verdicts.clear()  # few distinct orders per browser: refills at once
            self._verdicts[key] = found
        return found


def _is_page(ex: Exchange) -> bool:
    """A document fetch as a scraper makes one too: GET answered with HTML (not
    :attr:`Exchange.pageview`, which needs browser headers a script may not send)."""
    return ex.method == "GET" and ex.content_type is not None and ex.content_type.startswith(_HTML_TYPES)


def _is_asset(ex: Exchange) -> bool:
    return (
        ex.method == "GET"
        and ex.status < 400
        and ex.content_type is not None
        and ex.content_type.startswith(_ASSET_TYPES)
    )
