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


def _s(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _num(value: Any) -> float | int | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _strmap(value: Any) -> dict[str, str]:
    """``query``/``props``: string values kept, lists joined by commas, the rest dropped."""
    if not isinstance(value, dict):
        return {}
    out: dict[str, str] = {}
    for key, item in value.items():
        if isinstance(item, str):
            out[str(key)] = item
        elif isinstance(item, list):
            out[str(key)] = ",".join(v for v in item if isinstance(v, str))
    return out


def to_row(event: Event) -> dict[str, Any]:
    """The events-table row of a decoded event (``id``, ``ts`` and ``site`` already checked)."""
    row: dict[str, Any] = {"id": event["id"], "ts": float(event["ts"]), "site": event["site"]}
    for key in _STR:
        row[key] = _s(event.get(key))
    if not row["via"]:
        row["via"] = "proxy"
    for key, columns in _NESTED:
        nested = event.get(key)
        if not isinstance(nested, dict):
            nested = {}
        for field, column in columns:
            row[column] = _s(nested.get(field))
    if row["referrer_medium"] == "" and event.get("referrer") is None:
        row["referrer_medium"] = "direct"
    status = _num(event.get("status"))
    row["status"] = int(status) if status is not None and 0 <= status < 65536 else 0
    bytes_out = _num(event.get("bytes_out"))
    row["bytes_out"] = int(bytes_out) if bytes_out is not None and bytes_out >= 0 else 0
    row["duration_ms"] = _num(event.get("duration_ms")) or 0.0
    row["upstream_ms"] = _num(event.get("upstream_ms"))
    row["new_visitor"] = event.get("new_visitor") is True
    row["new_session"] = event.get("new_session") is True
    row["bot"] = event.get("bot") is True
    score = _num(event.get("bot_score"))
    row["bot_score"] = int(score) if score is not None and 0 <= score <= 99 else 0
    row["query"] = _strmap(event.get("query"))
    row["props"] = _strmap(event.get("props"))
    vitals = event.get("vitals")
    if not isinstance(vitals, dict):
        vitals = {}
    for key in _VITALS:
        row[key] = _num(vitals.get(key))
    engaged = _num(event.get("engaged_ms"))
    row["engaged_ms"] = int(engaged) if engaged is not None and 0 <= engaged < 2**32 else None
    scroll = _num(event.get("scroll_depth"))
    row["scroll_depth"] = int(scroll) if scroll is not None and 0 <= scroll <= 100 else None
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
