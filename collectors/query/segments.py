"""A batch's segments, each computed once: the sessions of a visit filter as a temporary table.

A dashboard asks a dozen questions with the same segment (``visit:channel`` is Organic
Search and ``visit:device`` is mobile). Each question's SQL finds the segment's sessions
by merging their first-touch states (a pass over every session of the range: ~0.4 s on
a month of 10 M events). In a batch (``POST /api/v2/batch``), :class:`SegmentSets`
names each distinct segment subquery, with the values of its parameters, after a
temporary table; the first question that needs it fills the table (``CREATE TEMPORARY
TABLE … AS``), the others read it (``sid IN table``), and the batch drops them at the end.

Temporary tables live in the engine's session: only the embedded engine (one chDB
session behind a lock) gets segment sets; a ClickHouse server over HTTP has no session
here and keeps the subqueries inline. The answers are the same either way (the table is
the subquery's rows), as of when the batch first needed the segment.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping
from typing import Any

import orjson

from collectors.analytics.engine import ChdbEngine, Engine

_PARAM = re.compile(r"\{(\w+):")
_FILTER = re.compile(r"\{(f\d+):")  # a filter value's parameter (compile._Builder.bind)
MAX_SEGMENTS = 16  # per batch; past it, a segment stays inline (a batch has a handful)


def _plain(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


class SegmentSets:
    """The segments of one batch: names, the SQL that fills each, which exist yet."""

    def __init__(self) -> None:
        self._batch = secrets.token_hex(4)
        self.wanted: dict[str, tuple[str, dict[str, Any]]] = {}  # name → (subquery, its parameters)
        self.made: set[str] = set()

    def name(self, subquery: str, params: Mapping[str, Any]) -> str:
        """The table for ``subquery`` with these parameter values (the subquery inline,
        in parentheses, past :data:`MAX_SEGMENTS`)."""
        # Filter values are numbered in the order a question binds them (f0, f1, …): the
        # same segment in two questions may carry other numbers. Renumbered in order of
        # appearance, the same segment reads the same and shares its table.
        order = list(dict.fromkeys(_FILTER.findall(subquery)))
        canonical = {old: f"s{i}" for i, old in enumerate(order)}
        text = _FILTER.sub(lambda m: "{" + canonical[m[1]] + ":", subquery)
        used = {canonical.get(k, k): params[k] for k in {*order, *_PARAM.findall(subquery)} if k in params}
        key = text.encode() + orjson.dumps({k: _plain(v) for k, v in used.items()}, option=orjson.OPT_SORT_KEYS)
        name = f"_ff_segment_{self._batch}_{hashlib.sha1(key).hexdigest()[:16]}"
        if name not in self.wanted and len(self.wanted) >= MAX_SEGMENTS:
            return f"({subquery})"
        self.wanted[name] = (text, used)
        return name

    def ensure(self, engine: Engine, sql: str) -> None:
        """Fill every table ``sql`` reads that does not exist yet."""
        for name, (subquery, params) in self.wanted.items():
            if name not in self.made and name in sql:
                # through query(): the engine's caps (memory, threads) apply to its SELECT
                engine.query(f"CREATE TEMPORARY TABLE {name} ENGINE = Memory AS {subquery}", params)
                self.made.add(name)

    def drop(self, engine: Engine) -> None:
        for name in sorted(self.made):
            engine.command(f"DROP TEMPORARY TABLE IF EXISTS {name}")
        self.made.clear()


class SegmentEngine:
    """``engine`` for one batch: a query first fills the segment tables it reads."""

    def __init__(self, engine: Engine, sets: SegmentSets) -> None:
        self._engine = engine
        self.sets = sets

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        self.sets.ensure(self._engine, sql)
        return self._engine.query(sql, params)

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self.sets.ensure(self._engine, sql)
        self._engine.command(sql, params)

    def insert_json(self, table: str, rows: Any, settings: Mapping[str, Any] | None = None) -> None:
        self._engine.insert_json(table, rows, settings)

    def close(self) -> None:
        self.sets.drop(self._engine)


def supported(engine: Engine) -> bool:
    """Temporary tables need a session: the embedded engine's."""
    return isinstance(engine, ChdbEngine)
