"""Event v1 dict → one ``JSONEachRow`` line of the events table (schema.py), and back.

Pure. Nested objects are flattened into the table's prefixed columns; absent strings
become ``''`` and absent measures ``null`` (see schema.py). Unknown fields are ignored,
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
