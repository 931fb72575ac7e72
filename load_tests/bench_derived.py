"""What the beacon's derived measures cost, beside the metrics they resemble.

Generates bench_queries.py's month of traffic (``--events``, default 2 million), adds
the beacon's reports for 40 % of the pageviews (a ``vitals`` event with ``ttfb`` and
an ``engagement`` event with ``engaged_ms``, 2 s and 30 s after the page), gives every
pageview its ``page_id`` (the script was injected) and marks 3 % ``client_disconnect``;
then runs, interleaved round by round, pairs of queries through the real compiler:
``ttfb_p75`` vs the TTFB split (a join of each pageview to its page's report),
``bounce_rate`` vs ``engagement_rate`` (the session subquery with engaged time and
goals), ``error_rate`` vs ``abandonment_rate`` by ``event:upstream_bucket``. Medians of
``--runs`` rounds after one warm-up; numbers from a shared 2-core machine are noisy:
compare within one run.

    .venv/bin/python load_tests/bench_derived.py [--events 2000000] [--runs 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collectors.analytics.engine import ChdbEngine
from collectors.query.compile import Context
from collectors.query.goals import Goals
from collectors.query.parse import parse
from collectors.query.run import execute
from collectors.settings import CollectorSettings
from collectors.settings import parse as parse_settings
from load_tests.bench_queries import DAYS, DB, SITE, generate

BEACON = f"""
INSERT INTO {DB}.events (id, ts, site, kind, via, method, path, visitor, session, page_id, ttfb, lcp,
    engaged_ms, scroll_depth, channel, browser, os, device, country, consent)
SELECT concat(id, if(v, 'v', 'e')), ts + toIntervalMillisecond(if(v, 2000, 30000)), site,
    if(v, 'vitals', 'engagement'), 'beacon', 'POST', path, visitor, session, id,
    if(v, toFloat32(upstream_ms + 40 + cityHash64(id) % 300), NULL),
    if(v, toFloat32(900 + cityHash64(id) % 2000), NULL),
    if(v, NULL, toUInt32(cityHash64(id, 1) % 30000)), if(v, NULL, toUInt8(cityHash64(id, 2) % 101)),
    channel, browser, os, device, country, consent
FROM {DB}.events ARRAY JOIN [1, 0] AS v
WHERE kind = 'pageview' AND cityHash64(id) % 5 < 2
"""
# the script was injected into every pageview (its page_id is its id); 3 % were left early
PAGEVIEWS = (
    f"ALTER TABLE {DB}.events UPDATE page_id = id, error = if(cityHash64(id, 3) % 100 < 3, 'client_disconnect', "
    "error) WHERE kind = 'pageview' SETTINGS mutations_sync = 2"
)
PAIRS = {
    "ttfb": (["ttfb_p75"], ["ttfb_network_p75", "ttfb_proxy_p75", "ttfb_origin_p75"], ["event:page"]),
    "engagement": (["visits", "bounce_rate"], ["visits", "engagement_rate"], ["visit:source"]),
    "abandonment": (["requests", "error_rate"], ["pageviews", "abandonment_rate"], ["event:upstream_bucket"]),
}


def _child(path: str, events: int, start: int) -> None:
    generate(path, events, start)
    engine = ChdbEngine(path)
    engine.command(BEACON)
    engine.command(PAGEVIEWS)
    engine.command(f"OPTIMIZE TABLE {DB}.events FINAL")
    engine.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--data-dir", default=str(Path(tempfile.gettempdir()) / "footfall-bench-derived"))
    ap.add_argument("--reuse", action="store_true")
    args = ap.parse_args()
    today = dt.datetime.now(dt.UTC).date()
    first, last = today - dt.timedelta(days=DAYS), today - dt.timedelta(days=1)
    if not args.reuse:
        import shutil

        shutil.rmtree(args.data_dir, ignore_errors=True)
        start = int(dt.datetime.combine(first, dt.time(0), tzinfo=dt.UTC).timestamp())
        child = multiprocessing.get_context("spawn").Process(target=_child, args=(args.data_dir, args.events, start))
        child.start()
        child.join()
        if child.exitcode != 0:
            sys.exit(f"generating failed ({child.exitcode})")
    engine = ChdbEngine(args.data_dir, settings={"max_threads": 2, "max_memory_usage": 1024 * 2**20})
    counts = engine.query(f"SELECT count(), countIf(kind = 'pageview'), countIf(via = 'beacon') FROM {DB}.events")[0]
    print(f"{counts[0]:,} events, {counts[1]:,} pageviews, {counts[2]:,} beacon events; load {os.getloadavg()}")
    errors: list[str] = []
    settings = parse_settings({"goals": [{"name": "deep", "path": "/p/1*"}]}, errors)
    assert not errors, errors
    ctx = Context(DB, Goals(settings.goals), settings.bot_score_threshold, settings.apdex_threshold_ms, True)
    rng = [first.isoformat(), last.isoformat()]
    plain = CollectorSettings()
    times: dict[str, list[float]] = {}
    for round_ in range(args.runs + 1):
        for name, (old, new, dims) in PAIRS.items():
            for label, metrics, d in ((f"{name}: {old}", old, []), (f"{name}: {new}", new, []),
                                      (f"{name}: {old} by {dims[0]}", old, dims),
                                      (f"{name}: {new} by {dims[0]}", new, dims)):  # fmt: skip
                q = parse({"site_id": SITE, "date_range": rng, "metrics": metrics, "dimensions": d,
                           "pagination": {"limit": 10}}, plain)  # fmt: skip
                t0 = time.perf_counter()
                answer: Any = execute(engine, q, ctx)
                if round_:  # the first round warms up
                    times.setdefault(label, []).append((time.perf_counter() - t0) * 1000)
                elif not d:
                    print(f"  {label}: {answer['results'][0]['metrics']}")
    print(f"{'query':<90}{'median ms':>10}")
    for label, values in times.items():
        print(f"{label:<90}{statistics.median(values):>10.0f}")
    print(f"load average after: {os.getloadavg()}")
    engine.close()


if __name__ == "__main__":
    main()
