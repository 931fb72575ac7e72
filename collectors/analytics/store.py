"""The process's event store: one engine, opened once, called off the event loop.

:func:`open_store` picks the engine from :class:`StoreSettings` — embedded chDB
under ``DATA_DIR/analytics`` (no ``store_url``) or a ClickHouse server through
clickhouse-connect — and creates or completes the tables (``schema.create_all``).

:class:`Store` is the async facade the loader, the query API and export share:
every engine call runs in the store's own worker threads, never on the event
loop (a chDB call blocks its thread for the whole query; it releases the GIL, so
the loop keeps serving).

The loader writes through its own engine (:attr:`Store.writer`) on its own
thread: one chDB session serialises its calls, and a long dashboard query on a
shared session would hold up inserts (PERF-NOTES.md). chDB admits several
sessions on the same path in one process and runs them concurrently (measured:
a 12 ms count answered during a 30 s scan on the other session). A ClickHouse
server client has no session and is shared.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from collectors.analytics import schema
from collectors.analytics.config import StoreSettings
from collectors.analytics.engine import ChdbEngine, Engine

log = logging.getLogger(__name__)
T = TypeVar("T")
STORE_DIR = "analytics"


class StoreBusy(RuntimeError):
    """The embedded store's directory is held by another process (one at a time)."""


def store_path(data_dir: Path | str) -> Path:
    return Path(data_dir) / STORE_DIR


def held_by_another_process(path: Path) -> bool:
    """True while a process holds the embedded store at ``path``: the engine keeps an
    exclusive flock on its ``status`` file (chDB's own error does not say why)."""
    status = path / "status"
    try:
        fd = os.open(status, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def open_engines(settings: StoreSettings, data_dir: Path | str) -> tuple[Engine, Engine]:
    """The configured engine for queries and the one for the loader, connected;
    blocking (chDB's import alone takes ~0.5 s)."""
    caps = settings.engine_settings()
    server = settings.server
    if server is not None:
        from collectors.analytics.clickhouse import ClickHouseEngine

        engine: Engine = ClickHouseEngine(server, settings=caps)
        return engine, engine
    path = store_path(data_dir)
    if held_by_another_process(path):
        raise StoreBusy(f"{path}: the embedded store is held by another process")
    try:
        reader = ChdbEngine(path, settings=caps)
    except Exception as exc:
        if held_by_another_process(path):
            raise StoreBusy(f"{path}: the embedded store is held by another process") from exc
        raise
    return reader, ChdbEngine(path, settings=caps)


class Store:
    """The engine of this process plus the database name; see the module docstring."""

    def __init__(self, engine: Engine, settings: StoreSettings, *, writer: Engine | None = None,
                 db: str | None = None) -> None:  # fmt: skip
        """``db``: another database than the settings' (tests share one chDB path)."""
        self.engine = engine
        self.writer = writer or engine
        self.settings = settings
        self.db = db or settings.database
        self.events = f"{self.db}.events"
        self.inputs = f"{self.db}.events_in"  # the loader's landing table (schema.input_ddl)
        self.has_sessions = not settings.cluster  # create_all makes the sessions table on one store
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="store-query")
        self._writer_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-load")
        self._closed = False
        self.owns_engines = True

    def create(self) -> None:
        """Create or complete the tables; blocking, idempotent."""
        schema.create_all(self.engine, self.db, ttl_days=self.settings.ttl_days, cluster=self.settings.cluster)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a query thread (``fn`` may call :attr:`engine`)."""
        if self._closed:
            raise RuntimeError("the store is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def run_writer(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the loader's thread (``fn`` may call :attr:`writer`)."""
        return await self.submit_writer(fn, *args)

    def submit_writer(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Start ``fn(*args)`` in the loader's thread now; await the future for its result."""
        if self._closed:
            raise RuntimeError("the store is closed")
        return asyncio.get_running_loop().run_in_executor(self._writer_executor, fn, *args)

    async def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return await self.run(self.engine.query, sql, params)

    async def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        await self.run(self.engine.command, sql, params)

    async def insert_json(self, table: str, rows: Sequence[bytes]) -> None:
        await self.run(self.engine.insert_json, table, rows)

    def close(self) -> None:
        """Wait for calls in flight, then close the engine (frees the embedded path)."""
        if self._closed:
            return
        self._closed = True
        self._executor.shutdown(wait=True)
        self._writer_executor.shutdown(wait=True)
        if self.owns_engines:
            if self.writer is not self.engine:
                self.writer.close()
            self.engine.close()

    async def aclose(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.close)


def open_store(settings: StoreSettings, data_dir: Path | str) -> Store:
    """Open the engine and create the tables; blocking: call it in a thread from async code."""
    reader, writer = open_engines(settings, data_dir)
    store = Store(reader, settings, writer=writer)
    try:
        store.create()
    except BaseException:
        store.close()
        raise
    server = settings.server  # logged without its credentials
    where = f"clickhouse {server.host}:{server.port}" if server else str(store_path(data_dir))
    log.info("event store %s (database %s) open", where, store.db)
    return store


async def open_store_async(settings: StoreSettings, data_dir: Path | str) -> Store:
    return await asyncio.get_running_loop().run_in_executor(None, open_store, settings, data_dir)
