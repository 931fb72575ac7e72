"""What one event costs the analytics loader, stage by stage: the loader's CPU floor.

``bench_loader.py`` measures the whole loader (Redis, Python, the store, dashboard
queries at once). This one takes the path apart, in process, on the same events
(``bench_loader.make_events``), each stage on a fresh embedded store and in batches
of ``--batch`` (the loader's ``analytics.batch_size``), stages interleaved round by
round:

- ``python``: the loop's share per event: ``orjson`` decode and the loader's
  ``prepare`` (id dedupe within the batch, retention check), as the runtime runs them;
- ``parse``: the engine reading the events' JSON lines into a ``Null`` table with the
  loader's input columns (``schema.INPUT_COLUMNS``): JSON parsing alone;
- ``flatten``: the loader's ``events_in`` → ``events`` view, without the ``sessions``
  view (flattening, sorting, compressing, writing the part);
- ``full``: what the loader inserts today (``events`` and the ``sessions`` view);
- ``check``: the loader's id look-up (``loader.existing_ids``) per batch, on the
  ``full`` store as it fills.

CPU is this process's user + system time (the engine's threads included; background
merges that start within the stage included, later ones not). The last line is the
ceiling those costs put on a loader with every core of the machine to itself:
``cores / (python + full + check)`` events per second, before Redis and queries.

    .venv/bin/python load_tests/bench_ingest.py [--events 100000] [--batch 5000] [--rounds 3]

Prints a table and writes ``load_tests/results/bench_ingest-<time>.json``.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from collectors.analytics import loader, schema  # noqa: E402
from collectors.analytics.engine import ChdbEngine  # noqa: E402
from collectors.events import decode  # noqa: E402
from load_tests.bench_loader import make_events  # noqa: E402

DB = "ingest"
STAGES = ("python", "parse", "flatten", "full", "check")


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _batches(events: list[bytes], size: int) -> list[list[bytes]]:
    return [events[i : i + size] for i in range(0, len(events), size)]


def _prepared(batch: list[bytes]) -> loader.Staged:
    decoded = [(str(i), e) for i, e in enumerate(map(decode, batch)) if isinstance(e, dict)]
    return loader.prepare(decoded, time.time(), schema.DEFAULT_TTL_DAYS, batch)[0]


class _Store:
    """What ``loader.existing_ids`` needs of a store: its writer and table."""

    def __init__(self, engine: ChdbEngine) -> None:
        self.writer = engine
        self.events = f"{DB}.events"


def _engine(stage: str) -> ChdbEngine:
    engine = ChdbEngine(tempfile.mkdtemp(prefix="footfall-ingest-"), settings={"max_threads": 2})
    for statement in schema.create_statements(DB):
        engine.command(statement)
    if stage == "parse":
        columns = ", ".join(f"{name} {kind}" for name, kind in schema.INPUT_COLUMNS)
        engine.command(f"CREATE TABLE {DB}.parsed ({columns}) ENGINE = Null")
    if stage == "flatten":
        engine.command(f"DROP VIEW {DB}.sessions_mv")
    return engine


def run_stage(stage: str, batches: list[list[bytes]]) -> dict[str, float]:
    """CPU µs per event of ``stage`` over ``batches`` (and the wall time)."""
    n = sum(len(b) for b in batches)
    if stage == "python":
        c0, t0 = _cpu(), time.perf_counter()
        for batch in batches:
            _prepared(batch)
        return {"cpu_us": (_cpu() - c0) / n * 1e6, "wall_us": (time.perf_counter() - t0) / n * 1e6}
    engine = _engine(stage)
    table = f"{DB}.parsed" if stage == "parse" else f"{DB}.events_in"
    store = _Store(engine)
    staged = [_prepared(b) for b in batches] if stage == "check" else []
    spent = 0.0
    c0, t0 = _cpu(), time.perf_counter()
    for i, batch in enumerate(batches):
        if stage == "check":  # time only the look-up; the insert that fills the store is not counted
            c1 = _cpu()
            loader.existing_ids(store, staged[i])  # type: ignore[arg-type]
            spent += _cpu() - c1
        engine.insert_json(table, batch, settings=schema.INPUT_SETTINGS)
    wall = time.perf_counter() - t0
    cpu = spent if stage == "check" else _cpu() - c0
    engine.close()
    return {"cpu_us": cpu / n * 1e6, "wall_us": wall / n * 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "load_tests" / "results")
    args = ap.parse_args()
    batches = _batches(make_events(args.events), args.batch)
    run_stage("full", batches[:2])  # warm-up: the engine's first insert loads its code
    results: dict[str, list[dict[str, float]]] = {s: [] for s in STAGES}
    for r in range(args.rounds):
        for stage in STAGES if r % 2 == 0 else reversed(STAGES):
            results[stage].append(run_stage(stage, batches))
        print(f"round {r + 1}: " + ", ".join(f"{s} {results[s][-1]['cpu_us']:.1f}" for s in STAGES), flush=True)

    def med(stage: str) -> float:
        return statistics.median(x["cpu_us"] for x in results[stage])

    cores = os.cpu_count() or 1
    per_event = med("python") + med("full") + med("check")
    print(f"\n{args.events:,} events in batches of {args.batch:,}, {args.rounds} rounds (median CPU µs per event)")
    rows: list[tuple[str, Callable[[], float]]] = [
        ("python: decode + prepare (the loop's share)", lambda: med("python")),
        ("parse: the engine reads the JSON lines (Null table)", lambda: med("parse")),
        ("flatten: + events table (no sessions view)", lambda: med("flatten")),
        ("full: + sessions view (the loader's insert)", lambda: med("full")),
        ("check: the id look-up per batch", lambda: med("check")),
    ]
    for label, value in rows:
        print(f"  {label:<55}{value():>8.1f}")
    ceiling = cores / per_event * 1e6
    print(f"  {'ceiling: cores / (python + full + check), events/s':<55}{ceiling:>8,.0f}   ({cores} cores)")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / time.strftime("bench_ingest-%Y%m%d-%H%M%S.json")
    doc: dict[str, Any] = {
        "events": args.events, "batch": args.batch, "rounds": results, "cores": cores,
        "median_cpu_us": {s: med(s) for s in STAGES}, "ceiling_events_per_s": ceiling,
        "load_average": os.getloadavg(),
    }  # fmt: skip
    path.write_text(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
    print(f"results: {path}")


if __name__ == "__main__":
    main()
