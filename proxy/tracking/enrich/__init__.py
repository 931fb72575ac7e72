"""Enrichment: from raw request values to the event's ``ua``, ``bot``, ``bot_name``,
``referrer``, ``utm``, ``channel`` and ``country`` fields (DESIGN.md 3.3), and ``bot_score``.

Parts, one concern each:

- :mod:`.useragent` — ua-parser (uap-core) parse, device class, cached per UA string
- :mod:`.bots` — named bot markers (``config/bots.json``) + crawler-user-agents + isbot, one matcher
- :mod:`.sources` — the host → source index: Matomo's lists (``config/matomo/``) + ``config/referrers.json``
- :mod:`.referrer` — Referer split, classification against :mod:`.sources`, search terms; cached
- :mod:`.campaign` — ``utm_*`` and click ids (``config/campaigns.json``), pure
- :mod:`.channel` — GA4-style channel grouping, pure
- :mod:`.geo` — country from a trusted edge header or a MaxMind-format database
- :mod:`.headerprint` — the headers a claimed browser must send, and in which order (pure)
- :mod:`.botscore` — bot-score signals, weights and per-actor state (pure)
- :mod:`.behaviour` — per-actor LRUs → ``bot_score``; used by ``EventBuilder``, not by :class:`Enricher`
- :mod:`.data` — locating and reading the ``config/`` data files
- :mod:`.update_data` — re-imports newer copies of the vendored lists (Matomo, isbot)

:class:`Enricher` composes them; ``proxy.tracking.event.EventBuilder`` calls it once per event
in the publisher's flush task. Field meanings and channel rules: README.md "Enrichment".
Each step is contained: one that fails leaves its own fields null (``bot`` false)
and the event is still built; failures are logged, a few per step.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from proxy.settings import EnrichmentSettings
from proxy.tracking.enrich import data
from proxy.tracking.enrich.bots import BotMatcher
from proxy.tracking.enrich.campaign import extract_utm, is_paid, load_click_ids
from proxy.tracking.enrich.channel import channel
from proxy.tracking.enrich.geo import CountryLookup
from proxy.tracking.enrich.referrer import ReferrerClassifier
from proxy.tracking.enrich.sources import SourceIndex
from proxy.tracking.enrich.useragent import AgentParser

__all__ = ["Enricher"]

log = logging.getLogger(__name__)
_LOGGED_PER_STEP = 5  # a failing step is a bug or a data-file problem: say so, don't flood

# Referrer mediums that a paid campaign relabels as "paid"; internal and direct stay.
_PAYABLE = frozenset({"search", "social", "email", "chatbot", "unknown"})


class Enricher:
    """Stateful only through bounded caches and the GeoIP reader; not thread-safe by
    design (one per event loop). Loads data files and compiles matchers at init
    (~0.2 s), so build one per process, not per event."""

    def __init__(self, settings: EnrichmentSettings) -> None:
        self._bots = BotMatcher(data.load("bots.json"), data.load("isbot/patterns.json")["patterns"])
        self._agents = AgentParser(self._bots, settings.ua_cache_size)
        self._sources = SourceIndex(data.load("matomo/matomo.json"), data.load("referrers.json"))
        self._referrers = ReferrerClassifier(
            self._sources, settings.own_domains, settings.referrer_cache_size
        )
        self._click_ids = load_click_ids(data.load("campaigns.json"))
        self._geo = CountryLookup(settings.geoip_database)
        self._source_category = functools.lru_cache(maxsize=4096)(self._category)
        self._channel = functools.lru_cache(maxsize=4096)(channel)  # few distinct inputs
        self._failures: dict[str, int] = {}

    def enrich(
        self,
        *,
        site: str,
        path: str,
        query: list[tuple[str, str]],
        user_agent: str | None,
        referer: str | None,
        client_ip: str | None,
        country_header: str | None,
    ) -> dict[str, Any]:
        """The enrichment fields of one event: exactly ``ua, bot, bot_name, referrer,
        utm, channel, country``. Nested dicts are fresh copies the caller owns.

        ``country_header`` must already be filtered to trusted peers; ``client_ip`` is
        the raw address, used for the GeoIP look-up only and never kept.
        """
        ua: dict[str, Any] | None = None
        bot, bot_name = False, None
        try:
            agent = self._agents.lookup(user_agent)
            ua, bot, bot_name = dict(agent.ua), agent.bot, agent.bot_name
            if not bot and path in self._bots.paths:
                bot = True
                ua["device"] = "bot"
        except Exception:
            self._failed("ua")
        utm: dict[str, str] = {}
        click = None
        try:
            if query:
                utm, click = extract_utm(query, self._click_ids)
        except Exception:
            self._failed("utm")
        referrer: dict[str, Any] | None = None
        try:
            referrer = dict(self._referrers.classify(referer, site))
        except Exception:
            self._failed("referrer")
        event_channel: str | None = None
        try:
            event_channel = self._channel_of(referrer, utm, click)
        except Exception:
            self._failed("channel")
        country = None
        try:
            country = self._geo.country(country_header, client_ip)
        except Exception:
            self._failed("country")
        return {
            "ua": ua,
            "bot": bot,
            "bot_name": bot_name,
            "referrer": referrer,
            "utm": utm,
            "channel": event_channel,
            "country": country,
        }

    def _channel_of(self, referrer: dict[str, Any] | None, utm: dict[str, str], click: Any) -> str:
        """The marketing channel; relabels a paid campaign's referrer medium ``paid``."""
        ref_medium: str = referrer["medium"] if referrer is not None else "unknown"
        if utm:
            if referrer is not None and ref_medium in _PAYABLE and is_paid(utm, click):
                referrer["medium"] = "paid"
            utm_source = utm.get("source")
            ref_source = referrer.get("source") if referrer is not None else None
            category = self._source_category(utm_source or ref_source)
            click_kind = click.kind if click is not None and click.paid else None
            event_channel = self._channel(
                ref_medium, utm_source, utm.get("medium"), category, click_kind, True
            )
        else:
            event_channel = self._channel(ref_medium, None, None, None, None, False)
        value: str = event_channel.value
        return value

    def _failed(self, step: str) -> None:
        """A step raised: its fields stay null; the first few failures are logged."""
        n = self._failures[step] = self._failures.get(step, 0) + 1
        if n <= _LOGGED_PER_STEP:
            log.exception("enrichment step %r failed; its fields are left null", step)

    def close(self) -> None:
        """Release the GeoIP reader; idempotent."""
        self._geo.close()

    def _category(self, name: str | None) -> str | None:
        if not name:
            return None
        source = self._sources.by_name(name.lower())
        return source.medium if source is not None else None
