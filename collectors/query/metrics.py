"""Metric definitions: each metric is a few aggregate parts and a SQL formula over them.

A part is one ClickHouse aggregate call ``(function, parameters, arguments)``. The
compiler emits it as is (``countIf(kind = 'pageview')``) or, when the query must
first group by session (``visit_duration``), as ``…State`` per session and
``…Merge`` above it, so every metric is exact in both shapes. ``$0``, ``$1`` in a
formula are the parts; ``$APDEX``, ``$GOAL_ANY``, ``$BEACON_IDS`` and ``$PAGE_TTFB`` are
filled by the compiler with bound parameters or subqueries (never with request text).

Derived measures of the first-party beacon:
- the TTFB split of a proxied pageview joins the browser's ``ttfb`` of its page (the
  first ``vitals`` report naming its id, ``v_ttfb``; ``v_has`` = 1 when there is one):
  origin = ``upstream_ms``; proxy = the proxy's own time, ``duration_ms - upstream_ms``,
  capped at ``ttfb - upstream_ms`` (the event has no first-byte time: ``duration_ms``
  runs to the last byte, so what the proxy spent relaying the body after the first one
  must not count; the cap keeps the split a partition of the TTFB); network = the rest,
  ``ttfb - upstream_ms - proxy`` (= ``ttfb - duration_ms`` when positive); each >= 0;
- engaged sessions use the session subquery's ``s_engaged`` (sum of ``engaged_ms``),
  ``s_pageviews`` and ``s_converted`` (any goal converted);
- abandonment: proxied pageviews whose client went away before the last byte.

``percentage`` and ``conversion_rate`` need a second total (all visitors of the
breakdown, or of the segment without its goal filter): :mod:`run` computes them.
The README's table of definitions describes exactly these.
"""

from __future__ import annotations

from dataclasses import dataclass

PV = "kind = 'pageview'"
PROXY = "via = 'proxy'"
# a visitor closing the connection is not a server error (it counts in abandonment_rate);
# Apdex still counts it frustrated with the errors (FAILED), like the Prometheus Apdex
ERROR = "(status >= 500 OR error NOT IN ('', 'client_disconnect'))"
FAILED = "(status >= 500 OR error != '')"
ABANDONED = "error = 'client_disconnect'"
NO_HASH = "cityHash64('')"  # the derived vid/sid of an empty id (schema.DERIVED_COLUMNS)
IN_SESSION = f"sid != {NO_HASH}"
EVENT_KINDS = "(kind IN ('pageview', 'custom', 'click') OR $GOAL_ANY)"
BOUNCED = "s_pageviews = 1 AND s_interactions = 0"
# what makes a session not a bounce besides a second pageview (session subquery)
# GA4's engaged session: more than 10 s engaged, 2+ pageviews, or a conversion (session subquery)
ENGAGED = "(s_engaged > 10000 OR s_pageviews >= 2 OR s_converted)"
# the TTFB split of a proxied pageview with the browser's TTFB of its page (see above)
TTFB_ORIGIN = "upstream_ms"
TTFB_PROXY = "greatest(0, least(duration_ms - upstream_ms, v_ttfb - upstream_ms))"
TTFB_NETWORK = f"greatest(0, v_ttfb - upstream_ms - {TTFB_PROXY})"
TTFB_SPLIT = "kind = 'pageview' AND via = 'proxy' AND upstream_ms IS NOT NULL AND v_has"
INTERACTIVE = "kind IN ('custom', 'click') OR (kind = 'request' AND method NOT IN ('GET', 'HEAD', 'OPTIONS'))"

Part = tuple[str, str, str]  # (function, parameters, arguments)


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    parts: tuple[Part, ...]
    formula: str = "$0"
    session_stats: bool = False  # needs the session subquery's pageviews/interactions/duration
    by_session: bool = False  # needs a GROUP BY session first (visit_duration)
    engagement: bool = False  # needs the session subquery's engaged time and conversions too
    page_ttfb: bool = False  # needs each pageview's browser TTFB joined (v_ttfb, v_has)
    post: bool = False  # computed by run.py from other columns
    ratio: bool = False  # a comparison's change is the difference, not a percent change


def _ratio(num: str, den: str, scale: str = "100", digits: int = 2) -> str:
    return f"if({den} = 0, NULL, round({scale} * {num} / {den}, {digits}))"


def _quantile(name: str, q: float, column: str, cond: str) -> Metric:
    return Metric(name, (("quantileExactIf", repr(q), f"{column}, {cond}"),), "round($0, 2)")


# distinct 64-bit hashes of the ids (the stored ``vid``/``sid``; uniqExact keeps a 128-bit
# hash of a string anyway)
_VISITORS: Part = ("uniqExactIf", "", f"vid, vid != {NO_HASH}")
_VISITS: Part = ("uniqExactIf", "", f"sid, {IN_SESSION}")
_REQUESTS: Part = ("countIf", "", PROXY)
_PROXY_PV: Part = ("countIf", "", f"{PV} AND {PROXY}")
_ENGAGED: Part = ("uniqExactIf", "", f"sid, {IN_SESSION} AND {ENGAGED}")

_ALL: list[Metric] = [
    Metric("visitors", (_VISITORS,)),
    Metric("visits", (_VISITS,)),
    Metric("pageviews", (("countIf", "", PV),)),
    Metric("events", (("countIf", "", EVENT_KINDS),)),
    Metric("views_per_visit", (("countIf", "", f"{PV} AND {IN_SESSION}"), _VISITS), _ratio("$0", "$1", "1")),
    Metric(
        "bounce_rate",
        (("uniqExactIf", "", f"sid, {IN_SESSION} AND {BOUNCED}"), _VISITS),
        _ratio("$0", "$1"),
        session_stats=True,
        ratio=True,
    ),
    Metric("visit_duration", (), "", session_stats=True, by_session=True),
    Metric("percentage", (), post=True, ratio=True),
    Metric("conversion_rate", (), post=True, ratio=True),
    Metric("requests", (_REQUESTS,)),
    Metric("error_rate", (("countIf", "", f"{PROXY} AND {ERROR}"), _REQUESTS), _ratio("$0", "$1"), ratio=True),
    *[_quantile(f"latency_p{q}", q / 100, "duration_ms", PROXY) for q in (50, 75, 95, 99)],
    *[
        _quantile(f"upstream_p{q}", q / 100, "upstream_ms", f"{PROXY} AND upstream_ms IS NOT NULL")
        for q in (50, 75, 95, 99)
    ],
    Metric(
        "apdex",
        (
            ("countIf", "", f"{PROXY} AND NOT {FAILED} AND duration_ms <= $APDEX"),
            ("countIf", "", f"{PROXY} AND NOT {FAILED} AND duration_ms > $APDEX AND duration_ms <= 4 * $APDEX"),
            _REQUESTS,
        ),
        _ratio("($0 + $1 / 2)", "$2", "1", 3),
        ratio=True,
    ),
    Metric("bytes", (("sumIf", "", f"bytes_out, {PROXY}"),)),
    *[_quantile(f"{v}_p75", 0.75, v, f"{v} IS NOT NULL") for v in ("lcp", "inp", "cls", "fcp", "ttfb")],
    Metric(
        "engaged_time",
        (("sumIf", "", "engaged_ms, engaged_ms IS NOT NULL"), ("countIf", "", "engaged_ms IS NOT NULL")),
        _ratio("$0", "$1", "0.001", 1),
    ),
    Metric("scroll_depth", (("avgIf", "", "scroll_depth, scroll_depth IS NOT NULL"),), "round($0, 1)"),
    *[
        Metric(f"ttfb_{part}_p75", (("quantileExactIf", "0.75", f"{expr}, {TTFB_SPLIT}"),), "round($0, 2)",
               page_ttfb=True)
        for part, expr in (("network", TTFB_NETWORK), ("proxy", TTFB_PROXY), ("origin", TTFB_ORIGIN))
    ],  # fmt: skip
    Metric("engaged_sessions", (_ENGAGED,), session_stats=True, engagement=True),
    Metric("engagement_rate", (_ENGAGED, _VISITS), _ratio("$0", "$1"), session_stats=True, engagement=True,
           ratio=True),  # fmt: skip
    Metric("abandonment_rate", (("countIf", "", f"{PV} AND {PROXY} AND {ABANDONED}"), _PROXY_PV), _ratio("$0", "$1"),
           ratio=True),  # fmt: skip
    Metric(
        "beacon_coverage",
        (("countIf", "", f"{PV} AND {PROXY} AND id IN $BEACON_IDS"), _PROXY_PV),
        _ratio("$0", "$1"),
        ratio=True,
    ),
]
METRICS: dict[str, Metric] = {m.name: m for m in _ALL}
DURATION = "intDiv(toUnixTimestamp64Milli(max(ts)) - toUnixTimestamp64Milli(min(ts)), 1000)"
# The visit metrics over one row per session (``_s`` false for a sessionless event;
# ``_vis`` the visitor's ``cityHash64`` (of ``''`` when none), ``_pv`` pageviews (in the time
# bucket of the row when the question has one; ``_pvs`` in the whole session), ``_int``
# interactions, ``_dur`` seconds): the same definitions as above, used when a question
# needs nothing but visits (compile.py).
_VISITS_N = "countIf(_s)"
BY_SESSION: dict[str, str] = {
    "visitors": "uniqExactIf(_vis, _vis != cityHash64(''))",
    "visits": _VISITS_N,
    "pageviews": "sum(_pv)",
    "views_per_visit": _ratio("sumIf(_pv, _s)", _VISITS_N, "1"),
    "bounce_rate": _ratio("countIf(_s AND _pvs = 1 AND _int = 0)", _VISITS_N),
    "visit_duration": "round(avgIf(_dur, _s), 1)",
}
VISITORS = METRICS["visitors"]
