"""Per-site query settings: ``[[collectors.sites]]`` (time zone, Apdex T), validated once.

Shape (TOML)::

    [[collectors.sites]]
    host = "shop.example"           # the event's ``site``: lower-case host, no port
    timezone = "Europe/Berlin"      # IANA name; day/week/month boundaries follow it
    apdex_threshold_ms = 300        # Apdex T of this site (default: collectors.apdex_threshold_ms)

A site that is not listed reads in UTC with the global Apdex T.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_HOST = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")
_KEYS = frozenset({"host", "timezone", "apdex_threshold_ms"})


@dataclass(frozen=True, slots=True)
class Site:
    host: str
    timezone: str = "UTC"
    apdex_threshold_ms: float | None = None  # None: the global collectors.apdex_threshold_ms


def valid_timezone(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def parse_sites(value: Any, path: str, errors: list[str]) -> tuple[Site, ...]:
    """The well-formed ``[[collectors.sites]]`` tables; errors name ``collectors.sites[i].key``."""
    if not isinstance(value, list):
        errors.append(f"{path}: must be a list of tables ([[collectors.sites]])")
        return ()
    out: list[Site] = []
    seen: set[str] = set()
    for i, item in enumerate(value):
        p = f"{path}[{i}]"
        if not isinstance(item, Mapping):
            errors.append(f"{p}: must be a table")
            continue
        for key in sorted(item.keys() - _KEYS):
            errors.append(f"{p}.{key}: unknown setting")
        ok = True
        host = item.get("host")
        if not isinstance(host, str) or not _HOST.match(host):
            errors.append(f"{p}.host: must be a lower-case host name without port, not {host!r}")
            ok = False
        elif host in seen:
            errors.append(f"{p}.host: {host!r} defined twice")
            ok = False
        tz = item.get("timezone", "UTC")
        if not isinstance(tz, str) or not valid_timezone(tz):
            errors.append(f"{p}.timezone: must be an IANA time zone like Europe/Berlin, not {tz!r}")
            ok = False
        apdex = item.get("apdex_threshold_ms")
        if apdex is not None and (isinstance(apdex, bool) or not isinstance(apdex, int | float) or apdex <= 0):
            errors.append(f"{p}.apdex_threshold_ms: must be a positive number, not {apdex!r}")
            ok = False
        if ok:
            assert isinstance(host, str) and isinstance(tz, str)
            seen.add(host)
            out.append(Site(host, tz, float(apdex) if apdex is not None else None))
    return tuple(out)
