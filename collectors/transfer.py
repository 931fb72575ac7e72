"""The ``footfall import``, ``export`` and ``analytics-schema`` commands (called by proxy/cli.py).

Export reads through the admin API of the process that holds the store
(``GET /api/v2/export``): the embedded store admits one process at a time, so
while ``footfall run`` or ``collect`` holds it, that is the only way in. When no
such process answers, export opens the store itself.
"""

from __future__ import annotations

import asyncio
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from collectors.analytics import config, export, schema
from collectors.analytics.importer import CHUNK, import_lines
from collectors.progress import Progress

EXIT_BAD_INPUT = 1
EXIT_UNAVAILABLE = 3


def store_settings(raw: Any) -> config.StoreSettings:
    """The validated ``[analytics]`` table (already checked by the CLI at start)."""
    return config.parse(raw, [])


# --- import -----------------------------------------------------------------


def _lines(path: str) -> tuple[Iterable[bytes], int | None, IO[bytes]]:
    if path == "-":
        return sys.stdin.buffer, None, sys.stdin.buffer
    fh = open(path, "rb")  # noqa: SIM115 - closed by the caller
    return fh, os.fstat(fh.fileno()).st_size, fh


def run_import(redis_url: str, stream: str, maxlen: int, store: config.StoreSettings, path: str) -> int:
    try:
        lines, size, fh = _lines(path)
    except OSError as exc:
        print(f"footfall import: {path}: {exc.strerror}", file=sys.stderr)
        return EXIT_BAD_INPUT
    progress = Progress(f"import {path}", total=size)

    read = 0  # bytes: the bar's measure for a file, lines for a pipe

    def counted() -> Iterator[bytes]:
        nonlocal read
        for line in lines:
            read += len(line)
            yield line

    def on_progress(number: int, note: str) -> None:
        progress.update(read if size else number, note)

    async def main() -> Any:
        import redis.asyncio as aioredis

        redis = aioredis.Redis.from_url(redis_url)
        try:
            return await import_lines(
                redis, stream, counted(), maxlen=maxlen, ttl_days=store.ttl_days,
                max_unread=max(CHUNK, maxlen // 4), on_progress=on_progress,
            )  # fmt: skip
        finally:
            await redis.aclose()

    try:
        result = asyncio.run(main())
    finally:
        progress.close()
        if fh is not sys.stdin.buffer:
            fh.close()
    for number, reason in result.errors:
        print(f"{path}:{number}: {reason}", file=sys.stderr)
    if result.bad > len(result.errors):
        print(f"... and {result.bad - len(result.errors)} more bad lines", file=sys.stderr)
    print(f"footfall import: {result.good} events published to {stream}, {result.bad} bad lines skipped",
          file=sys.stderr)  # fmt: skip
    return EXIT_BAD_INPUT if result.bad else 0


# --- export -----------------------------------------------------------------


class Unreachable(Exception):
    """No process answered on the admin URL (or it holds no store)."""


def _api_rows(admin_url: str, site: str, start: str, end: str) -> Iterator[dict[str, Any]]:
    query = urllib.parse.urlencode({"site": site, "from": start, "to": end, "format": "rows"})
    request = urllib.request.Request(f"{admin_url.rstrip('/')}/api/v2/export?{query}")
    token = os.environ.get("FOOTFALL_ADMIN_TOKEN")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        response = urllib.request.urlopen(request, timeout=30)
    except urllib.error.HTTPError as exc:
        if exc.code in (404, 503):
            raise Unreachable(f"{admin_url}: no store there ({exc.code})") from None
        body = exc.read().decode(errors="replace")
        raise ValueError(f"{admin_url}: {exc.code} {body}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise Unreachable(f"{admin_url}: {exc}") from None
    with response:
        for line in response:
            if line.strip():
                yield orjson.loads(line)


def _direct_rows(store_cfg: config.StoreSettings, data_dir: Path, site: str, start: str, end: str
                 ) -> Iterator[dict[str, Any]]:  # fmt: skip
    from collectors.analytics.store import open_store

    lo, hi = export.window(start, end)
    store = open_store(store_cfg, data_dir)
    try:
        yield from export.read_rows(store.engine, store.events, site, lo, hi)
    finally:
        store.close()


def _write(fmt: str, rows: Iterable[dict[str, Any]], out: IO[bytes], progress: Progress) -> int:
    if fmt == "parquet":
        return export.write_parquet(rows, out, on_row=lambda: progress.update(progress.done + 1))
    line = export.jsonl_line if fmt == "jsonl" else export.csv_line
    if fmt == "csv":
        out.write(export.csv_header())
    n = 0
    for row in rows:
        out.write(line(row))
        n += 1
        progress.update(n)
    return n


def run_export(
    store_cfg: config.StoreSettings, data_dir: Path, admin_urls: list[str],
    site: str, start: str, end: str, fmt: str, output: str | None,
) -> int:  # fmt: skip
    try:
        export.window(start, end)
    except ValueError as exc:
        print(f"footfall export: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    site = site.strip().lower()
    rows: Iterator[dict[str, Any]] | None = None
    first: dict[str, Any] | None = None
    tried: list[str] = []
    if store_cfg.store_url is None:  # a server store has no single holder: read it directly
        for url in admin_urls:
            candidate = _api_rows(url, site, start, end)
            try:
                first = next(candidate, None)
            except Unreachable as exc:
                tried.append(str(exc))
                continue
            except ValueError as exc:
                print(f"footfall export: {exc}", file=sys.stderr)
                return EXIT_BAD_INPUT
            rows = candidate
            break
    if rows is None:
        from collectors.analytics.store import StoreBusy

        try:
            candidate = _direct_rows(store_cfg, data_dir, site, start, end)
            first = next(candidate, None)
        except StoreBusy as exc:
            print(f"footfall export: {exc}; and no admin API answered ({'; '.join(tried)}); "
                  "pass --admin-url of the process that runs the store", file=sys.stderr)  # fmt: skip
            return EXIT_UNAVAILABLE
        rows = candidate

    def chained() -> Iterator[dict[str, Any]]:
        if first is not None:
            yield first
            yield from rows

    progress = Progress(f"export {site}")
    out: IO[bytes] = open(output, "wb") if output else sys.stdout.buffer  # noqa: SIM115
    try:
        n = _write(fmt, chained(), out, progress)
    finally:
        progress.close()
        if output:
            out.close()
        else:
            out.flush()
    print(f"footfall export: {n} events of {site}", file=sys.stderr)
    return 0


def print_schema(store_cfg: config.StoreSettings, cluster: str | None) -> int:
    statements = schema.create_statements(
        store_cfg.database, ttl_days=store_cfg.ttl_days, cluster=cluster or store_cfg.cluster
    )
    print(";\n\n".join(statements) + ";")
    return 0
