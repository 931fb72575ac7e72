"""Event v1 dict → one ``JSONEachRow`` line of the events table (schema.py), and back.

Pure. :func:`from_row` rebuilds the event v1 of a stored row (export): every v1
field comes back, with the store's precision — ``ts`` to the millisecond,
measures as 32-bit floats — and its normal forms: an absent string is ``null``,
an absent or direct referrer is ``{"medium": "direct"}``, empty nested objects
and absent optional fields (``vitals``, ``name``, ``props``, ...) are left out.

:func:`to_row`: nested objects are flattened into the table's prefixed columns;
absent strings become ``''`` and absent measures ``null`` (see schema.py). Unknown fields are ignored,
so a newer proxy's additive fields never break an older loader.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from collectors.events import Event

_STR = (
    "kind", "via", "method", "path", "route", "content_type", "visitor", "session",
    "bot_name", "channel", "ip", "country", "trace_id", "error", "consent", "page_id", "name",
)  # fmt: skip
_NESTED = (
    ("referrer", (("url", "referrer_url"), ("host", "referrer_host"), ("medium", "referrer_medium"),
                  ("source", "referrer_source"), ("term", "referrer_term"))),
    ("utm", (("source", "utm_source"), ("medium", "utm_medium"), ("campaign", "utm_campaign"),
             ("term", "utm_term"), ("content", "utm_content"), ("click_id", "click_id"),
             ("click_id_network", "click_id_network"))),
    ("ua", (("browser", "browser"), ("browser_version", "browser_version"), ("os", "os"),
            ("device", "device"))),
)  # fmt: skip
_VITALS = ("lcp", "inp", "cls", "fcp", "ttfb")


_NUMBER = (int, float)  # exact types: a bool is not a number here
_EMPTY: dict[str, Any] = {}


def _s(value: Any) -> str:
    return value if type(value) is str else ""


def _num(value: Any) -> float | int | None:
    return value if type(value) in _NUMBER else None


def _strmap(value: Any) -> dict[str, str]:
    """``query``/``props``: string values kept, lists joined by commas, the rest dropped."""
    if not value or type(value) is not dict:
        return {}
    if all(type(item) is str for item in value.values()):
        return value  # the usual case, already a string map
    out: dict[str, str] = {}
    for key, item in value.items():
        if isinstance(item, str):
            out[str(key)] = item
        elif isinstance(item, list):
            out[str(key)] = ",".join(v for v in item if isinstance(v, str))
    return out


def to_row(event: Event) -> dict[str, Any]:
    """The events-table row of a decoded event (``id``, ``ts`` and ``site`` already checked).

    On the loader's hot path (once per event): plain lookups, no helper per field.
    """
    get: Callable[[str], Any] = event.get
    row: dict[str, Any] = {"id": event["id"], "ts": float(event["ts"]), "site": event["site"]}
    for key in _STR:
        value = get(key)
        row[key] = value if type(value) is str else ""
    if not row["via"]:
        row["via"] = "proxy"
    for key, columns in _NESTED:
        nested = get(key)
        if type(nested) is not dict:
            nested = _EMPTY
        for field, column in columns:
            value = nested.get(field)
            row[column] = value if type(value) is str else ""
    if row["referrer_medium"] == "" and get("referrer") is None:
        row["referrer_medium"] = "direct"
    status = get("status")
    row["status"] = int(status) if type(status) in _NUMBER and 0 <= status < 65536 else 0
    bytes_out = get("bytes_out")
    row["bytes_out"] = int(bytes_out) if type(bytes_out) in _NUMBER and bytes_out >= 0 else 0
    row["duration_ms"] = _num(get("duration_ms")) or 0.0
    row["upstream_ms"] = _num(get("upstream_ms"))
    row["new_visitor"] = get("new_visitor") is True
    row["new_session"] = get("new_session") is True
    row["bot"] = get("bot") is True
    score = get("bot_score")
    row["bot_score"] = int(score) if type(score) in _NUMBER and 0 <= score <= 99 else 0
    row["query"] = _strmap(get("query"))
    row["props"] = _strmap(get("props"))
    vitals = get("vitals")
    if type(vitals) is not dict:
        vitals = _EMPTY
    for key in _VITALS:
        row[key] = _num(vitals.get(key))
    engaged = get("engaged_ms")
    row["engaged_ms"] = int(engaged) if type(engaged) in _NUMBER and 0 <= engaged < 2**32 else None
    scroll = get("scroll_depth")
    row["scroll_depth"] = int(scroll) if type(scroll) in _NUMBER and 0 <= scroll <= 100 else None
    return row


def to_json_row(event: Event) -> bytes:
    return orjson.dumps(to_row(event))


_OPTIONAL_STR = ("route", "content_type", "visitor", "session", "bot_name", "ip", "country", "error", "page_id")


def _nested(row: dict[str, Any], columns: tuple[tuple[str, str], ...]) -> dict[str, str]:
    return {field: row[column] for field, column in columns if row.get(column)}


def from_row(row: dict[str, Any]) -> Event:
    """The event v1 of a stored row (``row`` keyed by column name, ``ts`` in seconds)."""
    event: Event = {"v": 1, "id": row["id"], "ts": row["ts"], "site": row["site"]}
    for key in _STR:
        value = row.get(key) or ""
        if key in _OPTIONAL_STR:
            event[key] = value or None
        elif value or key != "name":  # `name` belongs to custom and click events only
            event[key] = value
    nested = dict(_NESTED)
    referrer = _nested(row, nested["referrer"])
    event["referrer"] = referrer or {"medium": "direct"}
    event["utm"] = _nested(row, nested["utm"])
    event["ua"] = _nested(row, nested["ua"])
    event["query"] = dict(row.get("query") or {})
    for key in ("status", "bytes_out", "duration_ms", "upstream_ms"):
        event[key] = row.get(key)
    for key in ("new_visitor", "new_session", "bot"):
        event[key] = bool(row.get(key))
    if row.get("bot_score"):
        event["bot_score"] = row["bot_score"]
    vitals = {key: row[key] for key in _VITALS if row.get(key) is not None}
    if vitals:
        event["vitals"] = vitals
    for key in ("engaged_ms", "scroll_depth"):
        if row.get(key) is not None:
            event[key] = row[key]
    if row.get("props"):
        event["props"] = dict(row["props"])
    return event
