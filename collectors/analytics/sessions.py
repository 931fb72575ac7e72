"""The ``sessions`` table: events pre-aggregated per (site, UTC hour, session, bot flags).

A ``MATERIALIZED VIEW`` on ``events`` fills it on every insert (the loader inserts each
event id once, so the view sees each event once). Rows are keyed by the hour of the
events they fold, not by the session alone: a query over whole UTC hours (every date
range of a site whose zone is a whole number of hours from UTC) then merges exactly the
rows of its range, so a session's numbers are those of its events **in the range**,
as the query-time definition says (README, "Metric definitions"). ``bot`` and
``bot_score`` are in the key too, so the per-event bot threshold (a query parameter)
still applies row by row. An event without a session is its own row (keyed by a hash
of its id), as it is its own visit.

Per row: the visitor's hash, first and last event time, pageviews, interactive events
and, per ``visit:*`` dimension, an ``argMinIf``/``argMaxIf`` state over the pageviews
(over the event itself when it has no session). Rows of one key written by different
inserts are merged in the background (``AggregatingMergeTree``) and at query time by
``GROUP BY`` (``-Merge`` combinators), so no ``FINAL`` is needed.
"""

from __future__ import annotations

from collectors.query.dimensions import DIMENSIONS
from collectors.query.metrics import INTERACTIVE

TS = "DateTime64(3, 'UTC')"
# the visit dimensions stored, in column order (their ``s_…`` aliases are the column names)
VISIT_DIMS = tuple(sorted(name for name, dim in DIMENSIONS.items() if dim.scope == "visit"))
# the key of an event's row: its session, or itself when it has none
SID = "if(session = '', cityHash64(id), cityHash64(session))"
PICK = "toUInt8(kind = 'pageview' OR session = '')"


def _state(name: str) -> str:
    return "argMinIf" if DIMENSIONS[name].first else "argMaxIf"


def sessions_ddl(db: str, *, ttl_days: int) -> str:
    dims = ",\n".join(
        f"    {DIMENSIONS[n].alias} AggregateFunction({_state(n)}, String, {TS}, UInt8) CODEC(ZSTD(1))"
        for n in VISIT_DIMS
    )
    return f"""CREATE TABLE IF NOT EXISTS {db}.sessions (
    site LowCardinality(String),
    hour DateTime('UTC'),
    sid UInt64,
    in_session Bool,
    bot Bool,
    bot_score UInt8,
    visitor SimpleAggregateFunction(any, UInt64),
    start SimpleAggregateFunction(min, {TS}),
    end SimpleAggregateFunction(max, {TS}),
    pageviews SimpleAggregateFunction(sum, UInt64),
    interactive SimpleAggregateFunction(sum, UInt64),
{dims}
) ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (site, hour, sid, in_session, bot, bot_score)
TTL hour + INTERVAL {int(ttl_days)} DAY"""


def _select(db: str) -> str:
    dims = ", ".join(f"{_state(n)}State({DIMENSIONS[n].expr}, ts, {PICK}) AS {DIMENSIONS[n].alias}" for n in VISIT_DIMS)
    return (
        f"SELECT site, toStartOfHour(ts) AS hour, {SID} AS sid, session != '' AS in_session, bot, bot_score, "
        "any(cityHash64(visitor)) AS visitor, min(ts) AS start, max(ts) AS end, "
        f"countIf(kind = 'pageview') AS pageviews, countIf({INTERACTIVE}) AS interactive, {dims} "
        f"FROM {db}.events GROUP BY site, hour, sid, in_session, bot, bot_score"
    )


def view_ddl(db: str) -> str:
    return f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.sessions_mv TO {db}.sessions AS {_select(db)}"


def backfill_sql(db: str) -> str:
    """Fold the events already stored (a store created before this table existed)."""
    return f"INSERT INTO {db}.sessions {_select(db)}"
