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

_EVENTS = """CREATE TABLE IF NOT EXISTS {db}.events{on_cluster} (
{columns}
) ENGINE = {engine}
PARTITION BY toYYYYMM(ts)
ORDER BY (site, toDate(ts), visitor, ts, id)
TTL toDateTime(ts) + INTERVAL {ttl_days} DAY
SETTINGS index_granularity = 8192"""


def events_ddl(db: str, *, ttl_days: int = DEFAULT_TTL_DAYS, cluster: str | None = None) -> str:
    """``CREATE TABLE`` for the events table; with ``cluster``, the replicated local table."""
    columns = ",\n".join(f"    {name} {kind}" for name, kind in EVENT_COLUMNS)
    on_cluster = f" ON CLUSTER {cluster}" if cluster else ""
    engine = (
        "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/events', '{replica}')"
        if cluster
        else "ReplacingMergeTree"
    )
    return _EVENTS.format(db=db, on_cluster=on_cluster, columns=columns, engine=engine, ttl_days=int(ttl_days))
