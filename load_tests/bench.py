"""The hot-path benchmark: what Footfall costs, side by side with what it is compared to.

One run starts everything it needs on loopback (an upstream, a dedicated Redis,
the proxies) and measures, interleaved round by round (A B C A B C ...):

- targets: ``direct`` (client to upstream), ``reference`` (load_tests/reference_proxy.py),
  ``ff_off`` (Footfall, FOOTFALL_TRACKING=off), ``ff_on`` (tracking on, real Redis),
  ``ff_on_2w`` (tracking on, 2 workers), and ``mitmproxy`` when ``mitmdump`` is installed;
- workloads: closed loop at 50 connections for each payload (``c50-200B`` ...),
  closed loop at one connection (``c1-200B``), and open loop at 25/50/75 % of the
  reference's maximum (``open25-200B`` ...), latency from the scheduled send time;
- extras: events/s, event delay and lost events (counted in the stream), proxy
  RSS over a sustained run (``sustained``), RSS with 5,000 idle keep-alive
  connections (``idle``).

Medians over rounds go to a table on stdout; everything, with a description of
the machine, to ``load_tests/results/bench-<time>.json``.

This module holds the command line, the workloads and the round-robin runner;
``services.py`` starts and stops the processes, ``machine.py`` pins CPUs and
describes the machine, ``report.py`` summarizes, prints and writes the results.

    .venv/bin/python load_tests/bench.py [--quick] [--rounds N] [--duration S] [--only CELLS]
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `load_tests` and `proxy` importable
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import fnmatch  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

from load_tests import loadgen  # noqa: E402
from load_tests.machine import Pinning, describe_machine, ensure_tools  # noqa: E402
from load_tests.report import brief, render, summarize, write_json  # noqa: E402
from load_tests.services import Services  # noqa: E402
from load_tests.upstream import PAYLOADS  # noqa: E402

STREAM = "footfall:events"
TARGETS = ("direct", "reference", "ff_off", "ff_on", "ff_on_2w", "mitmproxy")
TRACKING = ("ff_on", "ff_on_2w")
OPEN_FRACTIONS = (25, 50, 75)


@dataclass(frozen=True)
class Workload:
    """One load shape, run against every selected target in turn."""

    name: str
    payload: str
    connections: int
    open_pct: int | None = None  # open loop at this % of the reference's max, else closed
    targets: tuple[str, ...] = TARGETS


def workloads(connections: int) -> list[Workload]:
    slow = tuple(t for t in TARGETS if t != "mitmproxy")
    out = [
        Workload(f"c{connections}-{p}", p, connections, targets=TARGETS if p in ("200B", "15KB") else slow)
        for p in PAYLOADS
    ]
    out.append(Workload("c1-200B", "200B", 1, targets=slow))
    out += [Workload(f"open{pct}-200B", "200B", connections, pct, slow) for pct in OPEN_FRACTIONS]
    return out


def phases(connections: int) -> list[str]:
    """Everything ``--only`` can select besides targets: workloads and the extras."""
    return [w.name for w in workloads(connections)] + ["sustained", "idle"]


@dataclass
class Bench:
    """A run's state: options, the services it started, and every cell's result."""

    args: argparse.Namespace
    services: Services
    use_wrk: bool
    rounds: list[dict[str, dict[str, dict[str, Any]]]] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)
    cookie: str = field(default_factory=loadgen.returning_visitor_cookie)

    # --- one cell -------------------------------------------------------------------

    def load(self, port: int, w: Workload, duration: float, rate: float | None) -> dict[str, Any]:
        """Run the load generator pinned to the auxiliary cores; its result dict."""
        pin = self.services.pin
        prefix = pin.prefix(pin.aux)
        # Minted per cell: a browser keeps the session cookie Footfall last refreshed
        # (at most a minute old), which wrk cannot do; a cookie minted once per run
        # would make every pageview after the first minute pay a refresh.
        self.cookie = loadgen.returning_visitor_cookie()
        if rate is None and self.use_wrk:
            hostport = f"127.0.0.1:{port}"
            path = self.services.tmp / f"wrk-{w.payload}-{port}.lua"
            path.write_text(loadgen.wrk_script(PAYLOADS[w.payload], hostport, self.cookie))
            result = loadgen.run_wrk(str(path), f"http://{hostport}", w.connections, duration, prefix)
            result["generator"] = "wrk"
            return result
        cmd = [
            *prefix,
            sys.executable,
            "-m",
            "load_tests.loadgen",
            "--url",
            f"http://127.0.0.1:{port}",
            "--payload",
            w.payload,
            "--connections",
            str(w.connections),
            "--duration",
            str(duration),
            "--cookie",
            self.cookie,
        ]
        if rate is not None:
            cmd += ["--rate", f"{rate:.1f}"]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=duration + 60, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"loadgen failed: {proc.stderr[-500:]}")
        out: dict[str, Any] = json.loads(proc.stdout)
        return out

    def run_cell(self, target: str, w: Workload, rate: float | None) -> dict[str, Any]:
        svc = self.services.targets.get(target)
        tracking = target in TRACKING and not self.args.stand_in
        if tracking:
            self._redis().delete(STREAM)
        cpu0 = svc.cpu_seconds() if svc else 0.0
        result = self.load(self.services.target_port(target), w, self.args.duration, rate)
        if svc is not None and result["requests"]:
            result["cpu_us_per_req"] = (svc.cpu_seconds() - cpu0) / result["requests"] * 1e6
        if tracking:
            result["events"] = count_events(self._redis(), result["elapsed_s"])
            result["events"]["lost"] = max(0, result["requests"] - result["events"]["unique"])
        return result

    def _redis(self) -> Any:
        import redis

        assert self.services.redis is not None
        if "_client" not in self.extras:
            self.extras["_client"] = redis.Redis.from_url(self.services.redis.url)
        return self.extras["_client"]

    # --- rounds ---------------------------------------------------------------------

    def warm_up(self) -> None:
        w = Workload("warmup", "200B", 20)
        for target in self.services.targets:
            for payload in ("200B", "15KB"):
                port = self.services.target_port(target)
                wp = Workload("warmup", payload, w.connections)
                self.load(port, wp, 1.0 if self.args.quick else 2.0, None)

    def run_round(self, index: int) -> None:
        results: dict[str, dict[str, dict[str, Any]]] = {}
        self.rounds.append(results)
        for w in workloads(self.args.connections):
            if not _selected(self.args.only, w.name, phases(self.args.connections)):
                continue
            rate = self._rate_for(w)
            if w.open_pct is not None and rate is None:
                print(f"{w.name}: skipped (no reference maximum measured)", file=sys.stderr)
                continue
            for target in w.targets:
                if target not in self.services.targets:
                    continue
                try:
                    cell = self.run_cell(target, w, rate)
                except (RuntimeError, subprocess.TimeoutExpired, ValueError) as exc:
                    cell = {"error": str(exc)[-300:]}
                results.setdefault(w.name, {})[target] = cell
                print(f"round {index + 1} {w.name:<13} {target:<10} {brief(cell)}", file=sys.stderr, flush=True)

    def _rate_for(self, w: Workload) -> float | None:
        """Open loop: ``open_pct`` % of the median closed-loop max of the reference so far."""
        if w.open_pct is None:
            return None
        base = f"c{self.args.connections}-{w.payload}"
        for ceiling in ("reference", "ff_off", "direct"):
            seen = [
                r[base][ceiling]["rps"] for r in self.rounds if ceiling in r.get(base, {}) and "rps" in r[base][ceiling]
            ]
            if seen:
                return statistics.median(seen) * w.open_pct / 100
        return None

    # --- extras ---------------------------------------------------------------------

    def sustained(self) -> None:
        """RSS of the tracking proxy before and after a sustained closed-loop run."""
        name = next((t for t in ("ff_on", "reference") if self.services.targets.get(t)), None)
        if name is None:
            return
        svc = self.services.targets[name]
        assert svc is not None
        samples: list[tuple[float, int]] = []
        stop = threading.Event()
        every = max(1.0, self.args.sustain / 12)

        def sample() -> None:
            t0 = time.monotonic()
            while not stop.wait(every):
                samples.append((round(time.monotonic() - t0, 1), svc.rss_bytes()))

        before = svc.rss_bytes()
        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        w = Workload("sustained", "200B", self.args.connections)
        try:
            result = self.load(svc.port or 0, w, self.args.sustain, None)
        finally:
            stop.set()
            thread.join()
        after = svc.rss_bytes()
        self.extras["sustained"] = {
            "target": name,
            "seconds": self.args.sustain,
            "rps": result.get("rps"),
            "rss_at_launch": svc.rss_at_start,
            "rss_before": before,
            "rss_after": after,
            "growth_bytes": after - before,
            "samples": samples,
        }
        print(f"sustained {name}: RSS {before / 2**20:.1f} -> {after / 2**20:.1f} MiB", file=sys.stderr)

    def idle(self) -> None:
        """RSS with many idle keep-alive connections, per proxy target."""
        out = {}
        raw = loadgen.request_mix(PAYLOADS["200B"], "127.0.0.1", self.cookie)[1]
        for name in ("reference", "ff_off", "ff_on"):
            svc = self.services.targets.get(name)
            if svc is None or svc.port is None:
                continue
            before = svc.rss_bytes()
            held, during = asyncio.run(
                loadgen.hold_idle(
                    "127.0.0.1", svc.port, raw, self.args.idle_connections, lambda _n, s=svc: s.rss_bytes()
                )
            )
            out[name] = {
                "connections": held,
                "rss_before": before,
                "rss_held": during,
                "per_conn_bytes": (during - before) / held if held else None,
            }
            print(f"idle {name}: {held} conns, RSS {before / 2**20:.1f} -> {during / 2**20:.1f} MiB", file=sys.stderr)
        self.extras["idle"] = out


def count_events(r: Any, elapsed: float) -> dict[str, Any]:
    """Wait for the stream to stop growing, then count entries, unique ids and the
    delay from each request's end (``ts + duration_ms``) to its entry id's time."""
    last, stable_since, deadline = -1, time.monotonic(), time.monotonic() + 15
    while time.monotonic() < deadline:
        n = r.xlen(STREAM)
        if n != last:
            last, stable_since = n, time.monotonic()
        elif time.monotonic() - stable_since > 0.6:
            break
        time.sleep(0.1)
    import orjson

    ids: set[str] = set()
    delays: list[float] = []
    entries, start = 0, "-"
    while True:
        batch = r.xrange(STREAM, min=start, max="+", count=5000)
        if not batch:
            break
        for entry_id, fields in batch:
            entries += 1
            event = orjson.loads(fields[b"event"])
            ids.add(event.get("id"))
            stream_ms = int(entry_id.split(b"-")[0])
            end_ms = event["ts"] * 1000 + (event.get("duration_ms") or 0)
            delays.append(stream_ms - end_ms)
        start = "(" + batch[-1][0].decode()
    delays.sort()
    return {
        "entries": entries,
        "unique": len(ids),
        "per_s": entries / elapsed if elapsed else 0,
        "delay_ms_p50": loadgen.percentile(delays, 50),
        "delay_ms_p99": loadgen.percentile(delays, 99),
    }


def _selected(only: list[str] | None, name: str, universe: Any) -> bool:
    """``--only`` filters each kind (targets, workloads) separately: a kind with no
    matching pattern is not filtered."""
    if not only:
        return True
    relevant = [p for p in only if any(fnmatch.fnmatch(u, p) for u in universe)]
    return not relevant or any(fnmatch.fnmatch(name, p) for p in relevant)


def selected_targets(only: list[str] | None) -> list[str]:
    return [t for t in TARGETS if _selected(only, t, TARGETS)]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Footfall hot-path benchmark", formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="smoke test: 2 s cells, 1 round")
    p.add_argument("--rounds", type=int, help="interleaved rounds (default 3, quick 1)")
    p.add_argument("--duration", type=float, help="seconds per cell (default 10, quick 2)")
    p.add_argument(
        "--only",
        help="comma-separated globs over targets and/or workloads, e.g. 'reference,ff_on,c50-*' or 'sustained,idle'",
    )
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--sustain", type=float, help="sustained-run seconds (default 60, quick 5)")
    p.add_argument("--idle-connections", type=int, default=5000)
    p.add_argument("--loadgen", choices=("auto", "wrk", "builtin"), default="auto")
    p.add_argument("--upstream", choices=("auto", "nginx", "python"), default="auto")
    p.add_argument("--no-install", action="store_true", help="never apt-get install wrk/nginx")
    p.add_argument(
        "--stand-in", action="store_true", help="run the reference proxy in the footfall cells (to test the runner)"
    )
    p.add_argument("--out", type=Path, default=ROOT / "load_tests" / "results")
    args = p.parse_args(argv)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.duration = args.duration or (2.0 if args.quick else 10.0)
    args.sustain = args.sustain or (5.0 if args.quick else 60.0)
    args.only = [s.strip() for s in args.only.split(",") if s.strip()] if args.only else None
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # 5,000 idle connections
    tools = ensure_tools(install=not args.no_install)
    pin = Pinning.plan()
    pin.apply_to_pid(os.getpid(), pin.aux)  # the runner itself stays off the proxy core
    use_wrk = args.loadgen != "builtin" and loadgen.wrk_available()
    if args.loadgen == "wrk" and not use_wrk:
        print("wrk not available: using the built-in generator", file=sys.stderr)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="footfall-bench-") as tmp:
        services = Services(Path(tmp), pin)
        bench = Bench(args, services, use_wrk)
        try:
            upstream_url = services.start_upstream(args.upstream)
            services.start_redis()
            services.start_targets(upstream_url, selected_targets(args.only), args.stand_in)
            print(
                f"pinning: {pin.description}; generator: {'wrk' if use_wrk else 'builtin'}; "
                f"upstream: {services.upstream_kind}",
                file=sys.stderr,
            )
            bench.warm_up()
            for i in range(args.rounds):
                bench.run_round(i)
            if _selected(args.only, "sustained", phases(args.connections)):
                bench.sustained()
            if _selected(args.only, "idle", phases(args.connections)):
                bench.idle()
        finally:
            bench.extras.pop("_client", None)
            services.stop_all()
    doc = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(time.time() - started, 1),
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": describe_machine(tools),
        "pinning": pin.description,
        "generator": {"closed": "wrk" if use_wrk else "builtin", "open": "builtin"},
        "upstream": services.upstream_kind,
        "stand_in": args.stand_in,
        "unavailable": services.unavailable,
        "rounds": bench.rounds,
        "extras": bench.extras,
    }
    doc["summary"] = summarize(doc)
    print(render(doc))
    path = write_json(doc, args.out, started)
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
