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
import contextlib  # noqa: E402
import fnmatch  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import urllib.error  # noqa: E402
import urllib.request  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

from load_tests import loadgen  # noqa: E402
from load_tests.upstream import PAYLOADS, nginx_command, write_nginx_site  # noqa: E402
from proxy.embedded import EmbeddedRedis, free_port  # noqa: E402

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


# --- processes, pinning, tools --------------------------------------------------------


@dataclass
class Pinning:
    """Which CPUs the proxy gets and which everything else gets.

    With two or more CPUs the proxy under test runs alone on the last one; the
    upstream, Redis, the load generator and this runner share the others. The
    2-worker cell is given every CPU (two workers on one core would measure
    nothing). With one CPU nothing is pinned.
    """

    proxy: set[int]
    aux: set[int]
    all: set[int]
    enabled: bool
    description: str

    @classmethod
    def plan(cls) -> Pinning:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            return cls(set(cpus), set(cpus), set(cpus), False, f"no pinning ({len(cpus)} CPU)")
        proxy, aux = {cpus[-1]}, set(cpus[:-1])
        tool = "taskset" if shutil.which("taskset") else "sched_setaffinity"
        desc = (
            f"proxy on CPU {cpus[-1]}; upstream, Redis, load generator and runner on CPU "
            f"{_cpulist(aux)}; 2-worker cell on CPUs {_cpulist(set(cpus))} (via {tool})"
        )
        return cls(proxy, aux, set(cpus), True, desc)

    def prefix(self, cpus: set[int]) -> list[str]:
        """argv prefix that runs a command on ``cpus`` (all its threads inherit it)."""
        if self.enabled and shutil.which("taskset"):
            return ["taskset", "-c", _cpulist(cpus)]
        return []

    def apply_to_pid(self, pid: int, cpus: set[int]) -> None:
        """Pin an already running process and all its threads."""
        if not self.enabled:
            return
        if shutil.which("taskset"):
            subprocess.run(["taskset", "-a", "-p", "-c", _cpulist(cpus), str(pid)], capture_output=True, check=False)
        else:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(pid, cpus)


def _cpulist(cpus: set[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))


class Service:
    """A server process started for the benchmark, in its own process group.

    Output goes to ``tmp/<name>.log``; :meth:`start` waits for ``ready_url`` to
    answer (with ``ready_status`` when given). RSS and CPU time include children
    (a multi-worker proxy's workers).
    """

    def __init__(
        self,
        name: str,
        cmd: list[str],
        cpus: set[int],
        tmp: Path,
        *,
        port: int | None = None,
        env: dict[str, str] | None = None,
        ready_url: str | None = None,
        ready_status: int | None = None,
    ) -> None:
        self.name, self.cmd, self.cpus, self.port = name, cmd, cpus, port
        self.env = env or {}
        self.ready_url, self.ready_status = ready_url, ready_status
        self.log_path = tmp / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.rss_at_start = 0

    def start(self, timeout: float = 15.0) -> None:
        pin = Pinning.plan()
        argv = [*pin.prefix(self.cpus), *self.cmd]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env={**os.environ, **self.env},
                cwd=ROOT,
                start_new_session=True,
            )
        if not pin.prefix(self.cpus):
            pin.apply_to_pid(self.proc.pid, self.cpus)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}): {self.log_tail()}")
            if self.ready_url is None or self._ready():
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} not ready within {timeout:.0f} s: {self.log_tail()}")

    def _ready(self) -> bool:
        assert self.ready_url is not None
        try:
            with urllib.request.urlopen(self.ready_url, timeout=2) as r:
                r.read()
                status = r.status
        except urllib.error.HTTPError as e:
            status = e.code
        except OSError:
            return False
        return self.ready_status is None or status == self.ready_status

    def log_tail(self, n: int = 400) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:].strip()
        except OSError:
            return ""

    def _procs(self) -> list[Any]:
        import psutil

        if self.proc is None or self.proc.poll() is not None:
            return []
        try:
            root = psutil.Process(self.proc.pid)
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []

    def rss_bytes(self) -> int:
        import psutil

        total = 0
        for p in self._procs():
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        return total

    def cpu_seconds(self) -> float:
        import psutil

        total = 0.0
        for p in self._procs():
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        return total

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL it after 10 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        except ProcessLookupError:
            pass


def ensure_tools(install: bool) -> dict[str, Any]:
    """Install wrk and nginx with apt-get when missing (root only); say what happened."""
    wanted = {"wrk": "wrk", "nginx": "nginx-light"}
    missing = [pkg for tool, pkg in wanted.items() if shutil.which(tool) is None]
    notes: list[str] = []
    if missing and install and os.geteuid() == 0 and shutil.which("apt-get"):
        cmd = ["apt-get", "install", "-y", "-q", *missing]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        print(f"installing {' '.join(missing)} with apt-get ...", file=sys.stderr)
        try:
            ok = subprocess.run(cmd, capture_output=True, env=env, timeout=300).returncode == 0
            if not ok:
                subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env, timeout=300, check=False)
                ok = subprocess.run(cmd, capture_output=True, env=env, timeout=300).returncode == 0
            notes.append(f"apt-get install {' '.join(missing)}: {'ok' if ok else 'failed'}")
        except subprocess.TimeoutExpired:
            notes.append("apt-get timed out")
    elif missing:
        notes.append(
            f"missing {', '.join(missing)}; not installed (not root, no apt-get, "
            "or --no-install): using the built-in fallbacks"
        )
    return {
        "wrk": _version(["wrk", "--version"]),
        "nginx": _version(["nginx", "-v"]),
        "taskset": shutil.which("taskset") is not None,
        "notes": notes,
    }


def _version(cmd: list[str]) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    return (out.stdout + out.stderr).strip().splitlines()[0] if out.stdout + out.stderr else "?"


def describe_machine(tools: dict[str, Any]) -> dict[str, Any]:
    """What the numbers were measured on."""
    import importlib.metadata as md

    import psutil

    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    versions = {}
    for pkg in ("aiohttp", "uvloop", "redis", "hiredis", "orjson"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "platform": platform.platform(),
        "cpu": model,
        "cpus": os.cpu_count(),
        "affinity": sorted(os.sched_getaffinity(0)),
        "memory_bytes": psutil.virtual_memory().total,
        "loadavg": os.getloadavg(),
        "python": platform.python_version(),
        "packages": versions,
        "tools": tools,
        "commit": commit or None,
    }


def phases(connections: int) -> list[str]:
    """Everything ``--only`` can select besides targets: workloads and the extras."""
    return [w.name for w in workloads(connections)] + ["sustained", "idle"]


@dataclass
class Bench:
    """A run's state: options, the services it started, and every cell's result."""

    args: argparse.Namespace
    tmp: Path
    pin: Pinning
    use_wrk: bool
    redis: EmbeddedRedis | None = None
    upstream: Service | None = None
    upstream_kind: str = ""
    targets: dict[str, Service | None] = field(default_factory=dict)  # None: direct
    unavailable: dict[str, str] = field(default_factory=dict)
    rounds: list[dict[str, dict[str, dict[str, Any]]]] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)
    cookie: str = field(default_factory=loadgen.returning_visitor_cookie)

    # --- setup ----------------------------------------------------------------------

    def start_upstream(self) -> str:
        port = free_port()
        want = self.args.upstream
        if want in ("auto", "nginx") and shutil.which("nginx"):
            conf = write_nginx_site(self.tmp / "nginx", port)
            self.upstream_kind = "nginx"
            cmd = nginx_command(conf)
        else:
            if want == "nginx":
                print("nginx not found: using the Python upstream", file=sys.stderr)
            self.upstream_kind = "python (load_tests/upstream.py)"
            cmd = [sys.executable, "-m", "load_tests.upstream", "--port", str(port)]
        url = f"http://127.0.0.1:{port}"
        svc = Service("upstream", cmd, self.pin.aux, self.tmp, ready_url=url + "/small")
        svc.start()
        self.upstream = svc
        return url

    def start_redis(self) -> None:
        self.redis = EmbeddedRedis(self.tmp / "redis", port=free_port()).start()
        if self.redis.process is not None:
            self.pin.apply_to_pid(self.redis.process.pid, self.pin.aux)

    def start_targets(self, upstream_url: str) -> None:
        selected = self.selected_targets()
        self.targets["direct"] = None
        ref_cmd = [sys.executable, "-m", "load_tests.reference_proxy", "--upstream", upstream_url]
        if "reference" in selected or self.args.stand_in:
            self._start("reference", ref_cmd, self.pin.proxy)
        footfall = _footfall_exe()
        for name, workers, tracking in (("ff_off", 1, False), ("ff_on", 1, True), ("ff_on_2w", 2, True)):
            if name not in selected:
                continue
            cpus = self.pin.proxy if workers == 1 else self.pin.all
            if self.args.stand_in:
                self._start(name, ref_cmd, cpus)
            elif footfall is None:
                self.unavailable[name] = "no `footfall` executable (proxy.cli not written yet?)"
            else:
                self._start_footfall(name, footfall, upstream_url, workers, tracking, cpus)
        if "mitmproxy" in selected:
            mitm = shutil.which("mitmdump")
            if mitm is None:
                self.unavailable["mitmproxy"] = "mitmdump not installed (optional)"
            else:
                cmd = [mitm, "-q", "--mode", f"reverse:{upstream_url}", "--listen-host", "127.0.0.1"]
                self._start("mitmproxy", cmd, self.pin.proxy, port_flag="--listen-port")

    def _start(self, name: str, cmd: list[str], cpus: set[int], port_flag: str = "") -> None:
        port = free_port()
        cmd = [*cmd, *([port_flag, str(port)] if port_flag else ["--listen", f"127.0.0.1:{port}"])]
        svc = Service(name, cmd, cpus, self.tmp, port=port, ready_url=f"http://127.0.0.1:{port}/small")
        self._launch(name, svc)

    def _start_footfall(self, name: str, exe: str, upstream: str, workers: int, tracking: bool, cpus: set[int]) -> None:
        assert self.redis is not None
        port, admin = free_port(), free_port()
        cmd = [
            exe,
            "proxy",
            "--upstream",
            upstream,
            "--listen",
            f"127.0.0.1:{port}",
            "--admin-listen",
            f"127.0.0.1:{admin}",
            "--redis-url",
            self.redis.url,
            "--data-dir",
            str(self.tmp / f"data-{name}"),
        ]
        if workers > 1:
            cmd += ["--workers", str(workers)]
        env = {"FOOTFALL_TRACKING": "on" if tracking else "off", "FOOTFALL_COOKIE_SECRET": loadgen.BENCH_COOKIE_SECRET}
        svc = Service(
            name,
            cmd,
            cpus,
            self.tmp,
            port=port,
            env=env,
            ready_url=f"http://127.0.0.1:{admin}/readyz",
            ready_status=200,
        )
        self._launch(name, svc)

    def _launch(self, name: str, svc: Service) -> None:
        try:
            svc.start(timeout=30)
        except RuntimeError as exc:
            self.unavailable[name] = str(exc)
            print(f"{name}: unavailable: {exc}", file=sys.stderr)
            return
        svc.rss_at_start = svc.rss_bytes()
        self.targets[name] = svc

    def selected_targets(self) -> list[str]:
        return [t for t in TARGETS if _selected(self.args.only, t, TARGETS)]

    def stop_all(self) -> None:
        for svc in self.targets.values():
            if svc is not None:
                svc.stop()
        if self.upstream is not None:
            self.upstream.stop()
        if self.redis is not None:
            self.redis.stop()

    # --- one cell -------------------------------------------------------------------

    def target_port(self, target: str) -> int:
        svc = self.targets.get(target)
        if svc is None:
            assert self.upstream is not None and self.upstream.ready_url is not None
            return int(self.upstream.ready_url.rsplit(":", 1)[1].split("/")[0])
        assert svc.port is not None
        return svc.port

    def load(self, port: int, w: Workload, duration: float, rate: float | None) -> dict[str, Any]:
        """Run the load generator pinned to the auxiliary cores; its result dict."""
        prefix = self.pin.prefix(self.pin.aux)
        # Minted per cell: a browser keeps the session cookie Footfall last refreshed
        # (at most a minute old), which wrk cannot do; a cookie minted once per run
        # would make every pageview after the first minute pay a refresh.
        self.cookie = loadgen.returning_visitor_cookie()
        if rate is None and self.use_wrk:
            hostport = f"127.0.0.1:{port}"
            path = self.tmp / f"wrk-{w.payload}-{port}.lua"
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
        svc = self.targets.get(target)
        tracking = target in TRACKING and not self.args.stand_in
        if tracking:
            self._redis().delete(STREAM)
        cpu0 = svc.cpu_seconds() if svc else 0.0
        result = self.load(self.target_port(target), w, self.args.duration, rate)
        if svc is not None and result["requests"]:
            result["cpu_us_per_req"] = (svc.cpu_seconds() - cpu0) / result["requests"] * 1e6
        if tracking:
            result["events"] = count_events(self._redis(), result["elapsed_s"])
            result["events"]["lost"] = max(0, result["requests"] - result["events"]["unique"])
        return result

    def _redis(self) -> Any:
        import redis

        assert self.redis is not None
        if "_client" not in self.extras:
            self.extras["_client"] = redis.Redis.from_url(self.redis.url)
        return self.extras["_client"]

    # --- rounds ---------------------------------------------------------------------

    def warm_up(self) -> None:
        w = Workload("warmup", "200B", 20)
        for target in self.targets:
            for payload in ("200B", "15KB"):
                port = self.target_port(target)
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
                if target not in self.targets:
                    continue
                try:
                    cell = self.run_cell(target, w, rate)
                except (RuntimeError, subprocess.TimeoutExpired, ValueError) as exc:
                    cell = {"error": str(exc)[-300:]}
                results.setdefault(w.name, {})[target] = cell
                print(f"round {index + 1} {w.name:<13} {target:<10} {_brief(cell)}", file=sys.stderr, flush=True)

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
        name = next((t for t in ("ff_on", "reference") if self.targets.get(t)), None)
        if name is None:
            return
        svc = self.targets[name]
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
            svc = self.targets.get(name)
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


def _footfall_exe() -> str | None:
    exe = Path(sys.executable).parent / "footfall"
    path = str(exe) if exe.exists() else shutil.which("footfall")
    if path is None:
        return None
    probe = subprocess.run([path, "proxy", "--help"], capture_output=True, timeout=60, check=False)
    return path if probe.returncode == 0 else None


def _selected(only: list[str] | None, name: str, universe: Any) -> bool:
    """``--only`` filters each kind (targets, workloads) separately: a kind with no
    matching pattern is not filtered."""
    if not only:
        return True
    relevant = [p for p in only if any(fnmatch.fnmatch(u, p) for u in universe)]
    return not relevant or any(fnmatch.fnmatch(name, p) for p in relevant)


def _brief(cell: dict[str, Any]) -> str:
    if "error" in cell:
        return "error: " + cell["error"][:120]
    lat = cell["latency_us"]
    s = f"{cell['rps']:8.0f} req/s  p50 {lat['p50']:7.0f} µs  p99 {lat['p99']:7.0f} µs"
    if cell.get("errors"):
        s += f"  errors {cell['errors']}"
    if "events" in cell:
        s += f"  events {cell['events']['unique']}"
    return s


# --- summary and table ---------------------------------------------------------------


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
        bench = Bench(args, Path(tmp), pin, use_wrk)
        try:
            upstream_url = bench.start_upstream()
            bench.start_redis()
            bench.start_targets(upstream_url)
            print(
                f"pinning: {pin.description}; generator: {'wrk' if use_wrk else 'builtin'}; "
                f"upstream: {bench.upstream_kind}",
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
            bench.stop_all()
    doc = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(time.time() - started, 1),
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": describe_machine(tools),
        "pinning": pin.description,
        "generator": {"closed": "wrk" if use_wrk else "builtin", "open": "builtin"},
        "upstream": bench.upstream_kind,
        "stand_in": args.stand_in,
        "unavailable": bench.unavailable,
        "rounds": bench.rounds,
        "extras": bench.extras,
    }
    doc["summary"] = summarize(doc)
    print(render(doc))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / time.strftime("bench-%Y%m%d-%H%M%S.json", time.localtime(started))
    path.write_text(json.dumps(_clean(doc), indent=1, default=str))
    print(f"\nresults: {path}")
    return 0


def _clean(value: Any) -> Any:
    """``value`` with NaN replaced by None (JSON has no NaN)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


if __name__ == "__main__":
    sys.exit(main())
