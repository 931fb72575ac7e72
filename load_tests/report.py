"""The benchmark's report: medians, ratios, the issue's targets, the table, the JSON.

- :func:`summarize`: medians per workload and target, ratios as medians of
  per-round ratios, and each of the issue's targets with the rounds that met it
  (a target passes when met in ceil(2/3) of the rounds);
- :func:`render`: the stdout report (one table per workload, targets, RSS);
- :func:`brief`: the one-line progress note per cell (stderr);
- :func:`write_json`: the whole run as ``bench-<time>.json`` (NaN written as null).
"""

from __future__ import annotations

import json
import math
import statistics
import time
from pathlib import Path
from typing import Any


def brief(cell: dict[str, Any]) -> str:
    """One cell's result in a line, or its error."""
    if "error" in cell:
        return "error: " + cell["error"][:120]
    lat = cell["latency_us"]
    s = f"{cell['rps']:8.0f} req/s  p50 {lat['p50']:7.0f} µs  p99 {lat['p99']:7.0f} µs"
    if cell.get("errors"):
        s += f"  errors {cell['errors']}"
    if "events" in cell:
        s += f"  events {cell['events']['unique']}"
    return s


def _cell_metrics(cell: dict[str, Any]) -> dict[str, float]:
    m = {"rps": cell["rps"], "p50": cell["latency_us"]["p50"], "p99": cell["latency_us"]["p99"]}
    if "cpu_us_per_req" in cell:
        m["cpu_us"] = cell["cpu_us_per_req"]
    if "events" in cell:
        ev = cell["events"]
        m.update(events_per_s=ev["per_s"], delay_p99=ev["delay_ms_p99"], lost=ev["lost"])
    return m


def _med(values: list[float]) -> float:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(values) if values else math.nan


def _pair(rounds: list[Any], w: str, a: str, b: str, metric: str, op: str) -> list[float]:
    """Per-round ``a op b`` of ``metric`` in workload ``w`` (``/`` or ``-``)."""
    out = []
    for r in rounds:
        ca, cb = r.get(w, {}).get(a), r.get(w, {}).get(b)
        if not ca or not cb or "error" in ca or "error" in cb:
            continue
        va, vb = _cell_metrics(ca)[metric], _cell_metrics(cb)[metric]
        out.append(va / vb if op == "/" and vb else va - vb)
    return out


def _single(rounds: list[Any], w: str, t: str, metric: str) -> list[float]:
    cells = [r.get(w, {}).get(t) for r in rounds]
    return [_cell_metrics(c).get(metric, math.nan) for c in cells if c and "error" not in c]


def summarize(doc: dict[str, Any]) -> dict[str, Any]:
    """Medians per workload and target, ratios (medians of per-round ratios), and the
    issue's targets with the number of rounds that met each."""
    rounds, c = doc["rounds"], doc["options"]["connections"]
    names = list(dict.fromkeys(w for r in rounds for w in r))
    medians: dict[str, Any] = {}
    for w in names:
        medians[w] = {}
        for t in dict.fromkeys(t for r in rounds for t in r.get(w, {})):
            cells = [_cell_metrics(x) for r in rounds if (x := r.get(w, {}).get(t)) and "error" not in x]
            if not cells:
                medians[w][t] = {"error": next(r[w][t]["error"] for r in rounds if t in r.get(w, {}))}
                continue
            med = {k: _med([m.get(k, math.nan) for m in cells]) for k in cells[0]}
            med["x_ref"] = _med(_pair(rounds, w, t, "reference", "rps", "/"))
            med["p99_minus_ref"] = _med(_pair(rounds, w, t, "reference", "p99", "-"))
            med["x_direct"] = _med(_pair(rounds, w, t, "direct", "rps", "/"))
            medians[w][t] = med
    n = len(rounds)
    need = math.ceil(2 * n / 3)
    s2, s15 = f"c{c}-200B", f"c{c}-15KB"
    checks = [
        ("tracking on / reference, req/s, 200 B", _pair(rounds, s2, "ff_on", "reference", "rps", "/"), ">=", 0.90),
        ("tracking on / reference, req/s, 15 KB", _pair(rounds, s15, "ff_on", "reference", "rps", "/"), ">=", 0.90),
        ("tracking off / reference, req/s, 200 B", _pair(rounds, s2, "ff_off", "reference", "rps", "/"), ">=", 0.97),
        ("tracking off / reference, req/s, 15 KB", _pair(rounds, s15, "ff_off", "reference", "rps", "/"), ">=", 0.97),
        ("1 conn: p50 on - reference (µs)", _pair(rounds, "c1-200B", "ff_on", "reference", "p50", "-"), "<=", 50),
        ("1 conn: p50 on - direct (µs)", _pair(rounds, "c1-200B", "ff_on", "direct", "p50", "-"), "<=", 350),
        (f"{c} conns: p99 on / reference, 200 B", _pair(rounds, s2, "ff_on", "reference", "p99", "/"), "<=", 1.25),
        (f"{c} conns: p99 on / reference, 15 KB", _pair(rounds, s15, "ff_on", "reference", "p99", "/"), "<=", 1.25),
        ("event delay p99 at 50 % load (ms)", _single(rounds, "open50-200B", "ff_on", "delay_p99"), "<=", 250),
        ("events lost at 75 % load", _single(rounds, "open75-200B", "ff_on", "lost"), "<=", 0),
        ("2 workers / 1 worker, req/s, 200 B", _pair(rounds, s2, "ff_on_2w", "ff_on", "rps", "/"), "", None),
        ("tracking on / mitmproxy, req/s, 200 B", _pair(rounds, s2, "ff_on", "mitmproxy", "rps", "/"), ">=", 5),
    ]
    targets = []
    for label, values, op, limit in checks:
        values = [v for v in values if not math.isnan(v)]
        met = None
        if limit is not None and values:
            met = sum(1 for v in values if (v >= limit if op == ">=" else v <= limit))
        verdict = "n/a" if not values else "report" if met is None else ("PASS" if met >= need else "FAIL")
        targets.append(
            {
                "target": label,
                "limit": f"{op} {limit}" if limit is not None else "",
                "values": values,
                "met": met,
                "rounds": len(values),
                "verdict": verdict,
            }
        )
    sus = doc["extras"].get("sustained")
    if sus:
        growth = sus["growth_bytes"]
        ok = growth <= max(2 * 2**20, 0.05 * sus["rss_before"])
        targets.append(
            {
                "target": f"RSS growth over {sus['seconds']:.0f} s ({sus['target']})",
                "limit": "<= max(2 MiB, 5 %)",
                "values": [growth / 2**20],
                "met": int(ok),
                "rounds": 1,
                "verdict": "PASS" if ok else "FAIL",
            }
        )
    return {"medians": medians, "targets": targets, "rounds_needed": need}


def _fmt(v: Any, spec: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return format(v, spec)


COLUMNS = (
    ("req/s", "rps", ".0f"),
    ("p50 µs", "p50", ".0f"),
    ("p99 µs", "p99", ".0f"),
    ("cpu µs/req", "cpu_us", ".0f"),
    ("x ref", "x_ref", ".2f"),
    ("p99-ref µs", "p99_minus_ref", "+.0f"),
    ("x direct", "x_direct", ".2f"),
    ("events/s", "events_per_s", ".0f"),
    ("delay p99 ms", "delay_p99", ".1f"),
    ("lost", "lost", ".0f"),
)


def render(doc: dict[str, Any]) -> str:
    """The stdout report: one table per workload, then the targets and the extras."""
    summary, opts = doc["summary"], doc["options"]
    out = [
        f"Footfall hot-path benchmark: {len(doc['rounds'])} round(s) x {opts['duration']:.0f} s "
        f"per cell, medians; {doc['pinning']}",
        f"closed loop: {doc['generator']['closed']}, open loop: builtin (latency from the "
        f"scheduled send time); upstream: {doc['upstream']}",
    ]
    if doc["stand_in"]:
        out.append("NOTE: --stand-in: the ff_* rows are the reference proxy, not Footfall")
    for name, reason in doc["unavailable"].items():
        out.append(f"unavailable: {name}: {reason[:160]}")
    for w, rows in summary["medians"].items():
        out.append(f"\n{w}")
        out.append(f"  {'target':<11}" + "".join(f"{h:>13}" for h, _, _ in COLUMNS))
        for t, m in rows.items():
            if "error" in m:
                out.append(f"  {t:<11}  error: {m['error'][:100]}")
                continue
            out.append(f"  {t:<11}" + "".join(f"{_fmt(m.get(k), f):>13}" for _, k, f in COLUMNS))
    out.append(f"\nTargets (met in ≥ {summary['rounds_needed']} of the rounds)")
    for t in summary["targets"]:
        vals = ", ".join(_fmt(v, ".2f") for v in t["values"]) or "-"
        met = f"{t['met']}/{t['rounds']}" if t["met"] is not None else ""
        out.append(f"  {t['verdict']:<6} {t['target']:<42} {t['limit']:<20} {met:<5} [{vals}]")
    sus = doc["extras"].get("sustained")
    if sus:
        out.append(
            f"\nRSS {sus['target']}: at launch {sus['rss_at_launch'] / 2**20:.1f} MiB, "
            f"before sustained {sus['rss_before'] / 2**20:.1f} MiB, after "
            f"{sus['seconds']:.0f} s at {_fmt(sus['rps'], '.0f')} req/s "
            f"{sus['rss_after'] / 2**20:.1f} MiB"
        )
    for t, m in doc["extras"].get("idle", {}).items():
        per = m["per_conn_bytes"]
        out.append(
            f"idle keep-alive {t}: {m['connections']} connections, RSS "
            f"{m['rss_before'] / 2**20:.1f} -> {m['rss_held'] / 2**20:.1f} MiB "
            f"({_fmt(per / 1024 if per else None, '.1f')} KiB per connection)"
        )
    return "\n".join(out)


def write_json(doc: dict[str, Any], out: Path, started: float) -> Path:
    """Write ``doc`` to ``out/bench-<started>.json`` (``out`` created); its path."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / time.strftime("bench-%Y%m%d-%H%M%S.json", time.localtime(started))
    path.write_text(json.dumps(_clean(doc), indent=1, default=str))
    return path


def _clean(value: Any) -> Any:
    """``value`` with NaN replaced by None (JSON has no NaN)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value
