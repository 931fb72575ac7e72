"""Decoding stream entries into event v1 dicts, and the event fields collectors read.

Pure functions. An entry that is not an event v1 (bad JSON, not an object, wrong
version, missing ``id``/``ts``/``site``) decodes to a reason string instead: the
runtime sends it to the dead-letter stream, it never stops the loop.
"""

from __future__ import annotations

from typing import Any

import orjson

Event = dict[str, Any]
NONE = "(none)"  # breakdown value of a missing dimension


def decode(raw: bytes | str | None) -> Event | str:
    """The event dict, or a short reason (``bad_json``, ``not_v1``, ``missing_fields``)."""
    if raw is None:
        return "missing_fields"
    try:
        event = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return "bad_json"
    if not isinstance(event, dict) or event.get("v") != 1:
        return "not_v1"
    # Exact type checks (once per entry on every collector's hot path): cheaper than
    # isinstance with a union, and a bool ``ts`` is not a number here.
    ts_type = type(event.get("ts"))
    if type(event.get("id")) is not str or (ts_type is not float and ts_type is not int) or (
        type(event.get("site")) is not str
    ):
        return "missing_fields"
    return event


def text(value: Any) -> str:
    """A dimension value: non-empty strings as they are, anything else ``(none)``."""
    return value if isinstance(value, str) and value else NONE


def page(event: Event) -> str:
    """The route template when the proxy matched one, else the scrubbed path."""
    return text(event.get("route") or event.get("path"))


def is_error(event: Event) -> bool:
    status = event.get("status")
    return bool(event.get("error")) or (isinstance(status, int) and status >= 500)


def dimensions(event: Event) -> tuple[tuple[str, str], ...]:
    """Per-pageview breakdown values, in the order of :data:`PAGEVIEW_DIMENSIONS`."""
    ref = event.get("referrer")
    if not isinstance(ref, dict):
        ref = {}
    utm = event.get("utm")
    if not isinstance(utm, dict):
        utm = {}
    ua = event.get("ua")
    if not isinstance(ua, dict):
        ua = {}
    return (
        ("page", page(event)),
        ("referrer_source", text(ref.get("source") or ref.get("host"))),
        ("referrer_medium", text(ref.get("medium") or "direct")),
        ("channel", text(event.get("channel"))),
        ("utm_source", text(utm.get("source"))),
        ("utm_medium", text(utm.get("medium"))),
        ("utm_campaign", text(utm.get("campaign"))),
        ("browser", text(ua.get("browser"))),
        ("os", text(ua.get("os"))),
        ("device", text(ua.get("device"))),
        ("country", text(event.get("country"))),
    )


PAGEVIEW_DIMENSIONS = (
    "page", "referrer_source", "referrer_medium", "channel", "utm_source", "utm_medium",
    "utm_campaign", "browser", "os", "device", "country",
)  # fmt: skip
# Dimensions attributed once per session, from its first pageview.
SESSION_DIMENSIONS = ("entry_page", *PAGEVIEW_DIMENSIONS[1:])
ALL_DIMENSIONS = (*PAGEVIEW_DIMENSIONS, "entry_page", "exit_page")
