"""Event v1: the snapshot the hot path hands off, and the pure builder that turns it
into the event dict of DESIGN.md 3.3.

The hot path only fills an :class:`Exchange` (raw values it already holds) and
queues it. :func:`EventBuilder.build` runs later, in the publisher's flush task:
scrubbing, route templates, enrichment and IP anonymisation all happen there.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from multidict import CIMultiDictProxy

from proxy.settings import Settings
from proxy.tracking.enrich import Enricher
from proxy.tracking.enrich.behaviour import BehaviourScorer
from proxy.tracking.privacy import anonymize_ip, scrub_path, scrub_query
from proxy.tracking.routes import RouteTemplates

SCHEMA_VERSION = 1


def clean_text(value: str | None) -> str | None:
    """Request text as valid Unicode, safe to enrich and to encode as JSON.

    aiohttp keeps header and path bytes that are not UTF-8 (Latin-1 ``caf\\xe9``,
    ``\\xff\\xfe``) as lone surrogates, which no JSON encoder accepts; each such byte
    becomes U+FFFD here. ASCII, the common case, is returned as it is.
    """
    if value is None or value.isascii():
        return value
    try:
        raw = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that no undecodable byte stands for
        raw = value.encode("utf-8", "surrogatepass")
    return raw.decode("utf-8", "replace")


def new_event_id() -> str:
    """UUIDv7 as 32 hex chars: 48-bit Unix ms, version/variant bits, 74 random bits.

    Time-ordered, so stream consumers and warehouses can sort and dedupe on it.
    """
    # Mersenne Twister, not urandom: ids need uniqueness, not secrecy, and the
    # random module reseeds itself in forked children. 3x cheaper per event.
    # The random bits are drawn in their places (one mask, one or): a third cheaper
    # than moving them there (twice per HTML page when the beacon is on).
    return f"{time.time_ns() // 1_000_000 << 80 | random.getrandbits(76) & _ID_RANDOM | _ID_FIXED:032x}"


_ID_RANDOM = ((1 << 76) - 1) & ~(0b11 << 62)  # 12 bits after the version, 62 after the variant
_ID_FIXED = 0x7 << 76 | 0b10 << 62  # version 7, variant 0b10 (RFC 9562)


@dataclass(slots=True)
class Exchange:
    """What the hot path knows about one finished request/response exchange.

    Raw values only: nothing here is scrubbed or anonymised yet, so an Exchange
    never leaves the process; :meth:`EventBuilder.build` makes the event from it.
    """

    ts: float  # request received, Unix seconds
    method: str
    raw_path: str  # path and query exactly as received
    site: str  # Host without port, lower-case
    scheme: str  # the client's scheme (http/https), after trusted X-Forwarded-Proto
    headers: CIMultiDictProxy[str]  # request headers (immutable view)
    client_ip: str | None  # resolved client address, before anonymisation
    peer_trusted: bool  # the TCP peer is a trusted proxy: its edge headers count
    pageview: bool
    status: int
    bytes_out: int
    content_type: str | None
    duration_ms: float
    upstream_ms: float | None
    visitor: str | None
    session: str | None
    new_visitor: bool
    new_session: bool
    consent: str  # "granted" | "denied"
    trace_id: str
    error: str | None
    # The pageview's id, minted on the hot path when the beacon's tag names it
    # (proxy.beacon): the event's own ``id`` and ``page_id``.
    page_id: str | None = None
    # Fields of an event the first-party script sent (proxy.beacon.endpoint): they
    # replace the built ones (kind, via, page_id, vitals, ...).
    extra: dict[str, Any] | None = None
    # The trace started at this request (no valid incoming traceparent): its id is a
    # new event id, which the event takes as its own (headers.trace_context).
    trace_started: bool = False


class EventBuilder:
    """Turns an :class:`Exchange` into an event v1 dict. Pure apart from the id, the
    enricher's caches and the bot scorer's per-actor memory (events must be built in
    arrival order, one builder per worker); safe to call from the flush task only."""

    def __init__(self, settings: Settings, enricher: Enricher) -> None:
        self._privacy = settings.privacy
        self._routes = RouteTemplates(settings.routes)
        self._enricher = enricher
        self._country_headers = settings.enrichment.country_headers
        self._anonymized: dict[str, str | None] = {}  # client IPs repeat within visits
        e = settings.enrichment
        self._scorer = (
            BehaviourScorer(cookie_mode=settings.identity.mode == "cookie", honeypot_paths=e.honeypot_paths,
                            max_actors=e.bot_score_actors, beacon_grace=e.beacon_grace_seconds)  # fmt: skip
            if e.bot_score
            else None
        )

    def build(self, ex: Exchange) -> dict[str, Any]:
        """The event of one exchange. Every text taken from the request is cleaned
        with :func:`clean_text` first, whatever bytes the client sent."""
        raw_path = clean_text(ex.raw_path) or ""
        site = clean_text(ex.site) or ""
        path, _, raw_query = raw_path.partition("?")
        pairs = parse_qsl(raw_query, keep_blank_values=True) if raw_query else []
        headers = ex.headers
        country_header = None
        if ex.peer_trusted:
            for name in self._country_headers:
                country_header = headers.get(name)
                if country_header:
                    break
        enriched = self._enricher.enrich(
            site=site,
            path=path,
            query=pairs,
            user_agent=clean_text(headers.get("User-Agent")),
            referer=clean_text(headers.get("Referer")),
            client_ip=ex.client_ip,
            country_header=clean_text(country_header),
        )
        clean_path = scrub_path(path)
        ip = ex.client_ip
        if ip is not None and self._privacy.anonymize_ip:
            ip = self._anonymize(ip)
        event: dict[str, Any] = {
            "v": SCHEMA_VERSION,
            "id": ex.page_id or (ex.trace_id if ex.trace_started else new_event_id()),
            "ts": ex.ts,
            "kind": "pageview" if ex.pageview else "request",
            "site": site,
            "method": clean_text(ex.method),
            "path": clean_path,
            "route": self._routes.route(clean_path),
            "query": scrub_query(pairs, self._privacy),
            "status": ex.status,
            "bytes_out": ex.bytes_out,
            "content_type": ex.content_type,
            "duration_ms": round(ex.duration_ms, 3),
            "upstream_ms": None if ex.upstream_ms is None else round(ex.upstream_ms, 3),
            "visitor": ex.visitor,
            "session": ex.session,
            "new_visitor": ex.new_visitor,
            "new_session": ex.new_session,
            "ip": ip,
            "trace_id": ex.trace_id,
            "error": ex.error,
            "consent": ex.consent,
            "page_id": ex.page_id,
            "via": "proxy",
        }
        event.update(enriched)
        if self._scorer is not None:
            bot_score = self._scorer.observe(ex, path, enriched["ua"])
            if bot_score is not None:
                event["bot_score"] = bot_score
        if ex.extra is not None:
            event.update(ex.extra)
        return event

    def _anonymize(self, ip: str) -> str | None:
        try:
            return self._anonymized[ip]
        except KeyError:
            pass
        if len(self._anonymized) >= 50_000:
            self._anonymized.clear()  # crude bound; refilling costs ~3 µs per address
        anon = self._anonymized[ip] = anonymize_ip(ip)
        return anon
