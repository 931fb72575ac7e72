"""The event store's engines: one small interface, ClickHouse SQL on both sides.

- :class:`ChdbEngine` — embedded, in-process ClickHouse (chDB) on a directory. One
  process may hold a path; within a process one path at a time (PERF-NOTES.md).
- A ClickHouse server or cluster through ``clickhouse-connect`` implements the same
  :class:`Engine` protocol (added with the store URL setting).

Every value reaches the engine as a ClickHouse query parameter (``{name:Type}`` in
the SQL, ``params={"name": value}``), never spliced into the SQL text.
:func:`param_text` renders a Python value in the text form ClickHouse parses for
parameters; chDB takes that form, clickhouse-connect does its own.

Calls block the calling thread (chDB releases the GIL): async callers run them in a
worker thread, never on the event loop of a process that also proxies.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import orjson


class Engine(Protocol):
    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Rows of a SELECT, values as JSON types (numbers, strings, lists, dicts, null)."""

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """Run a statement that returns no rows (DDL, INSERT … SELECT, OPTIMIZE)."""

    def insert_json(self, table: str, rows: Sequence[bytes]) -> None:
        """Insert rows given as JSON objects (one ``JSONEachRow`` line each) into ``table``."""

    def close(self) -> None: ...


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _literal(value: Any) -> str:
    """A value inside a composite parameter (array or map element): quoted as in SQL."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(_literal(v) for v in value) + "]"
    if isinstance(value, dt.datetime):
        return _quote(value.strftime("%Y-%m-%d %H:%M:%S.%f"))
    if isinstance(value, dt.date):
        return _quote(value.isoformat())
    raise TypeError(f"cannot bind a {type(value).__name__} as a query parameter")


def param_text(value: Any) -> str:
    """The text ClickHouse parses for a top-level query parameter of ``value``'s type."""
    if isinstance(value, str):
        return value  # top-level strings go unquoted; the server parses them as data, not SQL
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, dt.date):
        return value.isoformat()
    return _literal(value)


class ChdbEngine:
    """chDB on ``path``; calls are serialised by a lock (one session is not re-entrant)."""

    def __init__(self, path: Path | str, *, settings: Mapping[str, Any] | None = None) -> None:
        from chdb import session  # heavy import (~0.5 s, ~260 MiB): only when a store is opened

        Path(path).mkdir(parents=True, exist_ok=True)
        self._session = session.Session(str(path))  # type: ignore[no-untyped-call]
        self._lock = threading.Lock()
        self._settings = "".join(f", {k} = {_literal(v)}" for k, v in (settings or {}).items())

    def _run(self, sql: str, fmt: str, params: Mapping[str, Any] | None) -> bytes:
        bound = {k: param_text(v) for k, v in params.items()} if params else None
        with self._lock:
            result = self._session.query(sql, fmt, params=bound)  # type: ignore[no-untyped-call]
        return bytes(result.bytes()) if result is not None else b""

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        if self._settings:
            sql = f"{sql}\nSETTINGS {self._settings[2:]}"
        out = self._run(sql, "JSONCompactEachRow", params)
        return [tuple(orjson.loads(line)) for line in out.splitlines() if line]

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._run(sql, "CSV", params)

    def insert_json(self, table: str, rows: Sequence[bytes]) -> None:
        # Parallel parsing hands the block to a thread pool: on two busy cores a
        # 5,000-row insert took ~2x the wall time and ~1.4x the CPU with it (bench_loader.py).
        if rows:
            sql = f"INSERT INTO {table} SETTINGS input_format_parallel_parsing = 0 FORMAT JSONEachRow\n"
            self._run(sql + b"\n".join(rows).decode(), "CSV", None)

    def close(self) -> None:
        with self._lock:
            self._session.close()  # type: ignore[no-untyped-call]
