"""collectors.analytics.config: the [analytics] table, the store URL, and flags > env > file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from collectors.analytics.config import ServerUrl, StoreSettings, parse, parse_store_url
from proxy import cli
from proxy.settings import load


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("clickhouse://ch.internal:8123/analytics", ServerUrl("http", "ch.internal", 8123, "analytics")),
        ("clickhouse://ch.internal", ServerUrl("http", "ch.internal", 8123, "footfall")),
        ("clickhouses://u:p%40ss@ch.example/db1", ServerUrl("https", "ch.example", 8443, "db1", "u", "p@ss")),
        ("clickhouse://reader@[::1]:9000/", ServerUrl("http", "::1", 9000, "footfall", "reader", "")),
    ],
)
def test_store_urls(url: str, expected: ServerUrl) -> None:
    assert parse_store_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://ch:8123/db", "must be clickhouse://"),
        ("clickhouse:///db", "no host"),
        ("clickhouse://ch:99999/db", "bad port"),
        ("clickhouse://ch/db?x=1", "query"),
        ("clickhouse://ch/my-db", "database name"),
        ("clickhouse://ch/db;DROP", "database name"),
    ],
)
def test_bad_store_urls(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_store_url(url)


@pytest.mark.parametrize(
    ("raw", "errors"),
    [
        ({}, []),
        ({"ttl_days": 30, "max_threads": "4", "batch_size": 1000, "flush_seconds": 0.5}, []),
        ({"ttl_days": 0}, ["analytics.ttl_days: must be an integer of at least 1, not 0"]),
        ({"batch_size": 10}, ["analytics.batch_size: must be an integer of at least 1000, not 10"]),
        ({"max_memory_usage": True}, ["analytics.max_memory_usage: must be an integer of at least 67108864, not True"]),
        ({"flush_seconds": "soon"}, ["analytics.flush_seconds: must be a number of seconds in (0, 60], not 'soon'"]),
        ({"store_url": "mysql://x"}, ["analytics.store_url: must be clickhouse://[user:pass@]host:8123/db "
                                      "or clickhouses://..., not 'mysql://x'"]),
        ({"cluster": "main"}, ["analytics.cluster: needs analytics.store_url (the embedded store is one process)"]),
        ({"cluster": "a b", "store_url": "clickhouse://h"}, ["analytics.cluster: must be a cluster name "
                                                             "(letters, digits, _), not 'a b'"]),
        ({"retention": 3}, ["analytics.retention: unknown setting"]),
    ],
)  # fmt: skip
def test_parse_errors_name_the_key(raw: dict[str, Any], errors: list[str]) -> None:
    got: list[str] = []
    parse(raw, got)
    assert got == errors


def test_defaults_keep_raw_events_two_years_and_cap_the_engine() -> None:
    s = parse({}, [])
    assert s == StoreSettings()
    assert (s.ttl_days, s.batch_size, s.flush_seconds, s.database, s.server) == (730, 5000, 1.0, "footfall", None)
    assert s.engine_settings() == {"max_threads": 2, "max_memory_usage": 1 << 30}


def test_flag_over_env_over_file(tmp_path: Path) -> None:
    config = tmp_path / "f.toml"
    config.write_text('[analytics]\nstore_url = "clickhouse://file-host/db"\nttl_days = 90\n')
    env = {"FOOTFALL_STORE_URL": "clickhouse://env-host/db", "FOOTFALL_STORE_TTL_DAYS": "30"}

    def store_of(argv: list[str], environ: dict[str, str]) -> StoreSettings:
        args = cli.build_parser().parse_args(argv)
        settings = load(args.config, {"analytics.store_url": getattr(args, "store_url", None)}, env=environ)
        return parse(settings.analytics, [])

    assert store_of(["run", "--config", str(config)], {}).server.host == "file-host"  # type: ignore[union-attr]
    from_env = store_of(["run", "--config", str(config)], env)
    assert (from_env.server.host, from_env.ttl_days) == ("env-host", 30)  # type: ignore[union-attr]
    flagged = store_of(["collect", "--config", str(config), "--store-url", "clickhouse://flag-host/db"], env)
    assert flagged.server.host == "flag-host"  # type: ignore[union-attr]


def test_check_config_reports_analytics_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "f.toml"
    config.write_text("[analytics]\nbatch_size = 5\n")
    assert cli.main(["check-config", str(config)]) == cli.EXIT_CONFIG
    assert "analytics.batch_size: must be an integer of at least 1000" in capsys.readouterr().err
