"""The event store's tables, in the ClickHouse dialect (chDB embedded, ClickHouse server/cluster).

One row per event v1, flattened: nested objects become prefixed columns
(``referrer.host`` → ``referrer_host``, ``ua.device`` → ``device``, ``utm.source`` →
``utm_source``, ``vitals.lcp`` → ``lcp``); ``query`` and ``props`` are maps. An absent
string field is stored as ``''`` (ClickHouse's ``Nullable`` costs a byte map per
column and slows every filter); absent numbers that must stay distinguishable from
zero (``upstream_ms``, the vitals, ``engaged_ms``, ``scroll_depth``) are ``Nullable``.

Layout, modelled on Plausible's and PostHog's event tables:
- partitioned by month, ordered by ``(site, toDate(ts), visitor, ts)`` so that a
  site's date range is a contiguous key range and one visitor's events sit together;
- ``ReplacingMergeTree`` keyed by that order plus ``id``: a duplicate that slipped
  past the loader's id check (a replay racing a restart) is merged away in the
  background; the loader's own check keeps counts exact before that happens;
- low-cardinality dimensions as ``LowCardinality(String)``, long strings ZSTD;
- retention as a TTL on ``ts`` (``{ttl_days}``, default 730 days = 2 years).

``{db}`` is the database name; DDL is rendered by :func:`ddl` so the cluster
variants (``ON CLUSTER``, ``Replicated*``, ``Distributed``) come from one place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collectors.analytics.engine import Engine

# (column, ClickHouse type). Order is the insert order of the loader.
EVENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "String CODEC(ZSTD(1))"),
    ("ts", "DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1))"),
    ("site", "LowCardinality(String)"),
    ("kind", "LowCardinality(String)"),
    ("via", "LowCardinality(String)"),
    ("method", "LowCardinality(String)"),
    ("path", "String CODEC(ZSTD(1))"),
    ("route", "LowCardinality(String)"),
    ("query", "Map(String, String) CODEC(ZSTD(1))"),
    ("status", "UInt16"),
    ("bytes_out", "UInt64 CODEC(T64, ZSTD(1))"),
    ("content_type", "LowCardinality(String)"),
    ("duration_ms", "Float32 CODEC(ZSTD(1))"),
    ("upstream_ms", "Nullable(Float32) CODEC(ZSTD(1))"),
    ("visitor", "String CODEC(ZSTD(1))"),
    ("session", "String CODEC(ZSTD(1))"),
    ("new_visitor", "Bool"),
    ("new_session", "Bool"),
    ("referrer_url", "String CODEC(ZSTD(1))"),
    ("referrer_host", "LowCardinality(String)"),
    ("referrer_medium", "LowCardinality(String)"),
    ("referrer_source", "LowCardinality(String)"),
    ("referrer_term", "String CODEC(ZSTD(1))"),
    ("utm_source", "LowCardinality(String)"),
    ("utm_medium", "LowCardinality(String)"),
    ("utm_campaign", "LowCardinality(String)"),
    ("utm_term", "String CODEC(ZSTD(1))"),
    ("utm_content", "String CODEC(ZSTD(1))"),
    ("click_id", "String CODEC(ZSTD(1))"),
    ("click_id_network", "LowCardinality(String)"),
    ("browser", "LowCardinality(String)"),
    ("browser_version", "LowCardinality(String)"),
    ("os", "LowCardinality(String)"),
    ("device", "LowCardinality(String)"),
    ("bot", "Bool"),
    ("bot_name", "LowCardinality(String)"),
    ("bot_score", "UInt8"),  # 0 = not scored; 1-99 low = automated (issue 13)
    ("channel", "LowCardinality(String)"),
    ("ip", "String CODEC(ZSTD(1))"),
    ("country", "LowCardinality(String)"),
    ("trace_id", "String CODEC(ZSTD(1))"),
    ("error", "LowCardinality(String)"),
    ("consent", "LowCardinality(String)"),
    ("page_id", "String CODEC(ZSTD(1))"),
    ("lcp", "Nullable(Float32)"),
    ("inp", "Nullable(Float32)"),
    ("cls", "Nullable(Float32)"),
    ("fcp", "Nullable(Float32)"),
    ("ttfb", "Nullable(Float32)"),
    ("engaged_ms", "Nullable(UInt32)"),
    ("scroll_depth", "Nullable(UInt8)"),
    ("name", "LowCardinality(String)"),
    ("props", "Map(String, String) CODEC(ZSTD(1))"),
)

EVENT_COLUMN_NAMES = tuple(name for name, _ in EVENT_COLUMNS)
DEFAULT_TTL_DAYS = 730

_EVENTS = """CREATE TABLE IF NOT EXISTS {db}.{table}{on_cluster} (
{columns}
) ENGINE = {engine}
PARTITION BY toYYYYMM(ts)
ORDER BY (site, toDate(ts), visitor, ts, id)
TTL toDateTime(ts) + INTERVAL {ttl_days} DAY
SETTINGS index_granularity = 8192"""


def events_ddl(
    db: str, *, ttl_days: int = DEFAULT_TTL_DAYS, cluster: str | None = None, table: str = "events"
) -> str:
    """``CREATE TABLE`` for the events table; with ``cluster``, the replicated local table."""
    columns = ",\n".join(f"    {name} {kind}" for name, kind in EVENT_COLUMNS)
    on_cluster = f" ON CLUSTER {cluster}" if cluster else ""
    engine = (
        f"ReplicatedReplacingMergeTree('/clickhouse/tables/{{shard}}/{{database}}/{table}', '{{replica}}')"
        if cluster
        else "ReplacingMergeTree"
    )
    return _EVENTS.format(
        db=db, table=table, on_cluster=on_cluster, columns=columns, engine=engine, ttl_days=int(ttl_days)
    )


def database_ddl(db: str, *, cluster: str | None = None) -> str:
    return f"CREATE DATABASE IF NOT EXISTS {db}" + (f" ON CLUSTER {cluster}" if cluster else "")


def distributed_ddl(db: str, cluster: str, *, table: str = "events", local: str = "events_local") -> str:
    """The cluster-wide ``events`` table over every shard's ``events_local``.

    Sharded by visitor so that a visitor's events (and so their sessions) live on
    one shard; queries and the loader's inserts go to this table.
    """
    return (
        f"CREATE TABLE IF NOT EXISTS {db}.{table} ON CLUSTER {cluster} AS {db}.{local}\n"
        f"ENGINE = Distributed({cluster}, {db}, {local}, cityHash64(visitor))"
    )


def create_statements(db: str, *, ttl_days: int = DEFAULT_TTL_DAYS, cluster: str | None = None) -> list[str]:
    """Every statement that creates (or completes) the store, in order; all idempotent.

    Embedded and single server: the database and ``events``. Cluster: the database
    on every node, the replicated ``events_local`` and the ``Distributed`` ``events``
    over it. Derived tables (sessions, rollups) append their statements here.
    """
    if cluster:
        return [
            database_ddl(db, cluster=cluster),
            events_ddl(db, ttl_days=ttl_days, cluster=cluster, table="events_local"),
            distributed_ddl(db, cluster),
        ]
    return [database_ddl(db), events_ddl(db, ttl_days=ttl_days), *sessions_statements(db, ttl_days=ttl_days)]


def sessions_statements(db: str, *, ttl_days: int = DEFAULT_TTL_DAYS) -> list[str]:
    """The ``sessions`` table and the view that fills it (single store only; see sessions.py)."""
    from collectors.analytics import sessions

    return [sessions.sessions_ddl(db, ttl_days=ttl_days), sessions.view_ddl(db)]


def create_all(
    engine: Engine, db: str, *, ttl_days: int = DEFAULT_TTL_DAYS, cluster: str | None = None
) -> None:
    """Create or complete the store's tables (the one migration entry point)."""
    fresh = not cluster and not _exists(engine, db, "sessions")
    for statement in create_statements(db, ttl_days=ttl_days, cluster=cluster):
        engine.command(statement)
    if fresh:  # a store from before the sessions table: fold the events it already holds
        from collectors.analytics import sessions

        engine.command(sessions.backfill_sql(db))


def _exists(engine: Engine, db: str, table: str) -> bool:
    sql = "SELECT count() FROM system.tables WHERE database = {db:String} AND name = {t:String}"
    return bool(engine.query(sql, {"db": db, "t": table})[0][0])
