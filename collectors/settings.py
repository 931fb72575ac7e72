"""Collector settings: the ``[collectors]`` table of the config file, validated once.

Shape of the raw mapping (TOML)::

    [collectors]
    batch_size = 500              # entries per XREADGROUP (performance; the loader: [analytics])
    claim_idle_ms = 60000         # pending this long → another consumer claims it
    max_deliveries = 5            # deliveries before an entry goes to the dead letter
    apdex_threshold_ms = 500      # Apdex T; errors count as frustrated
    apdex_window_seconds = 300    # sliding window of the Apdex gauge
    top_routes = 500              # route label values per metric before "other"
    top_sites = 100

    [[collectors.goals]]
    name = "signup"
    method = "POST"               # method and/or status → a request goal
    path = "/signup"              # glob, "*" matches anything
    status = "2xx,303"

    [[collectors.goals]]
    name = "pricing"              # no method/status → a pageview goal
    path = "/pricing*"

    [[collectors.funnels]]
    name = "checkout"
    steps = ["/cart", "/checkout", "/thank-you"]

Errors are appended as ``"collectors.goals[0].path: message"``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from collectors.query.sites import Site, parse_sites

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def glob_regex(pattern: str) -> re.Pattern[str]:
    """``*`` matches any run of characters, everything else is literal; anchored."""
    return re.compile("^" + ".*".join(re.escape(p) for p in pattern.split("*")) + "$")


def parse_status(spec: str | int | list[Any]) -> frozenset[int]:
    """``"2xx,303"`` / ``[200, "3xx"]`` → the set of matching codes; ValueError if malformed."""
    items = spec if isinstance(spec, list) else str(spec).replace(" ", "").split(",")
    codes: set[int] = set()
    for item in items:
        text = str(item).strip().lower()
        if len(text) == 3 and text.endswith("xx") and text[0] in "12345":
            base = int(text[0]) * 100
            codes.update(range(base, base + 100))
        elif text.isdigit() and 100 <= int(text) <= 599:
            codes.add(int(text))
        else:
            raise ValueError(f"not a status code or class like 2xx: {item!r}")
    return frozenset(codes)


@dataclass(frozen=True, slots=True)
class Goal:
    """A pageview of ``path`` (no method, no status), or a request matching all given parts."""

    name: str
    path: str
    method: str | None = None
    status: frozenset[int] = frozenset()

    @property
    def pageview_only(self) -> bool:
        return self.method is None and not self.status


@dataclass(frozen=True, slots=True)
class Funnel:
    name: str
    steps: tuple[str, ...]  # path globs, in order


@dataclass(frozen=True, slots=True)
class CollectorSettings:
    goals: tuple[Goal, ...] = ()
    funnels: tuple[Funnel, ...] = ()
    batch_size: int = 500
    block_ms: int = 500
    claim_idle_ms: int = 60_000
    max_deliveries: int = 5
    dead_letter_maxlen: int = 100_000
    apdex_threshold_ms: float = 500.0
    apdex_window_seconds: int = 300
    top_routes: int = 500
    top_sites: int = 100
    sites: tuple[Site, ...] = ()  # [[collectors.sites]]: time zone, Apdex T (query API)
    bot_score_threshold: int = 30  # bot_score 1..this counts as a bot in queries; 0 = off

    def site(self, host: str) -> Site:
        """The site's settings; an unlisted host reads in UTC with the global Apdex T."""
        return next((s for s in self.sites if s.host == host), Site(host))


_INT_KEYS = (
    "batch_size", "block_ms", "claim_idle_ms", "max_deliveries", "dead_letter_maxlen",
    "apdex_window_seconds", "top_routes", "top_sites",
)  # fmt: skip
_FLOAT_KEYS = ("apdex_threshold_ms",)


def parse(raw: Mapping[str, Any], errors: list[str]) -> CollectorSettings:
    """Validate the raw ``[collectors]`` table; append ``"collectors.key: message"`` errors."""
    if not isinstance(raw, Mapping):
        errors.append("collectors: must be a table")
        return CollectorSettings()
    values: dict[str, Any] = {}
    for key, value in raw.items():
        path = f"collectors.{key}"
        if key in _INT_KEYS:
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                errors.append(f"{path}: must be a positive integer, not {value!r}")
            else:
                values[key] = value
        elif key in _FLOAT_KEYS:
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                errors.append(f"{path}: must be a positive number, not {value!r}")
            else:
                values[key] = float(value)
        elif key == "goals":
            values[key] = _goals(value, path, errors)
        elif key == "funnels":
            values[key] = _funnels(value, path, errors)
        elif key == "sites":
            values[key] = parse_sites(value, path, errors)
        elif key == "bot_score_threshold":
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 99:
                errors.append(f"{path}: must be an integer from 0 (off) to 99, not {value!r}")
            else:
                values[key] = value
        else:
            errors.append(f"{path}: unknown setting")
    return CollectorSettings(**values)


def _name(item: Mapping[str, Any], path: str, seen: set[str], errors: list[str]) -> str | None:
    name = item.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        errors.append(f"{path}.name: must be 1-64 characters of letters, digits, _ . -")
        return None
    if name in seen:
        errors.append(f"{path}.name: {name!r} defined twice")
        return None
    seen.add(name)
    return name


def _path(value: Any, path: str, errors: list[str]) -> str | None:
    if not isinstance(value, str) or not value.startswith("/"):
        errors.append(f"{path}: must be a path pattern starting with '/', not {value!r}")
        return None
    return value


def _tables(
    value: Any, path: str, errors: list[str], keys: frozenset[str], section: str
) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """The well-formed tables of an array of tables, with their key paths; what is
    malformed or unknown is reported in ``errors`` and skipped."""
    if not isinstance(value, list):
        errors.append(f"{path}: must be a list of tables ([[collectors.{section}]])")
        return
    for i, item in enumerate(value):
        p = f"{path}[{i}]"
        if not isinstance(item, Mapping):
            errors.append(f"{p}: must be a table")
            continue
        for key in sorted(item.keys() - keys):
            errors.append(f"{p}.{key}: unknown setting")
        yield p, item


def _goals(value: Any, path: str, errors: list[str]) -> tuple[Goal, ...]:
    out, seen = [], set[str]()
    for p, item in _tables(value, path, errors, frozenset({"name", "path", "method", "status"}), "goals"):
        name = _name(item, p, seen, errors)
        glob = _path(item.get("path"), f"{p}.path", errors)
        method = item.get("method")
        if method is not None and (not isinstance(method, str) or not method.isalpha()):
            errors.append(f"{p}.method: must be an HTTP method like POST, not {method!r}")
            method = None
        status: frozenset[int] = frozenset()
        if "status" in item:
            try:
                status = parse_status(item["status"])
            except ValueError as exc:
                errors.append(f"{p}.status: {exc}")
        if name and glob:
            out.append(Goal(name, glob, method.upper() if method else None, status))
    return tuple(out)


def _funnels(value: Any, path: str, errors: list[str]) -> tuple[Funnel, ...]:
    out, seen = [], set[str]()
    for p, item in _tables(value, path, errors, frozenset({"name", "steps"}), "funnels"):
        name = _name(item, p, seen, errors)
        steps = item.get("steps")
        if not isinstance(steps, list) or not 2 <= len(steps) <= 10:
            errors.append(f"{p}.steps: must be a list of 2 to 10 path patterns")
            continue
        good = [_path(s, f"{p}.steps[{j}]", errors) for j, s in enumerate(steps)]
        if name and all(good):
            out.append(Funnel(name, tuple(steps)))
    return tuple(out)
