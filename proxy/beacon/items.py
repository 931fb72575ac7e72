"""What the script sends, validated. Pure; the input is hostile.

A POST body is JSON ``{"items": [item, ...]}`` (sent as ``text/plain``, so no CORS
preflight). Each item is an object; unknown fields are ignored, and an item with a
missing or wrongly typed field is dropped and counted by reason, never repaired:

- every item: ``kind`` (``pageview``, ``vitals``, ``engagement``, ``custom``,
  ``click``), ``page_id`` (32 lower-case hex chars), ``url`` (the page's path and
  query on this site, starting with ``/``), optional ``referrer`` (a URL, or ``""``);
- ``vitals``: ``vitals`` object with any of ``lcp inp fcp ttfb`` (ms, 0-10 min) and
  ``cls`` (0-100), at least one;
- ``engagement``: ``engaged_ms`` (integer, 0-24 h) and ``scroll_depth`` (integer 0-100);
- ``custom``: ``name`` (1-64 chars) and optional ``props`` (≤ 20 string→string pairs,
  keys ≤ 64 chars, values ≤ 256);
- ``click``: ``name`` ``outbound`` or ``download`` and ``props.url`` (≤ 2048 chars).

Reasons: ``malformed`` (the body is not such an object), ``too_many`` (items past
the limit), ``kind``, ``page_id``, ``url``, ``field`` (any other field wrong).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import orjson

KINDS = frozenset({"pageview", "vitals", "engagement", "custom", "click"})
_VITALS_MS = ("lcp", "inp", "fcp", "ttfb")
_MAX_MS = 600_000.0
_MAX_URL = 2048
_MAX_PROPS = 20
_HEX = frozenset("0123456789abcdef")


class Invalid(ValueError):
    """An item is dropped; ``args[0]`` is the reason."""


@dataclass(frozen=True, slots=True)
class Item:
    """One accepted item: the page it is about, and the event fields it brings."""

    url: str
    referrer: str | None
    fields: dict[str, Any]  # kind, page_id, via and the kind's own fields


def looks_like_id(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 32 and set(value) <= _HEX


def parse(body: bytes, max_items: int) -> tuple[list[Item], dict[str, int]]:
    """Accepted items and rejections counted by reason."""
    rejected: dict[str, int] = {}
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return [], {"malformed": 1}
    raw = doc.get("items") if isinstance(doc, dict) else None
    if not isinstance(raw, list):
        return [], {"malformed": 1}
    if len(raw) > max_items:
        rejected["too_many"] = len(raw) - max_items
        raw = raw[:max_items]
    items = []
    for entry in raw:
        try:
            items.append(item(entry))
        except Invalid as exc:
            reason = exc.args[0]
            rejected[reason] = rejected.get(reason, 0) + 1
    return items, rejected


def _string(value: Any, limit: int, reason: str = "field") -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise Invalid(reason)
    return value


def _number(value: Any, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid("field")
    if not math.isfinite(value) or not 0 <= value <= high:
        raise Invalid("field")
    return float(value)


def _integer(value: Any, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
        raise Invalid("field")
    return value


def _props(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > _MAX_PROPS:
        raise Invalid("field")
    out = {}
    for key, v in value.items():
        if len(key) > 64 or not key or not isinstance(v, str) or len(v) > 256:
            raise Invalid("field")
        out[key] = v
    return out


def item(entry: Any) -> Item:
    """Validate one item; raises :class:`Invalid` with the reason."""
    if not isinstance(entry, dict):
        raise Invalid("malformed")
    kind = entry.get("kind")
    if kind not in KINDS:
        raise Invalid("kind")
    page_id = entry.get("page_id")
    if not looks_like_id(page_id):
        raise Invalid("page_id")
    url = entry.get("url")
    if not isinstance(url, str) or not url.startswith("/") or url.startswith("//") or len(url) > _MAX_URL:
        raise Invalid("url")
    referrer = entry.get("referrer")
    if referrer is not None:
        referrer = _string(referrer, _MAX_URL) or None
    fields: dict[str, Any] = {"kind": kind, "page_id": page_id, "via": "beacon"}
    if kind == "vitals":
        vitals = entry.get("vitals")
        if not isinstance(vitals, dict):
            raise Invalid("field")
        out: dict[str, float] = {}
        for name in _VITALS_MS:
            if name in vitals:
                out[name] = round(_number(vitals[name], _MAX_MS), 1)
        if "cls" in vitals:
            out["cls"] = round(_number(vitals["cls"], 100.0), 4)
        if not out:
            raise Invalid("field")
        fields["vitals"] = out
    elif kind == "engagement":
        fields["engaged_ms"] = _integer(entry.get("engaged_ms"), 86_400_000)
        fields["scroll_depth"] = _integer(entry.get("scroll_depth"), 100)
    elif kind == "custom":
        custom = entry.get("name")
        if not isinstance(custom, str) or not 0 < len(custom) <= 64:
            raise Invalid("field")
        fields["name"] = custom
        fields["props"] = _props(entry.get("props"))
    elif kind == "click":
        click = entry.get("name")
        if click not in ("outbound", "download"):
            raise Invalid("field")
        props = entry.get("props")
        link = props.get("url") if isinstance(props, dict) else None
        fields["name"] = click
        fields["props"] = {"url": _string(link, _MAX_URL)}
    return Item(url, referrer, fields)
