"""Run a query body on the real engine and against the Python oracle, and compare."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from collectors.analytics.engine import Engine
from collectors.analytics.rows import to_json_row
from collectors.query.compile import Context
from collectors.query.goals import Goals
from collectors.query.model import Condition, Query
from collectors.query.parse import parse
from collectors.query.run import execute
from collectors.settings import CollectorSettings
from tests.collectors.query.oracle import NONE, Oracle


def insert(engine: Engine, db: str, events: list[dict[str, Any]]) -> None:
    for i in range(0, len(events), 1000):
        engine.insert_json(f"{db}.events", [to_json_row(e) for e in events[i : i + 1000]])


def context(settings: CollectorSettings, db: str, site: str) -> Context:
    apdex = settings.site(site).apdex_threshold_ms or settings.apdex_threshold_ms
    return Context(db, Goals(settings.goals), settings.bot_score_threshold, apdex, sessions=True)


def expected(oracle: Oracle, q: Query) -> dict[tuple[str, ...], list[Any]]:
    rows = oracle.answer(q)
    if "percentage" in q.metrics:
        total = oracle.answer(dataclasses.replace(q, dimensions=()))[0][1]["visitors"]
        for _, m in rows:
            m["percentage"] = round(100 * m["visitors"] / total, 2) if total else None
    if "conversion_rate" in q.metrics:
        keep = [i for i, d in enumerate(q.dimensions) if d != "event:goal"]
        base_q = dataclasses.replace(
            q,
            dimensions=tuple(q.dimensions[i] for i in keep),
            filters=tuple(f for f in q.filters if not (isinstance(f, Condition) and f.dimension == "event:goal")),
        )
        base = {k: m["visitors"] for k, m in oracle.answer(base_q)}
        for k, m in rows:
            den = base.get(tuple(k[i] for i in keep), 0)
            m["conversion_rate"] = round(100 * m["visitors"] / den, 2) if den else None
    return {
        tuple(NONE if v == "" else v for v in k): [m[name] for name in q.metrics]
        for k, m in rows
    }


def close(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) and math.isnan(a):
        return b is None
    return bool(abs(float(a) - float(b)) <= 0.011 + 1e-6 * abs(float(b)))


def check(engine: Engine, db: str, oracle: Oracle, body: dict[str, Any]) -> dict[str, Any]:
    """Assert the engine's answer equals the oracle's (as sets of rows); return the response."""
    settings = oracle.settings
    q = parse(body, settings)
    got = execute(engine, q, context(settings, db, q.site))
    want = expected(oracle, q)
    have = {tuple(r["dimensions"]): r["metrics"] for r in got["results"]}
    if not q.dimensions and not want:
        want = {(): have.get((), [])}
    assert set(have) == set(want), (sorted(set(have) ^ set(want))[:10], body)
    for key, values in want.items():
        assert all(close(a, b) for a, b in zip(have[key], values, strict=True)), (key, have[key], values, body)
    return got
