"""Run compiled queries on an engine and shape the Plausible-style response.

Blocking (engine calls): the HTTP layer calls these in the store's worker thread.
One query asks for the rows; ``percentage``, ``conversion_rate``, ``total_rows``
and comparisons each add one more query with the same filters.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from collectors.analytics.engine import Engine
from collectors.query import dates
from collectors.query.compile import NONE, Compiled, Context, compile_query, regexes
from collectors.query.dimensions import DIMENSIONS, IS_BOT
from collectors.query.goals import funnel_steps
from collectors.query.metrics import BY_SESSION, METRICS
from collectors.query.model import Condition, Filter, Period, Query
from collectors.query.parse import QueryError
from collectors.settings import Funnel

COUNTS = frozenset({"visitors", "visits", "pageviews", "events", "requests", "bytes", "engaged_sessions"})
Row = tuple[tuple[Any, ...], dict[str, Any]]  # (dimension values, metric values by name)


def check_regexes(engine: Engine, filters: tuple[Filter, ...]) -> None:
    """Let ClickHouse compile each bound regex once, so a bad one is a 400 naming its field."""
    for path, pattern in regexes(filters):
        try:
            engine.query("SELECT match('', {r:String})", {"r": pattern})
        except Exception as exc:
            reason = str(exc).split("error:", 1)[-1].split(".", 1)[0].strip()
            raise QueryError(path, f"not an RE2 regular expression ({reason})") from None


def _shift(query: Query, original: Period, mode: str) -> tuple[Period, str]:
    if mode == "year_over_year":
        return dates.year_before(original, query.timezone), "addYears({t}, 1)"
    back = dates.previous(original, query.timezone)
    if original.unit == "day":
        return back, f"addDays({{t}}, {int(original.length)})"
    return back, f"addSeconds({{t}}, {int(original.length)})"


def _rows(engine: Engine, compiled: Compiled) -> list[Row]:
    n = len(compiled.dimensions)
    return [
        (tuple(r[:n]), dict(zip(compiled.metrics, r[n:], strict=True)))
        for r in engine.query(compiled.sql, compiled.params)
    ]


def _split(engine: Engine, query: Query, ctx: Context, period: Period, shift: str, paginate: bool) -> list[Row] | None:
    """Visit metrics beside event metrics (the dashboard's KPIs: visitors and bounce rate
    with requests and p75 latency), by nothing or by time only: two questions, one per plan,
    when the visit metrics alone take the visit-only plan — grouping a million sessions
    once beats joining every event to its session (load_tests/bench_queries.py). Rows are
    merged on their time bucket, in time order; ``order_by`` and derived metrics keep the
    single question."""
    visit = tuple(m for m in query.metrics if m in BY_SESSION)
    rest = tuple(m for m in query.metrics if m not in BY_SESSION)
    if not visit or not rest or query.order_by or any(METRICS[m].post for m in query.metrics):
        return None
    if any(DIMENSIONS[d].scope != "time" for d in query.dimensions):
        return None
    visits = compile_query(query, ctx, period=period, shift=shift, metrics=visit, paginate=False)
    if visits.plan != "sessions":
        return None
    events = compile_query(query, ctx, period=period, shift=shift, metrics=rest, paginate=False)
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for dims, values in [*_rows(engine, visits), *_rows(engine, events)]:
        merged.setdefault(dims, {}).update(values)
    rows = [(dims, {m: values.get(m, 0 if m in COUNTS else None) for m in query.metrics})
            for dims, values in sorted(merged.items())]  # fmt: skip
    return rows[query.offset : query.offset + query.limit] if paginate and query.dimensions else rows


def _table(engine: Engine, query: Query, ctx: Context, period: Period, shift: str, paginate: bool) -> list[Row]:
    split = _split(engine, query, ctx, period, shift, paginate)
    if split is not None:
        return split
    rows = _rows(engine, compile_query(query, ctx, period=period, shift=shift, paginate=paginate))
    if "percentage" in query.metrics:
        totals = compile_query(query, ctx, period=period, shift=shift, dimensions=(), metrics=("visitors",))
        total = engine.query(totals.sql, totals.params)[0][0]
        for _, m in rows:
            m["percentage"] = round(100 * m["visitors"] / total, 2) if total else None
    if "conversion_rate" in query.metrics:
        keep = [i for i, d in enumerate(query.dimensions) if d != "event:goal"]
        base = compile_query(
            query, ctx, period=period, shift=shift, paginate=False, metrics=("visitors",),
            dimensions=tuple(query.dimensions[i] for i in keep),
            filters=tuple(f for f in query.filters if not (isinstance(f, Condition) and f.dimension == "event:goal")),
        )  # fmt: skip
        denominators = {tuple(r[:-1]): r[-1] for r in engine.query(base.sql, base.params)}
        for dims, m in rows:
            den = denominators.get(tuple(dims[i] for i in keep), 0)
            m["conversion_rate"] = round(100 * m["visitors"] / den, 2) if den else None
    return rows


def _change(name: str, new: Any, old: Any) -> Any:
    if new is None or old is None:
        return None
    if METRICS[name].ratio:
        return round(new - old, 2)
    if old == 0:
        return 100 if new > 0 else 0
    return round((new - old) / old * 100)


def _shown(value: Any) -> Any:
    return NONE if value == "" else value


def _iso(moment: dt.datetime, tz: str) -> str:
    return moment.astimezone(ZoneInfo(tz)).replace(microsecond=0).isoformat()


def _range(period: Period, tz: str) -> list[str]:
    return [_iso(period.start, tz), _iso(period.end - dt.timedelta(milliseconds=1), tz)]


def execute(engine: Engine, query: Query, ctx: Context, echo: dict[str, Any] | None = None) -> dict[str, Any]:
    """The response body for ``query`` (``echo``: request fields repeated under ``query``)."""
    check_regexes(engine, query.filters)
    rows = _table(engine, query, ctx, query.period, "", True)
    results: list[dict[str, Any]] = [
        {"dimensions": [_shown(v) for v in dims], "metrics": [m[name] for name in query.metrics]} for dims, m in rows
    ]
    meta: dict[str, Any] = {}
    echoed: dict[str, Any] = {
        **(echo or {}),
        "site_id": query.site,
        "metrics": list(query.metrics),
        "date_range": _range(query.period, query.timezone),
        "dimensions": list(query.dimensions),
        "timezone": query.timezone,
        "pagination": {"limit": query.limit, "offset": query.offset},
    }
    mode = query.include.comparisons
    if mode:
        period, shift = _shift(query, query.period, mode)
        before = dict(_table(engine, query, ctx, period, shift, False))
        for result, (dims, m) in zip(results, rows, strict=True):
            old = before.get(dims)  # None: no events then; counts are 0, the rest undefined
            old_values = [old[n] if old else (0 if n in COUNTS else None) for n in query.metrics]
            result["comparison"] = {
                "dimensions": result["dimensions"],
                "metrics": old_values,
                "change": [_change(n, m[n], o) for n, o in zip(query.metrics, old_values, strict=True)],
            }
        echoed["comparison_date_range"] = _range(period, query.timezone)
        meta["comparison_date_range"] = echoed["comparison_date_range"]
    if query.include.time_labels:
        time_dim = next(d for d in query.dimensions if DIMENSIONS[d].scope == "time")
        granularity = query.period.granularity if time_dim == "time" else time_dim.split(":", 1)[1]
        meta["time_labels"] = dates.time_labels(query.period, granularity, query.timezone)
    if query.include.total_rows:
        if query.dimensions:
            counted = compile_query(query, ctx, count_rows=True)
            meta["total_rows"] = engine.query(counted.sql, counted.params)[0][0]
        else:
            meta["total_rows"] = 1
    return {"results": results, "meta": meta, "query": echoed}


def funnel(engine: Engine, query: Query, ctx: Context, definition: Funnel) -> dict[str, Any]:
    """Visitors reaching each step in order within the period (ClickHouse ``windowFunnel``
    per visitor, the whole period as the window); drop-off and conversion per step. Steps are
    pageviews (goals.funnel_steps), so only pageviews are read: other events meet no step and
    cannot change a visitor's level (a visitor without pageviews reaches level 0, uncounted)."""
    check_regexes(engine, query.filters)
    conditions, params = funnel_steps(definition)
    # an event metric, so the plan keeps the events (a visit-only plan would group sessions)
    base = compile_query(query, ctx, dimensions=(), metrics=("requests",), paginate=False)
    source, where = base.source, base.where  # the query's own site, period, bot and filter clauses
    window_ms = int((query.period.end - query.period.start).total_seconds() * 1000)
    sql = (
        "SELECT level, count() FROM (SELECT vid, windowFunnel({window:UInt64})"
        f"(toUInt64(toUnixTimestamp64Milli(ts)), {', '.join(conditions)}) AS level "
        f"FROM {source} WHERE {where} AND kind = 'pageview' AND vid != cityHash64('') GROUP BY vid) GROUP BY level"
    )
    counts = dict(engine.query(sql, {**base.params, **params, "window": window_ms}))
    reached = [sum(n for level, n in counts.items() if level >= i + 1) for i in range(len(definition.steps))]
    steps = []
    for i, (pattern, n) in enumerate(zip(definition.steps, reached, strict=True)):
        prev = reached[i - 1] if i else n
        steps.append({
            "step": i + 1,
            "path": pattern,
            "visitors": n,
            "dropoff": prev - n,
            "conversion_rate": round(100 * n / reached[0], 2) if reached[0] else None,
            "conversion_rate_step": round(100 * n / prev, 2) if prev else None,
        })  # fmt: skip
    return {"funnel": definition.name, "date_range": _range(query.period, query.timezone), "steps": steps}


def sites_in_store(engine: Engine, db: str, days: int = 30) -> list[str]:
    """Sites with human events in the last ``days`` (for the dashboard's site picker)."""
    sql = (
        f"SELECT DISTINCT site FROM {db}.events WHERE ts >= now64(3) - toIntervalDay({{days:UInt32}}) "
        f"AND NOT {IS_BOT} ORDER BY site LIMIT 1000"
    )
    return [r[0] for r in engine.query(sql, {"days": days, "bot_max": 0})]
