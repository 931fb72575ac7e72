"""collectors.analytics.schema: the DDL `footfall analytics-schema` prints runs on ClickHouse (chDB)."""

from __future__ import annotations

import pytest

from collectors.analytics.engine import ChdbEngine
from collectors.analytics.schema import DERIVED_COLUMNS, EVENT_COLUMN_NAMES, create_statements
from proxy import cli


def statements(out: str) -> list[str]:
    return [s.strip() for s in out.split(";\n") if s.strip().rstrip(";")]


def test_printed_ddl_runs_on_the_engine(
    chdb_engines: tuple[ChdbEngine, ChdbEngine], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["analytics-schema", "--store-url", "clickhouse://h/ddl_test"]) == 0
    printed = statements(capsys.readouterr().out)
    assert [s.split("(")[0].split(" ENGINE")[0].split(" TO ")[0].strip() for s in printed] == [
        "CREATE DATABASE IF NOT EXISTS ddl_test", "CREATE TABLE IF NOT EXISTS ddl_test.events",
        "ALTER TABLE ddl_test.events ADD COLUMN IF NOT EXISTS vid UInt64 MATERIALIZED cityHash64",
        "ALTER TABLE ddl_test.events ADD COLUMN IF NOT EXISTS sid UInt64 MATERIALIZED cityHash64",
        "CREATE TABLE IF NOT EXISTS ddl_test.sessions",
        "CREATE MATERIALIZED VIEW IF NOT EXISTS ddl_test.sessions_mv",
        "CREATE TABLE IF NOT EXISTS ddl_test.events_in",
        "CREATE MATERIALIZED VIEW IF NOT EXISTS ddl_test.events_flatten"]  # fmt: skip
    engine = chdb_engines[0]
    try:
        for statement in printed * 2:  # idempotent
            engine.command(statement.rstrip(";"))
        columns = engine.query("SELECT name FROM system.columns WHERE database = 'ddl_test' AND table = 'events' "
                               "ORDER BY position")  # fmt: skip
        assert tuple(c[0] for c in columns) == (*EVENT_COLUMN_NAMES, *(name for name, _ in DERIVED_COLUMNS))
        (ttl,) = engine.query("SELECT create_table_query FROM system.tables WHERE database = 'ddl_test' "
                              "AND name = 'events'")[0]  # fmt: skip
        assert "TTL toDateTime(ts) + toIntervalDay(730)" in ttl
    finally:
        engine.command("DROP DATABASE IF EXISTS ddl_test")


def test_cluster_variant_is_replicated_and_distributed(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["analytics-schema", "--store-url", "clickhouse://h/stats", "--cluster", "main"]) == 0
    db, local, add_vid, add_sid, dist, dist_vid, dist_sid, landing, view = statements(capsys.readouterr().out)
    assert db == "CREATE DATABASE IF NOT EXISTS stats ON CLUSTER main"
    assert local.startswith("CREATE TABLE IF NOT EXISTS stats.events_local ON CLUSTER main (")
    replicated = "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/events_local', '{replica}')"
    assert f"ENGINE = {replicated}" in local
    for added, table in ((add_vid, "events_local"), (add_sid, "events_local"), (dist_vid, "events"),
                         (dist_sid, "events")):  # fmt: skip
        assert added.startswith(f"ALTER TABLE stats.{table} ON CLUSTER main ADD COLUMN IF NOT EXISTS ")
    assert dist.startswith("CREATE TABLE IF NOT EXISTS stats.events ON CLUSTER main AS stats.events_local")
    assert "ENGINE = Distributed(main, stats, events_local, cityHash64(visitor))" in dist
    assert landing.startswith("CREATE TABLE IF NOT EXISTS stats.events_in ON CLUSTER main (")
    assert view.startswith("CREATE MATERIALIZED VIEW IF NOT EXISTS stats.events_flatten ON CLUSTER main "
                           "TO stats.events AS SELECT")  # fmt: skip


def test_ttl_follows_the_setting() -> None:
    assert "INTERVAL 30 DAY" in create_statements("db", ttl_days=30)[1]
