"""The processes a benchmark run starts, pins, watches and stops.

- :class:`Service`: one server process in its own process group, with a
  readiness probe, its RSS and CPU time (children included: a multi-worker
  proxy's workers), and a SIGTERM-then-SIGKILL stop;
- :class:`Services`: everything one run started: the upstream (nginx, else
  ``load_tests/upstream.py``), a dedicated Redis, and the targets: the reference
  proxy, Footfall (``ff_off``, ``ff_on``, ``ff_on_2w``) and mitmproxy. A target
  that cannot start is recorded in ``unavailable`` and the rest still runs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from load_tests import loadgen
from load_tests.machine import Pinning
from load_tests.upstream import nginx_command, write_nginx_site
from proxy.stream.embedded import EmbeddedRedis, free_port

ROOT = Path(__file__).resolve().parent.parent


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


@dataclass
class Services:
    """Everything one run started: upstream, Redis and the targets, by name.

    ``targets["direct"]`` is None (the client talks to the upstream itself); a
    target that failed to start is absent from ``targets`` and its reason is in
    ``unavailable``.
    """

    tmp: Path
    pin: Pinning
    redis: EmbeddedRedis | None = None
    upstream: Service | None = None
    upstream_kind: str = ""
    targets: dict[str, Service | None] = field(default_factory=dict)  # None: direct
    unavailable: dict[str, str] = field(default_factory=dict)

    def start_upstream(self, want: str) -> str:
        """Start nginx (``want`` is ``auto`` or ``nginx`` and it is installed), else the
        Python upstream, on the auxiliary CPUs; its base URL."""
        port = free_port()
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

    def start_targets(self, upstream_url: str, selected: list[str], stand_in: bool) -> None:
        """Start the ``selected`` proxies in front of ``upstream_url``; with ``stand_in``
        the reference proxy runs in the Footfall cells (to test the runner)."""
        self.targets["direct"] = None
        ref_cmd = [sys.executable, "-m", "load_tests.reference_proxy", "--upstream", upstream_url]
        if "reference" in selected or stand_in:
            self._start("reference", ref_cmd, self.pin.proxy)
        footfall = _footfall_exe()
        for name, workers, tracking in (("ff_off", 1, False), ("ff_on", 1, True), ("ff_on_2w", 2, True)):
            if name not in selected:
                continue
            cpus = self.pin.proxy if workers == 1 else self.pin.all
            if stand_in:
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

    def target_port(self, target: str) -> int:
        """The port a load generator sends to: the proxy's, or the upstream's for ``direct``."""
        svc = self.targets.get(target)
        if svc is None:
            assert self.upstream is not None and self.upstream.ready_url is not None
            return int(self.upstream.ready_url.rsplit(":", 1)[1].split("/")[0])
        assert svc.port is not None
        return svc.port

    def stop_all(self) -> None:
        for svc in self.targets.values():
            if svc is not None:
                svc.stop()
        if self.upstream is not None:
            self.upstream.stop()
        if self.redis is not None:
            self.redis.stop()


def _footfall_exe() -> str | None:
    exe = Path(sys.executable).parent / "footfall"
    path = str(exe) if exe.exists() else shutil.which("footfall")
    if path is None:
        return None
    probe = subprocess.run([path, "proxy", "--help"], capture_output=True, timeout=60, check=False)
    return path if probe.returncode == 0 else None
