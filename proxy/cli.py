"""The ``footfall`` command (DESIGN.md 3.1).

    footfall proxy --upstream [HOST=]URL ... [--listen] [--admin-listen] [--redis-url]
                   [--data-dir] [--config] [--workers N]
    footfall run   (proxy's flags)       proxy + all collectors in one command
    footfall demo  (proxy's flags)       a bundled demo site as upstream, plus run
    footfall collect [analytics|performance|all] [--redis-url] [--admin-listen] ...
    footfall tail [--from-start] [--count N]
    footfall import FILE|-               events v1 (JSON lines) → the stream → the store
    footfall export --site S --from DATE --to DATE [--format jsonl|csv|parquet] [-o FILE]
    footfall analytics-schema [--cluster NAME]   the store's DDL
    footfall check-config FILE

Flags override ``FOOTFALL_*`` environment variables, which override the file.
Configuration errors exit with status 2 and one line per problem, naming the
field; a failure to start (a port in use, an unusable data directory) exits with
status 1 and one line ``footfall: ...`` naming what and what to do, after
releasing whatever had started. Never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from proxy import settings as settings_mod
from proxy.settings import ConfigError, Settings
from proxy.startup import EXIT_STARTUP, StartupError

EXIT_CONFIG = 2
EXIT_STORE_BUSY = 3


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="TOML config file (see config/footfall.example.toml)")
    p.add_argument("--redis-url", metavar="URL", help="Redis URL; default: embedded Redis in the data dir")
    p.add_argument("--data-dir", metavar="DIR", help="data directory (default ./footfall-data)")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def _proxy_flags(p: argparse.ArgumentParser, upstream_required: bool) -> None:
    p.add_argument(
        "--upstream", action="append", metavar="[HOST=]URL",
        help="route HOST (or *.suffix) to URL; a bare URL is the catch-all; repeatable"
        + ("" if upstream_required else " (default: the bundled demo site)"),
    )  # fmt: skip
    p.add_argument("--listen", metavar="HOST:PORT", help="proxy listener (default 127.0.0.1:8080)")
    p.add_argument("--admin-listen", metavar="HOST:PORT", help="admin listener (default 127.0.0.1:9108)")
    p.add_argument("--workers", type=int, metavar="N", help="proxy processes sharing the port (default 1)")
    p.add_argument(
        "--tracking", choices=["on", "off"], help="off: forward only, no events (default on)"
    )
    p.add_argument(
        "--beacon", choices=["on", "off"],
        help="the first-party script and endpoint (default off; on in demo)",
    )  # fmt: skip
    _common(p)


def _store_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--store-url", metavar="URL",
        help="analytics store: clickhouse://[user:pass@]host:8123/db; default: embedded chDB in the data dir",
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="footfall", description="Server-side behavioral tracking proxy.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _proxy_flags(sub.add_parser("proxy", help="run the tracking reverse proxy"), True)
    for name, text, required in (("run", "run the proxy and all collectors", True),
                                 ("demo", "run a demo site behind the proxy, with collectors", False)):  # fmt: skip
        serving = sub.add_parser(name, help=text)
        _proxy_flags(serving, required)
        _store_flag(serving)
    sub.choices["demo"].add_argument(
        "--traffic", choices=["on", "off"], default="on",
        help="simulated visitors through the proxy, a few requests per second (default on)",
    )  # fmt: skip
    collect = sub.add_parser("collect", help="run stream consumers (analytics, performance)")
    collect.add_argument("which", nargs="?", default="all", choices=["analytics", "performance", "all"])
    collect.add_argument("--admin-listen", metavar="HOST:PORT", help="API and /metrics (default 127.0.0.1:9109)")
    _common(collect)
    _store_flag(collect)
    imp = sub.add_parser("import", help="publish events v1 (JSON lines) to the stream for the store")
    imp.add_argument("file", metavar="FILE|-")
    _common(imp)
    _store_flag(imp)
    exp = sub.add_parser("export", help="write a site's raw events from the store")
    exp.add_argument("--site", required=True, metavar="HOST")
    exp.add_argument("--from", dest="start", required=True, metavar="DATE", help="YYYY-MM-DD or ISO 8601 (UTC)")
    exp.add_argument("--to", dest="end", required=True, metavar="DATE", help="inclusive day, or ISO 8601 instant")
    exp.add_argument("--format", default="jsonl", choices=["jsonl", "csv", "parquet"])
    exp.add_argument("-o", "--output", metavar="FILE", help="default: standard output")
    exp.add_argument("--admin-url", action="append", metavar="URL",
                     help="admin API of the process holding the store (default: the admin_listen "
                          "setting, then http://127.0.0.1:9109)")  # fmt: skip
    _common(exp)
    _store_flag(exp)
    ddl = sub.add_parser("analytics-schema", help="print the event store's DDL")
    ddl.add_argument("--cluster", metavar="NAME", help="ON CLUSTER, Replicated*MergeTree and Distributed")
    _common(ddl)
    _store_flag(ddl)
    tail = sub.add_parser("tail", help="print events from the stream as JSON lines")
    tail.add_argument("--from-start", action="store_true", help="begin at the oldest event in the stream")
    tail.add_argument("--count", type=int, default=0, metavar="N", help="exit after N events")
    _common(tail)
    check = sub.add_parser("check-config", help="validate a config file")
    check.add_argument("file", metavar="FILE")
    return parser


def load_settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {
        "upstreams": getattr(args, "upstream", None),
        "listen": getattr(args, "listen", None),
        "admin_listen": getattr(args, "admin_listen", None),
        "workers": getattr(args, "workers", None),
        "tracking": getattr(args, "tracking", None),
        "beacon.enabled": getattr(args, "beacon", None),
        "redis.url": args.redis_url,
        "data_dir": args.data_dir,
        "analytics.store_url": getattr(args, "store_url", None),
    }
    if args.command == "demo" and overrides["beacon.enabled"] is None and not os.environ.get("FOOTFALL_BEACON"):
        overrides["beacon.enabled"] = "on"  # the demo shows everything; still --beacon off to opt out
    return settings_mod.load(args.config, overrides)


def _check_collectors(settings: Settings) -> None:
    from collectors.analytics import config
    from collectors.settings import from_settings

    errors: list[str] = []
    from_settings(settings, errors)
    config.parse(settings.analytics, errors)
    if errors:
        raise ConfigError(errors)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "check-config":
        try:
            settings = settings_mod.load(args.file, env={})
            _check_collectors(settings)
        except ConfigError as exc:
            _config_error(exc)
            return EXIT_CONFIG
        print(f"{args.file}: ok ({len(settings.upstreams)} upstreams)")
        return 0
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    try:
        settings = load_settings(args)
        if args.command in ("run", "demo", "collect", "import", "export", "analytics-schema"):
            _check_collectors(settings)
    except ConfigError as exc:
        _config_error(exc)
        return EXIT_CONFIG
    if args.command in ("proxy", "run") and not settings.upstreams:
        _config_error(ConfigError(["upstreams: at least one --upstream is required"]))
        return EXIT_CONFIG
    try:
        return _serve(settings, args)
    except StartupError as exc:
        print(f"footfall: {exc}", file=sys.stderr, flush=True)
        return EXIT_STARTUP


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    if args.command == "tail":
        from proxy.stream.tail import tail

        return asyncio.run(tail(settings, from_start=args.from_start, count=args.count))
    if args.command == "collect":
        return _collect(settings, args)
    if args.command in ("import", "export", "analytics-schema"):
        return _transfer(settings, args)
    from proxy.runner import Plan, run

    collectors = frozenset() if args.command == "proxy" else frozenset({"analytics", "performance"})
    demo = args.command == "demo"
    traffic = demo and args.traffic == "on"
    try:
        return run(settings, Plan(collectors=collectors, demo=demo, demo_traffic=traffic))
    except Exception as exc:
        return _store_busy(exc)


def _store_busy(exc: Exception) -> int:
    """The embedded store is held by another process: say so (no traceback); re-raise anything else."""
    from collectors.analytics.store import StoreBusy

    if not isinstance(exc, StoreBusy):
        raise exc
    print(f"footfall: {exc}; stop that process or use another --data-dir", file=sys.stderr)
    return EXIT_STORE_BUSY


def _collect(settings: Settings, args: argparse.Namespace) -> int:
    from collectors.service import serve
    from collectors.settings import from_settings
    from collectors.transfer import store_settings
    from proxy.runner import install_uvloop, resolve_redis

    errors: list[str] = []
    listen = settings_mod.parse_address(args.admin_listen or "127.0.0.1:9109", "admin_listen", errors)
    if listen is not None:
        errors.extend(settings_mod.admin_token_errors(listen, settings.admin.token, "--admin-listen"))
    if errors or listen is None:
        _config_error(ConfigError(errors))
        return EXIT_CONFIG
    which = frozenset({"analytics", "performance"}) if args.which == "all" else frozenset({args.which})
    csettings = from_settings(settings, [])
    store = store_settings(settings.analytics)
    install_uvloop()
    redis_url, embedded = resolve_redis(settings)
    try:
        asyncio.run(serve(redis_url, settings.redis.stream_key, csettings, which, listen.host, listen.port,
                          shard_keys=settings.redis.shard_keys, store_settings=store,
                          data_dir=settings.data_dir, token=settings.admin.token))  # fmt: skip
    except KeyboardInterrupt:
        pass
    except Exception as exc:
        return _store_busy(exc)
    finally:
        if embedded is not None and not embedded.shared:
            embedded.stop()
    return 0


def _transfer(settings: Settings, args: argparse.Namespace) -> int:
    from collectors import transfer

    store = transfer.store_settings(settings.analytics)
    if args.command == "analytics-schema":
        return transfer.print_schema(store, args.cluster)
    if args.command == "export":
        admin = settings.admin_listen
        urls = args.admin_url or [f"http://{admin}", "http://127.0.0.1:9109"]
        return transfer.run_export(store, settings.data_dir, urls, args.site, args.start, args.end,
                                   args.format, args.output)  # fmt: skip
    from proxy.runner import resolve_redis

    redis_url, embedded = resolve_redis(settings)
    try:
        return transfer.run_import(redis_url, settings.redis.stream_key, settings.redis.stream_maxlen, store, args.file)
    finally:
        if embedded is not None and not embedded.shared:
            embedded.stop()


def _config_error(exc: ConfigError) -> None:
    print("footfall: invalid configuration:", file=sys.stderr)
    for line in exc.errors:
        print(f"  {line}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

