"""Interleaved A/B of two checkouts' compiled SQL on one store (bench_queries.py's data).

Each checkout compiles the query benchmark's questions (and the dashboard's KPI, chart,
entry-page and per-campaign questions with the segment) in a child process; this process
then runs the two statements of each question alternately on the same store, ``--runs`` times
after a warm-up each, and prints medians of wall and CPU time and whether the answers
are identical. Only the SQL differs: what ``run.py`` does around it (e.g. splitting a
mixed question in two) is not measured here.

    .venv/bin/python load_tests/bench_queries.py --events 10000000 --data-dir /tmp/ff-10m   # once
    git worktree add /tmp/ff-old <commit>
    .venv/bin/python load_tests/ab_queries.py --old-checkout /tmp/ff-old --data-dir /tmp/ff-10m [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

COMPILE = """
import datetime as dt, pickle, sys
sys.path.insert(0, sys.argv[1])
from load_tests.bench_queries import DAYS, DB, SEGMENT, SITE, queries
from collectors.query.compile import Context, compile_query
from collectors.query.goals import Goals
from collectors.query.parse import parse
from collectors.settings import CollectorSettings
today = dt.datetime.now(dt.UTC).date()
first, last = today - dt.timedelta(days=DAYS), today - dt.timedelta(days=1)
settings = CollectorSettings()
ctx = Context(DB, Goals(()), settings.bot_score_threshold, settings.apdex_threshold_ms, True)
kpis = ["visitors", "visits", "pageviews", "views_per_visit", "bounce_rate", "visit_duration", "requests",
        "error_rate", "latency_p75", "apdex"]
rng = [first.isoformat(), last.isoformat()]
bodies = queries(first, last)
bodies["dashboard_kpis+segment"] = {"metrics": kpis, "date_range": rng, "filters": SEGMENT}
bodies["dashboard_chart+segment"] = {"metrics": kpis, "date_range": rng, "filters": SEGMENT, "dimensions": ["time:day"]}
bodies["entry_pages_bounce+segment"] = {"metrics": ["visitors", "bounce_rate"], "date_range": rng,
    "dimensions": ["visit:entry_page"], "filters": [*SEGMENT, ["is", "event:kind", ["pageview"]]],
    "pagination": {"limit": 10}}
bodies["perf_campaigns+segment"] = {"metrics": ["requests", "latency_p50", "latency_p75", "latency_p95", "error_rate"],
    "date_range": rng, "dimensions": ["visit:utm_campaign"], "filters": SEGMENT, "pagination": {"limit": 10}}
out = {}
for name, body in bodies.items():
    compiled = compile_query(parse({"site_id": SITE, **body}, settings), ctx)
    out[name] = (compiled.sql, compiled.params)
pickle.dump(out, open(sys.argv[2], "wb"))
"""


def compiled(checkout: Path, tmp: Path) -> dict[str, tuple[str, dict[str, Any]]]:
    out = tmp / f"{abs(hash(str(checkout)))}.pkl"
    subprocess.run([sys.executable, "-c", COMPILE, str(checkout), str(out)], check=True, cwd=checkout)
    with out.open("rb") as f:
        return pickle.load(f)  # type: ignore[no-any-return]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--old-checkout", required=True, type=Path)
    ap.add_argument("--data-dir", default=str(Path(tempfile.gettempdir()) / "footfall-bench-queries"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", default="", help="comma-separated question names")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from collectors.analytics.engine import ChdbEngine

    with tempfile.TemporaryDirectory() as tmp:
        old, new = compiled(args.old_checkout.resolve(), Path(tmp)), compiled(ROOT, Path(tmp))
    cap = 1 << 30
    engine = ChdbEngine(args.data_dir, settings={"max_memory_usage": cap, "max_threads": 2,
                                                 "max_bytes_before_external_group_by": cap // 2,
                                                 "max_bytes_before_external_sort": cap // 2})  # fmt: skip
    wanted = {n for n in args.only.split(",") if n}
    report: dict[str, Any] = {}
    print(f"{'question':<28}{'old ms':>8}{'new ms':>8}{'new/old':>8}{'old cpu':>9}{'new cpu':>9}  answers")
    for name in new:
        if name not in old or (wanted and name not in wanted):
            continue
        times: dict[str, tuple[list[float], list[float]]] = {"old": ([], []), "new": ([], [])}
        answers: dict[str, Any] = {}
        for side, sqls in (("old", old), ("new", new)):
            answers[side] = engine.query(*sqls[name])  # warm-up
        for _ in range(args.runs):
            for side, sqls in (("old", old), ("new", new)):
                c0, t0 = time.process_time(), time.perf_counter()
                engine.query(*sqls[name])
                times[side][0].append((time.perf_counter() - t0) * 1000)
                times[side][1].append((time.process_time() - c0) * 1000)
        o, n = (statistics.median(times[s][0]) for s in ("old", "new"))
        oc, nc = (statistics.median(times[s][1]) for s in ("old", "new"))
        same = answers["old"] == answers["new"]
        report[name] = {"old_ms": o, "new_ms": n, "old_cpu_ms": oc, "new_cpu_ms": nc, "same_answers": same}
        print(f"{name:<28}{o:>8.0f}{n:>8.0f}{n / o:>8.2f}{oc:>9.0f}{nc:>9.0f}  {'same' if same else 'DIFFERENT'}",
              flush=True)  # fmt: skip
    engine.close()
    out = ROOT / "load_tests" / "results" / f"ab_queries-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"old_checkout": str(args.old_checkout), "runs": args.runs, "questions": report},
                              indent=2) + "\n")  # fmt: skip
    print(f"saved {out}")


if __name__ == "__main__":
    main()
