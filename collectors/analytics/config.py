"""Store settings: the ``[analytics]`` config table, validated once.

Shape of the raw mapping (TOML; env and flags set the same keys as strings)::

    [analytics]
    store_url = "clickhouse://user:pass@host:8123/footfall"  # unset: embedded chDB
    ttl_days = 730                # raw events kept this long (a TTL on the table)
    max_threads = 2               # engine threads per query (leave a core to the proxy)
    max_memory_usage = 1073741824 # bytes one query may use (RSS cap, see README)
    batch_size = 5000             # loader: events per insert (at least 1000) ...
    flush_seconds = 1.0           # ... or whatever arrived within this time
    cluster = "footfall"          # ClickHouse cluster: ON CLUSTER + Replicated/Distributed DDL

Errors are appended as ``"analytics.key: message"``. ``FOOTFALL_STORE_URL`` and
``--store-url`` set ``store_url`` (flags > env > file, proxy/settings.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

DEFAULT_DATABASE = "footfall"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_SCHEMES = {"clickhouse": ("http", 8123), "clickhouses": ("https", 8443)}


@dataclass(frozen=True, slots=True)
class ServerUrl:
    """A ClickHouse server reached over HTTP(S) by clickhouse-connect."""

    interface: str  # "http" | "https"
    host: str
    port: int
    database: str
    username: str = "default"
    password: str = ""


@dataclass(frozen=True, slots=True)
class StoreSettings:
    store_url: str | None = None  # None: embedded chDB under DATA_DIR/analytics
    ttl_days: int = 730
    max_threads: int = 2
    max_memory_usage: int = 1 << 30
    batch_size: int = 5000
    flush_seconds: float = 1.0
    cluster: str | None = None

    @property
    def server(self) -> ServerUrl | None:
        return parse_store_url(self.store_url) if self.store_url else None

    @property
    def database(self) -> str:
        server = self.server
        return server.database if server else DEFAULT_DATABASE

    def engine_settings(self) -> dict[str, int]:
        """Per-query caps sent with every query (chDB) or set on the client (server)."""
        return {"max_threads": self.max_threads, "max_memory_usage": self.max_memory_usage}


def parse_store_url(url: str) -> ServerUrl:
    """``clickhouse[s]://[user[:pass]@]host[:port][/db]`` → :class:`ServerUrl`; ValueError if not."""
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES:
        raise ValueError(f"must be clickhouse://[user:pass@]host:8123/db or clickhouses://..., not {url!r}")
    interface, default_port = _SCHEMES[parts.scheme]
    try:
        port = parts.port or default_port
    except ValueError:
        raise ValueError(f"bad port in {url!r}") from None
    if not parts.hostname:
        raise ValueError(f"no host in {url!r}")
    if parts.query or parts.fragment:
        raise ValueError("must not have a query or fragment")
    database = parts.path.strip("/") or DEFAULT_DATABASE
    if not _IDENT.match(database):
        raise ValueError(f"database name must be letters, digits and _, not {database!r}")
    return ServerUrl(
        interface=interface,
        host=parts.hostname,
        port=port,
        database=database,
        username=unquote(parts.username) if parts.username else "default",
        password=unquote(parts.password) if parts.password else "",
    )


_INTS = {"ttl_days": 1, "max_threads": 1, "max_memory_usage": 64 << 20, "batch_size": 1000}


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def parse(raw: Mapping[str, Any], errors: list[str]) -> StoreSettings:
    """Validate the raw ``[analytics]`` table; append ``"analytics.key: message"`` errors."""
    if not isinstance(raw, Mapping):
        errors.append("analytics: must be a table")
        return StoreSettings()
    values: dict[str, Any] = {}
    for key, value in raw.items():
        path = f"analytics.{key}"
        if key in _INTS:
            number = _int(value)
            if number is None or number < _INTS[key]:
                errors.append(f"{path}: must be an integer of at least {_INTS[key]}, not {value!r}")
            else:
                values[key] = number
        elif key == "flush_seconds":
            try:
                seconds = float(value) if not isinstance(value, bool) else -1.0
            except (TypeError, ValueError):
                seconds = -1.0
            if not 0 < seconds <= 60:
                errors.append(f"{path}: must be a number of seconds in (0, 60], not {value!r}")
            else:
                values[key] = seconds
        elif key == "store_url":
            if value in (None, ""):
                continue
            try:
                parse_store_url(str(value))
            except ValueError as exc:
                errors.append(f"{path}: {exc}")
            else:
                values[key] = str(value)
        elif key == "cluster":
            if value in (None, ""):
                continue
            if not isinstance(value, str) or not _IDENT.match(value):
                errors.append(f"{path}: must be a cluster name (letters, digits, _), not {value!r}")
            else:
                values[key] = value
        else:
            errors.append(f"{path}: unknown setting")
    settings = StoreSettings(**values)
    if settings.cluster and not settings.store_url:
        errors.append("analytics.cluster: needs analytics.store_url (the embedded store is one process)")
    return settings
