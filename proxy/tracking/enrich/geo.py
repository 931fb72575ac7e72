"""Country: a trusted edge header, else a MaxMind-format database, else ``None``.

Never a guess: without a trusted header or a configured database the country is
null. The raw client IP is only looked up here, in memory, and never stored or
cached (a per-IP cache would be a log of raw addresses).
"""

from __future__ import annotations

import logging
from typing import Any

import maxminddb

log = logging.getLogger(__name__)

# Cloudflare: XX = unknown, T1 = Tor; ZZ = user-assigned "unknown" in several CDNs.
_NOT_A_COUNTRY = frozenset({"XX", "T1", "ZZ"})


def normalize_country(value: str | None) -> str | None:
    """An ISO 3166-1 alpha-2 code (upper-case), or ``None`` for anything else."""
    if not value:
        return None
    code = value.strip().upper()
    if len(code) != 2 or not code.isascii() or not code.isalpha() or code in _NOT_A_COUNTRY:
        return None
    return code


def record_country(record: Any) -> str | None:
    """The country code in a database record: GeoIP2/GeoLite2/DB-IP layout
    (``country.iso_code``) or a flat one (``country`` or ``country_code`` string)."""
    if not isinstance(record, dict):
        return None
    country = record.get("country")
    if isinstance(country, dict):
        country = country.get("iso_code")
    if country is None:
        country = record.get("country_code")
    return normalize_country(country) if isinstance(country, str) else None


class CountryLookup:
    """Resolves the event's ``country``; owns the database reader (``close()`` it)."""

    def __init__(self, database: str | None) -> None:
        self._reader: Any = None
        if database:
            # MODE_AUTO: the C extension with mmap when available.
            self._reader = maxminddb.open_database(database)
            log.info("GeoIP database %s loaded (%s)", database,
                     self._reader.metadata().database_type)  # fmt: skip

    def country(self, header: str | None, client_ip: str | None) -> str | None:
        """``header`` only comes from a trusted peer (the caller checks); it wins."""
        code = normalize_country(header)
        if code is not None or self._reader is None or not client_ip:
            return code
        try:
            return record_country(self._reader.get(client_ip))
        except ValueError:  # not an IP address, or an IPv6 address in an IPv4-only file
            return None

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
