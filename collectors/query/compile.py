"""Typed query → (SQL, bound parameters): the one place SQL is written.

Request text never becomes SQL text: dimension and metric names select fixed
expressions (:mod:`dimensions`, :mod:`metrics`), and every value — site, period,
time zone, filter values, regexes, goal patterns — is a ``{name:Type}`` parameter.

Shape (query-time sessionisation; see the README for why)::

    SELECT <dimensions>, <metrics>
    FROM db.events
      [ANY LEFT JOIN (per session: first-pageview attributes, pageviews,
                      interactions, duration) AS s ON session = s.s_id]
    WHERE site = {site} AND {lo} <= ts < {hi} AND NOT bot AND <filters>
    GROUP BY <dimensions> ORDER BY … LIMIT … OFFSET …

``visit_duration`` needs each session once per group: the query then groups by
(dimensions, session) first, keeping every other metric as aggregate states, and
merges them above (:class:`Shape`). Bots (``bot`` or a ``bot_score`` of 1 up to
the threshold) are excluded in the WHERE and in the session subquery unless a
filter names ``event:bot``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from collectors.query.bots import human_session
from collectors.query.dimensions import DIMENSIONS, IS_BOT, session_column, time_expr, visit_expr
from collectors.query.goals import Goals
from collectors.query.metrics import BY_SESSION, DURATION, INTERACTIVE, METRICS, NO_HASH, Metric, Part
from collectors.query.model import Condition, Filter, Logic, Op, Period, Query
from collectors.query.parse import QueryError

NONE = "(none)"
TS = "DateTime64(3,'UTC')"
BEACON_GRACE_SECONDS = 3600  # beacon events of a pageview arrive after it, within this
# Sessions are grouped and joined by a 64-bit hash of their id: integer keys aggregate and
# join ~3x faster than strings (measured, README); a collision among a million sessions has
# a probability of ~3e-8. An event without a session is its own group (keyed by its id).
SESSION_KEY = "sid"  # the stored cityHash64(session) (schema.DERIVED_COLUMNS)
NO_SESSION = f"sid = {NO_HASH}"
HAS_SESSION = f"sid != {NO_HASH}"
EVENT_KEY = f"if({NO_SESSION}, cityHash64(id), sid)"


@dataclass(frozen=True, slots=True)
class Context:
    """What the compiler needs besides the query: where the table is, the site's settings."""

    db: str
    goals: Goals
    bot_max: int = 30
    apdex_ms: float = 500.0
    sessions: bool = False  # the store has the ``sessions`` table (collectors/analytics/sessions.py)
    # A batch's segment sets (collectors/query/segments.py): a segment's sessions are
    # then computed once per batch into a temporary table, not once per question.
    segments: Any = None


@dataclass(slots=True)
class Compiled:
    sql: str
    params: dict[str, Any]
    dimensions: tuple[str, ...]
    metrics: tuple[str, ...]  # metric columns after the dimension columns, in order
    source: str = ""  # the FROM clause (events, joined with sessions when needed)
    where: str = ""  # the WHERE clause: site, period, bots, filters
    plan: str = "events"  # "sessions": the visit-only plan (one row per session, then the groups)


@dataclass(slots=True)
class _Builder:
    query: Query
    ctx: Context
    period: Period
    shift: str
    params: dict[str, Any] = field(default_factory=dict)
    needs_session: bool = False
    uses_goals: bool = False
    bot_filtered: bool = False
    visit_mode: str = "join"  # visit dimensions as: "join" (joined session), "alias" (s_…), "own" (the event's)
    segments: list[str] = field(default_factory=list)  # ``$SEG<i>``: the sessions of a segment (a subquery)
    _n: int = 0

    def segment(self, subquery: str) -> str:
        """``$SEG<i>`` for a subquery of session ids; :func:`_finish` puts back the subquery
        (or, in a batch, the temporary table it was computed into once)."""
        if subquery not in self.segments:
            self.segments.append(subquery)
        return f"$SEG{self.segments.index(subquery)}$"

    def bind(self, value: Any) -> str:
        """A fresh parameter name for ``value`` (filter values get ``f0``, ``f1``, …)."""
        name = f"f{self._n}"
        self._n += 1
        self.params[name] = value
        return name

    def column(self, name: str) -> str:
        dim = DIMENSIONS[name]
        if dim.scope == "visit":
            if self.visit_mode == "alias":
                return dim.alias
            if self.visit_mode == "own":
                return dim.expr
            self.needs_session = True
            return visit_expr(dim)
        if dim.scope == "goal":
            self.uses_goals = True
            return self.ctx.goals.dimension()
        if dim.scope == "time":
            granularity = self.period.granularity if name == "time" else name.split(":", 1)[1]
            return time_expr(granularity, self.shift)
        if name == "event:bot":
            self.bot_filtered = True
        return dim.expr

    def condition(self, f: Filter) -> str:
        if isinstance(f, Logic):
            parts = [self.condition(c) for c in f.children]
            if f.op == "not":
                return f"NOT ({parts[0]})"
            return "(" + f" {f.op.upper()} ".join(parts) + ")"
        return self._match(f)

    def _match(self, c: Condition) -> str:
        if c.dimension == "event:goal":
            self.uses_goals = True
            try:
                names = self.ctx.goals.select(c.op, c.values, c.case_sensitive)
            except Exception as exc:  # re.error from a goal-name regex
                raise QueryError(c.path, f"bad regular expression: {exc}") from None
            sql = self.ctx.goals.condition(names)
            return f"NOT {sql}" if c.op.negated else sql
        expr = self.column(c.dimension)
        if c.op in (Op.IS, Op.IS_NOT):
            values = ["" if v == NONE else v for v in c.values]
            if not c.case_sensitive:
                expr, values = f"lowerUTF8({expr})", [v.lower() for v in values]
            sql = f"{expr} IN {{{self.bind(values)}:Array(String)}}"
        elif c.op in (Op.CONTAINS, Op.CONTAINS_NOT):
            fn = "multiSearchAny" if c.case_sensitive else "multiSearchAnyCaseInsensitiveUTF8"
            sql = f"{fn}({expr}, {{{self.bind(list(c.values))}:Array(String)}})"
        else:
            flag = "" if c.case_sensitive else "(?i)"
            ors = [f"match({expr}, {{{self.bind(flag + v)}:String}})" for v in c.values]
            sql = "(" + " OR ".join(ors) + ")"
        return f"NOT ({sql})" if c.op.negated else sql


def regexes(filters: tuple[Filter, ...]) -> list[tuple[str, str]]:
    """(field path, pattern) of every regex a filter binds (checked before running)."""
    out: list[tuple[str, str]] = []
    for f in filters:
        if isinstance(f, Logic):
            out.extend(regexes(f.children))
        elif f.op in (Op.MATCHES, Op.MATCHES_NOT) and f.dimension != "event:goal":
            flag = "" if f.case_sensitive else "(?i)"
            out.extend((f"{f.path}[{i}]", flag + v) for i, v in enumerate(f.values))
    return out


def _call(part: Part, suffix: str = "", arg: str | None = None) -> str:
    fn, params, args = part
    head = f"{fn}{suffix}({params})" if params else f"{fn}{suffix}"
    return f"{head}({arg if arg is not None else args})"


def _formula(metric: Metric, refs: list[str]) -> str:
    sql = metric.formula
    for i in reversed(range(len(refs))):  # $10 before $1
        sql = sql.replace(f"${i}", refs[i])
    return sql


def metric_columns(query: Query) -> tuple[str, ...]:
    """The metric columns a compiled query selects: the asked ones that SQL computes, plus
    ``visitors`` when ``percentage`` or ``conversion_rate`` is derived from it."""
    cols = [m for m in query.metrics if not METRICS[m].post]
    if len(cols) < len(query.metrics) and "visitors" not in cols:
        cols.append("visitors")
    return tuple(cols)


def compile_query(
    query: Query,
    ctx: Context,
    *,
    period: Period | None = None,
    shift: str = "",
    dimensions: tuple[str, ...] | None = None,
    metrics: tuple[str, ...] | None = None,
    filters: tuple[Filter, ...] | None = None,
    paginate: bool = True,
    count_rows: bool = False,
) -> Compiled:
    """SQL for ``query``; the keyword arguments override parts of it (a comparison's period
    and ``shift`` onto the main period's time labels, totals without dimensions, …)."""
    b = _Builder(query, ctx, period or query.period, shift)
    dims = query.dimensions if dimensions is None else dimensions
    cols = metric_columns(query) if metrics is None else metrics
    where_filters = query.filters if filters is None else filters
    defs = [METRICS[m] for m in cols]
    base = [
        "site = {site:String}",
        f"ts >= {{lo:{TS}}}",
        f"ts < {{hi:{TS}}}",
    ]
    if not b.bot_filtered and "event:bot" in _filter_dims(where_filters):
        b.bot_filtered = True
    bots = "" if b.bot_filtered else f"NOT {IS_BOT} AND {human_session(ctx.db)}"  # + whole sessions (bots.py)
    visit_dims = _visit_dims(dims, where_filters)
    visit_only = all(_scope(f) == "visit" for f in where_filters) and set(cols) <= BY_SESSION.keys()
    if visit_only and (all(DIMENSIONS[d].scope == "visit" for d in dims) or _stored_buckets(b, dims, cols, visit_dims)):
        # sessions first: one GROUP BY session pass, no join back to the events
        b.visit_mode = "alias"
        sql = _session_plan(b, dims, cols, where_filters, visit_dims, " AND ".join([*base, *([bots] if bots else [])]))
        return _finish(b, query, ctx, sql, dims, cols, count_rows, paginate, "", "", "sessions")
    dim_sql = [b.column(d) for d in dims]
    visit_filters = [f for f in where_filters if _scope(f) == "visit"]
    stored = ctx.sessions and _whole_hours(b.period)
    joined = any(DIMENSIONS[d].scope == "visit" for d in dims) or any(m.session_stats for m in defs)
    segment = ""  # the sessions of the visit filters, when they are taken as a set
    if visit_filters and (stored or not joined) and all(_scope(f) in ("visit", "event") for f in where_filters):
        # visit filters as a set of session ids, not a join: the events stay as they are (and
        # a join for shown visit dimensions or session stats brings only that set's sessions)
        b.visit_mode = "own"
        own = " AND ".join(b.condition(f) for f in visit_filters)
        b.visit_mode = "alias"
        chosen = " AND ".join(b.condition(f) for f in visit_filters)
        if stored and bots and ctx.segments is not None:
            # in a batch, the visit-only plan's form of the segment (its sessionless visits
            # too, never matched here: those events take ``own``), so that one table serves
            # both plans; alone, the narrower form below is up to ~20 % faster for a join
            matching = _stored_sessions(ctx.db, _visit_dims((), tuple(visit_filters)))
            segment = f"sid IN {b.segment(f'SELECT _k FROM ({matching}) WHERE {chosen}')}"
        elif stored:
            sessions = _stored_first_touch(ctx.db, _visit_dims((), tuple(visit_filters)), bots)
            segment = f"sid IN {b.segment(f'SELECT s_id FROM ({sessions}) WHERE {chosen}')}"
        else:
            sessions = _sessions_sql(ctx, visit_dims, " AND ".join([*base, HAS_SESSION, *([bots] if bots else [])]))
        b.visit_mode = "join"
        filter_sql = [b.condition(f) for f in where_filters if _scope(f) != "visit"]
        in_segment = segment or f"{SESSION_KEY} IN {b.segment(f'SELECT s_id FROM ({sessions}) WHERE {chosen}')}"
        filter_sql.append(f"if({NO_SESSION}, {own}, {in_segment})")
    else:
        filter_sql = [b.condition(f) for f in where_filters]
    if any(m.session_stats for m in defs):
        b.needs_session = True
    by_session = any(m.by_session for m in defs)

    # the parts every metric needs, each computed once
    parts: list[Part] = []
    for m in defs:
        parts.extend(p for p in m.parts if p not in parts)
    where = " AND ".join(base + ([bots] if bots else []) + filter_sql)
    source = f"{ctx.db}.events"
    if b.needs_session:
        session_where = " AND ".join([*base, HAS_SESSION, *([bots] if bots else [])])
        engaged = any(m.engagement for m in defs)
        if stored and not engaged:  # ~1 M session rows, not 10 M events (or a segment's sessions)
            shown = {d for d in dims if DIMENSIONS[d].scope == "visit"} if segment else visit_dims
            session_sql = _stored_first_touch(ctx.db, shown, bots, stats=True, within=segment)
        else:
            session_sql = _sessions_sql(ctx, visit_dims, session_where, stats=True, engaged=engaged)
        source += f" ANY LEFT JOIN ({session_sql}) AS s ON {SESSION_KEY} = s.s_id"
    if any(m.page_ttfb for m in defs):  # the TTFB split: each pageview's browser TTFB
        source += " ANY LEFT JOIN ($PAGE_TTFB) AS v ON id = v.v_page"

    dim_aliases = [f"d{i}" for i in range(len(dims))]
    selected = [f"{sql} AS {alias}" for sql, alias in zip(dim_sql, dim_aliases, strict=True)]
    group = ", ".join(dim_aliases)
    if not by_session:
        refs = [_call(p) for p in parts]
        selected += [_metric_sql(m, parts, refs) + f" AS m_{m.name}" for m in defs]
        sql = f"SELECT {', '.join(selected)} FROM {source} WHERE {where}"
        if dims:
            sql += f" GROUP BY {group}"
    else:
        inner = [*selected, f"{EVENT_KEY} AS _k", f"max({HAS_SESSION}) AS _s"]
        if any(m.name == "visit_duration" for m in defs):
            inner.append("any(s_duration) AS _sdur")
        inner += [_call(p, "State") + f" AS p{i}" for i, p in enumerate(parts)]
        refs = [_call(p, "Merge", f"p{i}") for i, p in enumerate(parts)]
        outer = [*dim_aliases, *[_metric_sql(m, parts, refs) + f" AS m_{m.name}" for m in defs]]
        sql = (
            f"SELECT {', '.join(outer)} FROM (SELECT {', '.join(inner)} FROM {source} WHERE {where} "
            f"GROUP BY {', '.join([*dim_aliases, '_k'])})"
        )
        if dims:
            sql += f" GROUP BY {group}"

    return _finish(b, query, ctx, sql, dims, cols, count_rows, paginate, source, where)


def _sessions_sql(ctx: Context, visit_dims: set[str], where: str, stats: bool = False, engaged: bool = False) -> str:
    """One row per session in the range: ``s_id``, its first-touch visit attributes and, with
    ``stats``, its pageviews, interactions and duration; with ``engaged`` also its engaged
    time (ms, the beacon's reports) and whether it converted a goal."""
    cols = [f"{SESSION_KEY} AS s_id", *(session_column(DIMENSIONS[d]) for d in sorted(visit_dims))]
    if stats:
        cols += [
            "countIf(kind = 'pageview') AS s_pageviews",
            f"countIf({INTERACTIVE}) AS s_interactions",
            f"{DURATION} AS s_duration",
        ]
    if engaged:
        cols += ["sum(ifNull(engaged_ms, 0)) AS s_engaged", "max($GOAL_ANY) AS s_converted"]
    return f"SELECT {', '.join(cols)} FROM {ctx.db}.events WHERE {where} GROUP BY s_id"


def _session_plan(
    b: _Builder, dims: tuple[str, ...], cols: tuple[str, ...], filters: tuple[Filter, ...], visit_dims: set[str],
    where: str,
) -> str:  # fmt: skip
    """Visit-only questions (visit dimensions and filters, visit metrics): group the events by
    session once, then group the sessions. Events without a session are their own visits: they
    come in ungrouped through a ``UNION ALL`` (grouping them by their ``id`` would read and hash
    every event's id). The visitor travels as its 64-bit hash (``_vis``; ``cityHash64('')`` is
    no visitor): a string state per session cost memory and spilling on large ranges."""
    grouped = [
        f"{SESSION_KEY} AS _k", "toUInt8(1) AS _s", "any(vid) AS _vis", "countIf(kind = 'pageview') AS _pv",
        "_pv AS _pvs", f"countIf({INTERACTIVE}) AS _int", f"{DURATION} AS _dur",
    ]  # fmt: skip
    single = [
        "toUInt64(0) AS _k", "toUInt8(0) AS _s", "vid AS _vis", "toUInt64(kind = 'pageview') AS _pv", "_pv AS _pvs",
        f"toUInt64({INTERACTIVE}) AS _int", "toInt64(0) AS _dur",
    ]  # fmt: skip
    for name in sorted(visit_dims):
        dim = DIMENSIONS[name]
        pick = "argMinIf" if dim.first else "argMaxIf"
        grouped.append(f"{pick}({dim.expr}, ts, kind = 'pageview') AS {dim.alias}")
        single.append(f"{dim.expr} AS {dim.alias}")
    bucket = next((d for d in dims if DIMENSIONS[d].scope == "time"), None)
    selected = [f"{'_bucket' if d == bucket else b.column(d)} AS d{i}" for i, d in enumerate(dims)]
    selected += [f"{BY_SESSION[m]} AS m_{m}" for m in cols]
    conditions = [b.condition(f) for f in filters]
    stored = bucket is not None or (b.ctx.sessions and _whole_hours(b.period))
    within = ""
    shown = {d for d in dims if DIMENSIONS[d].scope == "visit"}
    if stored and conditions and (bucket is not None or shown - _visit_dims((), filters)):
        # The segment first, as a set of sessions (merging only the filters' first-touch
        # states), then the shown dimensions' states for those sessions alone: merging a
        # state per session and dimension is the costly part, and a segment keeps a few.
        matching = _stored_sessions(b.ctx.db, _visit_dims((), filters))
        within = f"sid IN {b.segment('SELECT _k FROM (' + matching + ') WHERE ' + ' AND '.join(conditions))}"
        visit_dims, conditions = shown, []
    if bucket is not None:  # _stored_buckets said yes
        granularity = b.period.granularity if bucket == "time" else bucket.split(":", 1)[1]
        label = time_expr(granularity, b.shift, column="hour")
        sessions = _stored_sessions(b.ctx.db, visit_dims, label, within)
    elif stored:
        sessions = _stored_sessions(b.ctx.db, visit_dims, within=within)
    else:
        sessions = (
            f"SELECT {', '.join(grouped)} FROM {b.ctx.db}.events WHERE {where} AND {HAS_SESSION} GROUP BY _k "
            f"UNION ALL SELECT {', '.join(single)} FROM {b.ctx.db}.events WHERE {where} AND {NO_SESSION}"
        )
    sql = f"SELECT {', '.join(selected)} FROM ({sessions})"
    if bucket is not None:
        sql += " ARRAY JOIN _bp.1 AS _bucket, _bp.2 AS _pv"
    if conditions:
        sql += " WHERE " + " AND ".join(conditions)
    if dims:
        sql += " GROUP BY " + ", ".join(f"d{i}" for i in range(len(dims)))
    return sql


def _whole_hours(period: Period) -> bool:
    """The ``sessions`` table folds events per UTC hour: exact for ranges of whole hours."""
    return all(
        t.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0) == t for t in (period.start, period.end)
    )


def _stored_buckets(b: _Builder, dims: tuple[str, ...], cols: tuple[str, ...], visit_dims: set[str]) -> bool:
    """Whether a question by time can bucket the ``sessions`` table's hourly rows: one time
    dimension, hours or coarser, whole hours, and every local bucket boundary of the site's
    zone on a whole UTC hour — and worth it: it needs a session's first touch or its whole
    (bounce, duration); counting visitors, visits and pageviews per bucket is cheaper on the
    events (measured: load_tests/bench_queries.py)."""
    if not visit_dims and not any(METRICS[m].session_stats for m in cols):
        return False
    times = [d for d in dims if DIMENSIONS[d].scope == "time"]
    if len(times) != 1 or any(DIMENSIONS[d].scope not in ("time", "visit") for d in dims):
        return False
    granularity = b.period.granularity if times[0] == "time" else times[0].split(":", 1)[1]
    return (
        b.ctx.sessions and granularity != "minute" and _whole_hours(b.period)
        and _hour_zone(b.query.timezone, b.period)
    )  # fmt: skip


def _hour_zone(tz: str, period: Period) -> bool:
    """The zone's UTC offset is a whole number of hours throughout ``period`` (checked daily)."""
    zone = ZoneInfo(tz)
    days = (period.end - period.start).days + 1
    if days > 20_000:
        return False
    return all(
        (offset := (period.start + dt.timedelta(days=i)).astimezone(zone).utcoffset()) is not None
        and offset.total_seconds() % 3600 == 0
        for i in range(days + 1)
    )


def _stored_sessions(db: str, visit_dims: set[str], bucket: str | None = None, within: str = "") -> str:
    """The visit-only plan's per-session rows from the ``sessions`` table: its rows in the
    range (whole hours) and not bots, merged per session — the same numbers as grouping the
    range's events (``_k`` does not matter above; ``_s`` is false for a sessionless event).

    With ``bucket`` (a time label over the rows' ``hour``), ``_bp`` pairs each bucket the
    session has events in with its pageviews there, for the caller's ``ARRAY JOIN``: a
    session counts once in every bucket it touched, with its whole-range duration and
    bounce (as the events answer it); ``_pvs`` is its pageviews in the whole range.
    ``within``: a condition on ``sid`` (the sessions of a segment) applied before merging."""
    cols = [
        "sid AS _k", "any(in_session) AS _s", "any(visitor) AS _vis",
        "sum(pageviews) AS _pvs" if bucket else "sum(pageviews) AS _pv", "_pvs" if bucket else "_pv AS _pvs",
        "sum(interactive) AS _int",
        "intDiv(toUnixTimestamp64Milli(max(end)) - toUnixTimestamp64Milli(min(start)), 1000) AS _dur",
    ]  # fmt: skip
    if bucket:  # a third array of ones, so a bucket with no pageview keeps its key
        cols.append(f"sumMap([{bucket}], [toUInt64(pageviews)], [toUInt64(1)]) AS _bp")
        cols.remove("_pvs")
    for name in sorted(visit_dims):
        dim = DIMENSIONS[name]
        cols.append(f"{'argMinIf' if dim.first else 'argMaxIf'}Merge({dim.alias}) AS {dim.alias}")
    return (
        f"SELECT {', '.join(cols)} FROM {db}.sessions WHERE site = {{site:String}} AND hour >= {{lo:{TS}}} "
        f"AND hour < {{hi:{TS}}} AND NOT bot{f' AND {within}' if within else ''} GROUP BY sid, in_session "
        f"HAVING {_HUMAN_SESSION}"
    )


# Rows of the ``sessions`` table carry their events' bot_score in the key: a session
# with any row scored as automated is left out whole (bots.py); a sessionless event is
# its own "session" there (sid = hash of its id), so it keeps the per-event rule.
_HUMAN_SESSION = "max(bot_score BETWEEN 1 AND {bot_max:UInt8}) = 0"


def _stored_first_touch(db: str, visit_dims: set[str], bots: str, stats: bool = False, within: str = "") -> str:
    """:func:`_sessions_sql` from the ``sessions`` table: ``s_id`` and the first-touch
    attributes of every session with events in the range (whole hours) and, with ``stats``,
    its pageviews, interactions and duration (engagement is not stored: goals are the
    query's)."""
    cols = ["sid AS s_id"]
    if stats:
        cols += [
            "sum(pageviews) AS s_pageviews", "sum(interactive) AS s_interactions",
            "intDiv(toUnixTimestamp64Milli(max(end)) - toUnixTimestamp64Milli(min(start)), 1000) AS s_duration",
        ]  # fmt: skip
    for name in sorted(visit_dims):
        dim = DIMENSIONS[name]
        cols.append(f"{'argMinIf' if dim.first else 'argMaxIf'}Merge({dim.alias}) AS {dim.alias}")
    where = f"site = {{site:String}} AND hour >= {{lo:{TS}}} AND hour < {{hi:{TS}}} AND in_session"
    if within:
        where += f" AND {within}"
    if not bots:  # the query filters on event:bot itself: every session
        return f"SELECT {', '.join(cols)} FROM {db}.sessions WHERE {where} GROUP BY sid"
    return f"SELECT {', '.join(cols)} FROM {db}.sessions WHERE {where} AND NOT bot GROUP BY sid HAVING {_HUMAN_SESSION}"


def _scope(f: Filter) -> str:
    """``visit`` when every condition of ``f`` is on a visit dimension, ``event`` when none is
    (goals and bots count as event), ``mixed`` otherwise."""
    scopes = {"visit" if DIMENSIONS[d].scope == "visit" else "event" for d in _filter_dims((f,))}
    return scopes.pop() if len(scopes) == 1 else "mixed"


def _finish(
    b: _Builder, query: Query, ctx: Context, sql: str, dims: tuple[str, ...], cols: tuple[str, ...],
    count_rows: bool, paginate: bool, source: str, where: str, plan: str = "events",
) -> Compiled:  # fmt: skip
    if count_rows:
        sql = f"SELECT count() FROM ({sql})"
    elif paginate and dims:
        order = ", ".join(_order(query, dims, cols))
        sql += f" ORDER BY {order} LIMIT {int(query.limit)} OFFSET {int(query.offset)}"

    p = b.period
    params: dict[str, Any] = {
        **b.params,
        "site": query.site,
        "lo": p.start,
        "hi": p.end,
        "tz": query.timezone,
        "bot_max": ctx.bot_max,
    }
    if "$APDEX" in sql:
        params["apdex_t"] = ctx.apdex_ms
    sql = sql.replace("$APDEX", "{apdex_t:Float64}").replace("$GOAL_ANY", ctx.goals.any())
    if "$BEACON_IDS" in sql:
        params["beacon_hi"] = p.end + dt.timedelta(seconds=BEACON_GRACE_SECONDS)
        sql = sql.replace(
            "$BEACON_IDS",
            f"(SELECT page_id FROM {ctx.db}.events WHERE site = {{site:String}} AND ts >= {{lo:{TS}}} "
            f"AND ts < {{beacon_hi:{TS}}} AND via = 'beacon' AND page_id != '')",
        )
    if "$PAGE_TTFB" in sql:
        # the page's first vitals report with a TTFB (its reports come after it, within the grace)
        params["beacon_hi"] = p.end + dt.timedelta(seconds=BEACON_GRACE_SECONDS)
        page_ttfb = (
            "SELECT page_id AS v_page, argMin(assumeNotNull(ttfb), ts) AS v_ttfb, toUInt8(1) AS v_has "
            f"FROM {ctx.db}.events WHERE site = {{site:String}} AND ts >= {{lo:{TS}}} AND ts < {{beacon_hi:{TS}}} "
            "AND via = 'beacon' AND kind = 'vitals' AND page_id != '' AND ttfb IS NOT NULL GROUP BY page_id"
        )
        sql, source = sql.replace("$PAGE_TTFB", page_ttfb), source.replace("$PAGE_TTFB", page_ttfb)
    if "$GOAL_ANY" in sql or "{g" in sql:
        params.update(ctx.goals.params)
    for i, subquery in enumerate(b.segments):
        token = f"$SEG{i}$"
        text = f"({subquery})" if ctx.segments is None else ctx.segments.name(subquery, params)
        sql, source, where = sql.replace(token, text), source.replace(token, text), where.replace(token, text)
    fill = {"$APDEX": "{apdex_t:Float64}", "$GOAL_ANY": ctx.goals.any()}
    for token, text in fill.items():
        source, where = source.replace(token, text), where.replace(token, text)
    return Compiled(sql, params, dims, cols, source, where, plan)


def _metric_sql(m: Metric, parts: list[Part], refs: list[str]) -> str:
    if m.name == "visit_duration":
        return "round(avgIf(_sdur, _s), 1)"
    return _formula(m, [refs[parts.index(p)] for p in m.parts])


def _visit_dims(dims: tuple[str, ...], filters: tuple[Filter, ...]) -> set[str]:
    names = set(dims) | set(_filter_dims(filters))
    return {n for n in names if DIMENSIONS[n].scope == "visit"}


def _filter_dims(filters: tuple[Filter, ...]) -> list[str]:
    out: list[str] = []
    for f in filters:
        out.extend([f.dimension] if isinstance(f, Condition) else _filter_dims(f.children))
    return out


def _order(query: Query, dims: tuple[str, ...], cols: tuple[str, ...]) -> list[str]:
    def ref(name: str) -> str:
        if name in dims:
            return f"d{dims.index(name)}"
        return "m_visitors" if name == "percentage" else f"m_{name}"

    keys = [f"{ref(n)} {d.upper()}" for n, d in query.order_by]
    if not keys:
        time_dims = [d for d in dims if DIMENSIONS[d].scope == "time"]
        keys = [f"{ref(d)} ASC" for d in time_dims] or [f"m_{cols[0]} DESC"]
    # a total order, so pages never overlap or skip rows
    keys += [f"d{i} ASC" for i in range(len(dims)) if f"d{i} ASC" not in keys and f"d{i} DESC" not in keys]
    return keys
