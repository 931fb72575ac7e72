"""Enrichment: from raw request values to the event's `ua`, `bot`, `bot_name`,
`referrer`, `utm`, `channel` and `country` fields.

INTERFACE CONTRACT (used by proxy.event.EventBuilder; implementation in progress):

    class Enricher:
        def __init__(self, settings: proxy.settings.EnrichmentSettings) -> None
        def enrich(self, *, site: str, path: str, query: list[tuple[str, str]],
                   user_agent: str | None, referer: str | None,
                   client_ip: str | None, country_header: str | None) -> dict[str, Any]
            # returns exactly the keys: ua, bot, bot_name, referrer, utm, channel, country
        def close(self) -> None   # releases the GeoIP reader, if any
"""
