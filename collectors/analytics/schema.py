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
- low-cardinality dimensions as ``LowCardinality(String)``; every column ZSTD(1)
  (the default LZ4 left the dictionary-encoded columns ~2.7x larger) and ``ts``
  T64 + ZSTD (14 % smaller than Delta, the order being by visitor first):
  41 → 37 bytes per event merged (load_tests/bench_loader.py's events);
- retention as a TTL on ``ts`` (``{ttl_days}``, default 730 days = 2 years).
- ``trace_id`` holds ``''`` when the trace id is the event's own ``id`` (a trace
  the proxy started) and ``'-'`` when there was none (rows.store_trace); export
  restores them. The loader writes through ``events_in`` (below).

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
    ("ts", "DateTime64(3, 'UTC') CODEC(T64, ZSTD(1))"),
    ("site", "LowCardinality(String) CODEC(ZSTD(1))"),
    ("kind", "LowCardinality(String) CODEC(ZSTD(1))"),
    ("via", "LowCardinality(String) CODEC(ZSTD(1))"),
    ("method", "LowCardinality(String) CODEC(ZSTD(1))"),
    ("path", "String CODEC(ZSTD(1))"),
    ("route", "LowCardinality(String) CODEC(ZSTD(1))"),
    ("query", "Map(String, String) CODEC(ZSTD(1))"),
    ("status", "UInt16 CODEC(ZSTD(1))"),
    ("bytes_out", "UInt64 CODEC(T64, ZSTD(1))"),
    ("content_type", "LowCardinality(String) CODEC(ZSTD(1))"),
    ("duration_ms", "Float32 CODEC(ZSTD(1))"),
    ("upstream_ms", "Nullable(Float32) CODEC(ZSTD(1))"),
    ("visitor", "String CODEC(ZSTD(1))"),
    ("session", "String CODEC(ZSTD(1))"),
    ("new_visitor", "Bool CODEC(ZSTD(1))"),
    ("new_session", "Bool CODEC(ZSTD(1))"),
    ("referrer_url", "String CODEC(ZSTD(1))"),
    ("referrer_host", "LowCardinality(String) CODEC(ZSTD(1))"),
    ("referrer_medium", "LowCardinality(String) CODEC(ZSTD(1))"),
    ("referrer_source", "LowCardinality(String) CODEC(ZSTD(1))"),
    ("referrer_term", "String CODEC(ZSTD(1))"),
    ("utm_source", "LowCardinality(String) CODEC(ZSTD(1))"),
    ("utm_medium", "LowCardinality(String) CODEC(ZSTD(1))"),
    ("utm_campaign", "LowCardinality(String) CODEC(ZSTD(1))"),
    ("utm_term", "String CODEC(ZSTD(1))"),
    ("utm_content", "String CODEC(ZSTD(1))"),
    ("click_id", "String CODEC(ZSTD(1))"),
    ("click_id_network", "LowCardinality(String) CODEC(ZSTD(1))"),
    ("browser", "LowCardinality(String) CODEC(ZSTD(1))"),
    ("browser_version", "LowCardinality(String) CODEC(ZSTD(1))"),
    ("os", "LowCardinality(String) CODEC(ZSTD(1))"),
    ("device", "LowCardinality(String) CODEC(ZSTD(1))"),
    ("bot", "Bool CODEC(ZSTD(1))"),
    ("bot_name", "LowCardinality(String) CODEC(ZSTD(1))"),
    ("bot_score", "UInt8 CODEC(ZSTD(1))"),  # 0 = not scored; 1-99 low = automated (issue 13)
    ("channel", "LowCardinality(String) CODEC(ZSTD(1))"),
    ("ip", "String CODEC(ZSTD(1))"),
    ("country", "LowCardinality(String) CODEC(ZSTD(1))"),
    ("trace_id", "String CODEC(ZSTD(1))"),
    ("error", "LowCardinality(String) CODEC(ZSTD(1))"),
    ("consent", "LowCardinality(String) CODEC(ZSTD(1))"),
    ("page_id", "String CODEC(ZSTD(1))"),
    ("lcp", "Nullable(Float32) CODEC(ZSTD(1))"),
    ("inp", "Nullable(Float32) CODEC(ZSTD(1))"),
    ("cls", "Nullable(Float32) CODEC(ZSTD(1))"),
    ("fcp", "Nullable(Float32) CODEC(ZSTD(1))"),
    ("ttfb", "Nullable(Float32) CODEC(ZSTD(1))"),
    ("engaged_ms", "Nullable(UInt32) CODEC(ZSTD(1))"),
    ("scroll_depth", "Nullable(UInt8) CODEC(ZSTD(1))"),
    ("name", "LowCardinality(String) CODEC(ZSTD(1))"),
    ("props", "Map(String, String) CODEC(ZSTD(1))"),
)

EVENT_COLUMN_NAMES = tuple(name for name, _ in EVENT_COLUMNS)
DEFAULT_TTL_DAYS = 730

# Computed by the engine on insert (never inserted, not in ``SELECT *`` nor in exports):
# the 64-bit hashes that visitor and session questions count, group and join on. Reading
# 8 bytes per row instead of a 22-character id and hashing it cut ``uniqExact`` of the
# visitors over 10 M events from ~320 to ~165 ms and the whole-session bot exclusion
# from ~180 to ~65 ms (load_tests/bench_queries.py's data). ``cityHash64('')`` is "none",
# as in the sessions table. ~1.7 bytes per event on disk for both.
DERIVED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("vid", "UInt64 MATERIALIZED cityHash64(visitor) CODEC(ZSTD(1))"),
    ("sid", "UInt64 MATERIALIZED cityHash64(session) CODEC(ZSTD(1))"),
)

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
    columns = ",\n".join(f"    {name} {kind}" for name, kind in (*EVENT_COLUMNS, *DERIVED_COLUMNS))
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


# The loader's landing table: one column per event v1 field, nested objects as named
# tuples, so the engine parses the stream's own JSON lines (``JSONEachRow``) and the
# materialized view below flattens them into ``events`` — no Python per field. Numbers
# are read wide and clamped in the view exactly as rows.to_row does; a value the
# engine cannot read with these types fails the insert and the loader stores that
# batch through rows.to_row instead (loader.py).
INPUT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "String"),
    ("ts", "DateTime64(3, 'UTC')"),
    ("site", "String"),
    ("kind", "String"),
    ("via", "String"),
    ("method", "String"),
    ("path", "String"),
    ("route", "String"),
    ("query", "Map(String, String)"),
    ("status", "Nullable(Int64)"),
    ("bytes_out", "Nullable(Int64)"),
    ("content_type", "String"),
    ("duration_ms", "Float32"),
    ("upstream_ms", "Nullable(Float32)"),
    ("visitor", "String"),
    ("session", "String"),
    ("new_visitor", "Bool"),
    ("new_session", "Bool"),
    ("referrer", "Tuple(url String, host String, medium String, source String, term String)"),
    ("utm", "Tuple(source String, medium String, campaign String, term String, content String, "
            "click_id String, click_id_network String)"),
    ("ua", "Tuple(browser String, browser_version String, os String, device String)"),
    ("bot", "Bool"),
    ("bot_name", "String"),
    ("bot_score", "Nullable(Int64)"),
    ("channel", "String"),
    ("ip", "String"),
    ("country", "String"),
    ("trace_id", "String"),
    ("error", "String"),
    ("consent", "String"),
    ("page_id", "String"),
    ("vitals", "Tuple(lcp Nullable(Float32), inp Nullable(Float32), cls Nullable(Float32), "
               "fcp Nullable(Float32), ttfb Nullable(Float32))"),
    ("engaged_ms", "Nullable(Int64)"),
    ("scroll_depth", "Nullable(Int64)"),
    ("name", "String"),
    ("props", "Map(String, String)"),
)  # fmt: skip

# events column → expression over INPUT_COLUMNS (a column absent here is copied as is).
FLATTEN: dict[str, str] = {
    "via": "if(i.via = '', 'proxy', i.via)",
    "status": "toUInt16(if(i.status >= 0 AND i.status < 65536, assumeNotNull(i.status), 0))",
    "bytes_out": "toUInt64(if(i.bytes_out >= 0, assumeNotNull(i.bytes_out), 0))",
    # rows.to_row: 'direct' for an absent or null referrer; a tuple cannot tell those
    # from an empty object, which therefore reads as direct too (exported the same).
    "referrer_medium": "if(i.referrer.medium = '' AND i.referrer.url = '' AND i.referrer.host = '' "
                       "AND i.referrer.source = '' AND i.referrer.term = '', 'direct', i.referrer.medium)",
    "trace_id": "multiIf(i.trace_id = i.id, '', i.trace_id = '', '-', i.trace_id)",  # rows.store_trace
    "bot_score": "toUInt8(if(i.bot_score >= 0 AND i.bot_score <= 99, assumeNotNull(i.bot_score), 0))",
    "engaged_ms": "if(i.engaged_ms >= 0 AND i.engaged_ms < 4294967296, toUInt32(i.engaged_ms), NULL)",
    "scroll_depth": "if(i.scroll_depth >= 0 AND i.scroll_depth <= 100, toUInt8(i.scroll_depth), NULL)",
    **{f"referrer_{f}": f"i.referrer.{f}" for f in ("url", "host", "source", "term")},
    **{f"utm_{f}": f"i.utm.{f}" for f in ("source", "medium", "campaign", "term", "content")},
    **{f: f"i.utm.{f}" for f in ("click_id", "click_id_network")},
    **{f: f"i.ua.{f}" for f in ("browser", "browser_version", "os", "device")},
    **{f: f"i.vitals.{f}" for f in ("lcp", "inp", "cls", "fcp", "ttfb")},
}  # fmt: skip

# What the loader's fast insert reads strictly: a value of another JSON type than
# its column's fails the insert (then rows.to_row decides), never a silent guess.
INPUT_SETTINGS: dict[str, int] = {
    "input_format_skip_unknown_fields": 1,  # a newer proxy's additive fields
    "input_format_null_as_default": 1,
    "input_format_json_ignore_unknown_keys_in_named_tuple": 1,
    "input_format_json_defaults_for_missing_elements_in_named_tuple": 1,
    "input_format_json_read_numbers_as_strings": 0,
    "input_format_json_read_bools_as_strings": 0,
    "input_format_json_read_objects_as_strings": 0,
    "input_format_json_read_arrays_as_strings": 0,
    "input_format_allow_errors_num": 0,
    "input_format_allow_errors_ratio": 0,
    # Parallel parsing hands the block to a thread pool: on two busy cores a
    # 5,000-row insert took ~2x the wall time and ~1.4x the CPU with it.
    "input_format_parallel_parsing": 0,
}


def input_ddl(db: str, *, cluster: str | None = None) -> str:
    """The loader's ``events_in`` (engine ``Null``: rows go only to the view)."""
    columns = ",\n".join(f"    {name} {kind}" for name, kind in INPUT_COLUMNS)
    on_cluster = f" ON CLUSTER {cluster}" if cluster else ""
    return f"CREATE TABLE IF NOT EXISTS {db}.events_in{on_cluster} (\n{columns}\n) ENGINE = Null"


def flatten_ddl(db: str, *, cluster: str | None = None) -> str:
    """The view that flattens every insert into ``events_in`` into ``events``."""
    select = ",\n    ".join(f"{FLATTEN.get(name, 'i.' + name)} AS {name}" for name in EVENT_COLUMN_NAMES)
    on_cluster = f" ON CLUSTER {cluster}" if cluster else ""
    return (
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.events_flatten{on_cluster} TO {db}.events AS SELECT\n"
        f"    {select}\nFROM {db}.events_in AS i"
    )


def create_statements(db: str, *, ttl_days: int = DEFAULT_TTL_DAYS, cluster: str | None = None) -> list[str]:
    """Every statement that creates (or completes) the store, in order; all idempotent.

    Embedded and single server: the database, ``events`` and the loader's
    ``events_in`` with its flattening view. Cluster: the database on every node, the
    replicated ``events_local``, the ``Distributed`` ``events`` over it, and
    ``events_in`` plus the view on every node (a node's view writes to ``events``).
    Derived tables (sessions, rollups) append their statements here.
    """
    if cluster:
        return [
            database_ddl(db, cluster=cluster),
            events_ddl(db, ttl_days=ttl_days, cluster=cluster, table="events_local"),
            *derived_statements(db, cluster=cluster, table="events_local"),
            distributed_ddl(db, cluster),
            *derived_statements(db, cluster=cluster),
            input_ddl(db, cluster=cluster),
            flatten_ddl(db, cluster=cluster),
        ]
    return [
        database_ddl(db), events_ddl(db, ttl_days=ttl_days), *derived_statements(db),
        *sessions_statements(db, ttl_days=ttl_days), input_ddl(db), flatten_ddl(db),
    ]  # fmt: skip


def derived_statements(db: str, *, cluster: str | None = None, table: str = "events") -> list[str]:
    """``ADD COLUMN IF NOT EXISTS`` for each derived column: a store made before one existed
    gains it (old parts compute it when read; merges write it)."""
    on_cluster = f" ON CLUSTER {cluster}" if cluster else ""
    return [
        f"ALTER TABLE {db}.{table}{on_cluster} ADD COLUMN IF NOT EXISTS {name} {kind}" for name, kind in DERIVED_COLUMNS
    ]


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
