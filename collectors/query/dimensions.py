"""Dimension names → SQL expressions over the events table's columns (schema.py).

Scopes:
- ``event`` — the event's own value (``event:page`` is the event's path);
- ``visit`` — the session's first pageview's value (first touch), computed in the
  session subquery (:mod:`compile`); an event without a session is its own visit;
- ``time`` — a bucket of ``ts`` in the site's time zone (``{tz:String}``);
- ``goal`` — the configured goals the event converts (:mod:`goals`).

Every expression yields a String; an empty string is shown as ``(none)``.
"""

from __future__ import annotations

from dataclasses import dataclass

NONE = "(none)"
IS_BOT = "(bot OR (bot_score BETWEEN 1 AND {bot_max:UInt8}))"
SOURCE = (
    "multiIf(referrer_source != '', referrer_source, utm_source != '', utm_source, "
    "referrer_host != '', referrer_host, 'Direct / None')"
)


@dataclass(frozen=True, slots=True)
class Dim:
    name: str
    scope: str  # "event" | "visit" | "time" | "goal"
    expr: str  # the event-level expression (for visit scope: the event's own value)
    first: bool = True  # visit scope: the first pageview's value (False: the last's)

    @property
    def alias(self) -> str:
        return "s_" + self.name.split(":", 1)[1]


# fixed buckets of the origin's time to its response head; the labels sort in latency order
UPSTREAM_BUCKETS = ((100, "0000-0100ms"), (300, "0100-0300ms"), (1000, "0300-1000ms"), (3000, "1000-3000ms"))
UPSTREAM_OVER = "3000ms+"
UPSTREAM_BUCKET = (
    "multiIf(upstream_ms IS NULL, '', "
    + "".join(f"upstream_ms < {bound}, '{label}', " for bound, label in UPSTREAM_BUCKETS)
    + f"'{UPSTREAM_OVER}')"
)
_EVENT = {
    "event:page": "path",
    "event:hostname": "site",
    "event:route": "route",
    "event:status": "toString(status)",
    "event:kind": "toString(kind)",
    "event:bot": f"if({IS_BOT}, 'true', 'false')",
    "event:name": "toString(name)",
    "event:upstream_bucket": UPSTREAM_BUCKET,
}
_VISIT = {
    "visit:source": SOURCE,
    "visit:channel": "toString(channel)",
    "visit:referrer": "referrer_url",
    "visit:utm_source": "toString(utm_source)",
    "visit:utm_medium": "toString(utm_medium)",
    "visit:utm_campaign": "toString(utm_campaign)",
    "visit:utm_term": "utm_term",
    "visit:utm_content": "utm_content",
    "visit:device": "toString(device)",
    "visit:browser": "toString(browser)",
    "visit:os": "toString(os)",
    "visit:country": "toString(country)",
    "visit:entry_page": "if(kind = 'pageview', path, '')",
    "visit:exit_page": "if(kind = 'pageview', path, '')",
}
_LOCAL = "toTimeZone(ts, {tz:String})"
# ``{shift}`` is replaced by the comparison's shift (the empty string for the main query)
TIME_BUCKETS = {
    "minute": "formatDateTime(toStartOfMinute({t}), '%Y-%m-%d %H:%i:00')",
    "hour": "formatDateTime(toStartOfHour({t}), '%Y-%m-%d %H:00:00')",
    "day": "toString(toDate({t}))",
    "week": "toString(toMonday({t}))",
    "month": "toString(toStartOfMonth({t}))",
}
TIME = ("time", "time:minute", "time:hour", "time:day", "time:week", "time:month")

DIMENSIONS: dict[str, Dim] = {
    **{k: Dim(k, "event", v) for k, v in _EVENT.items()},
    **{k: Dim(k, "visit", v, k != "visit:exit_page") for k, v in _VISIT.items()},
    **{k: Dim(k, "time", "") for k in TIME},
    "event:goal": Dim("event:goal", "goal", ""),
}


def session_column(dim: Dim) -> str:
    """The session subquery's aggregate for a visit dimension: first (or last) pageview's value."""
    pick = "argMinIf" if dim.first else "argMaxIf"
    return f"{pick}({dim.expr}, ts, kind = 'pageview') AS {dim.alias}"


def visit_expr(dim: Dim) -> str:
    """A visit dimension on an event row: the session's value; a sessionless event's own."""
    return f"if(sid = cityHash64(''), {dim.expr}, {dim.alias})"


def time_expr(granularity: str, shift: str = "", column: str = "ts") -> str:
    """The bucket label of ``ts`` in the site's zone; ``shift`` (e.g. ``addDays(…, 7)``) moves
    a comparison period's events onto the main period's labels."""
    at = _LOCAL.replace("ts", column)
    local = shift.format(t=at) if shift else at
    return TIME_BUCKETS[granularity].format(t=local)
