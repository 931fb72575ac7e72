"""The machine a benchmark runs on: CPU pinning, the tools it needs, its description.

- :class:`Pinning` decides which CPUs the proxy under test gets and which
  everything else gets, and applies it (``taskset``, else ``sched_setaffinity``);
- :func:`ensure_tools` installs wrk and nginx with apt-get when missing (root only);
- :func:`describe_machine` says what the numbers were measured on (it goes into
  the results JSON).
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


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
