"""Start-up as a new user meets it: failures are one line and release everything;
an unreachable Redis is waited out, not fatal. Real processes, real ports."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest
from aiohttp import web

from proxy.stream.embedded import EmbeddedRedis, free_port
from tests.proxy.processes import stop, wait_ready

STREAM = "footfall:events"


def _left_behind(marker: str) -> list[str]:
    """Processes whose command line mentions ``marker`` (our data dir)."""
    found = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(p.info["cmdline"] or [])
        if marker in cmdline:
            found.append(f"{p.info['pid']} {cmdline}")
    return found


def _footfall(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "proxy.cli", *args], capture_output=True, text=True, timeout=timeout)


def _one_clear_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    assert "Unclosed" not in stderr, stderr
    mine = [line for line in stderr.splitlines() if line.startswith("footfall:")]
    assert len(mine) == 1, stderr
    return mine[0]


@pytest.fixture
def occupied() -> Iterator[int]:
    """A loopback port held by a listening socket of this test."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.mark.parametrize("which", ["admin", "proxy"])
def test_a_port_in_use_exits_with_one_line_and_no_orphan(which: str, occupied: int, tmp_path: Path) -> None:
    """The embedded Redis is started first; it must be stopped when a listener fails."""
    data = tmp_path / "data"
    ports = {"admin": str(free_port()), "proxy": str(free_port())}
    ports[which] = str(occupied)
    result = _footfall(
        "run", "--upstream", "http://127.0.0.1:9", "--data-dir", str(data),
        "--listen", f"127.0.0.1:{ports['proxy']}", "--admin-listen", f"127.0.0.1:{ports['admin']}",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    line = _one_clear_line(result.stderr)
    assert line.startswith(f"footfall: cannot listen on 127.0.0.1:{occupied} ({which}): address already in use")
    assert _left_behind(str(data)) == []


@pytest.mark.parametrize(
    ("data_dir", "named"),
    [
        # Root writes anywhere: a path under a regular file fails for root too.
        (lambda tmp: tmp / "a-file" / "data", "not a directory"),
        (lambda tmp: Path("/proc/footfall-test-data"), "no such file or directory"),
    ],
    ids=["under-a-file", "under-proc"],
)
@pytest.mark.parametrize("command", ["run", "proxy"])
def test_an_unusable_data_dir_is_one_line_naming_the_path(
    command: str, data_dir: Callable[[Path], Path], named: str, tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("not a directory\n")
    path = data_dir(tmp_path)
    result = _footfall(
        command, "--upstream", "http://127.0.0.1:9", "--data-dir", str(path),
        "--listen", f"127.0.0.1:{free_port()}", "--admin-listen", f"127.0.0.1:{free_port()}",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    line = _one_clear_line(result.stderr)
    assert line.startswith(f"footfall: cannot use data directory {path}: {named}")
    assert "--data-dir" in line
    assert len(result.stderr.splitlines()) <= 2, result.stderr


async def test_unreachable_redis_proxy_spools_and_collectors_wait(upstream_factory: Any, tmp_path: Path) -> None:
    """``footfall run`` with a Redis that is not there yet: serve, spool, report
    the collectors not ready; once Redis appears, events arrive and they are ready."""

    async def page(_: web.Request) -> web.Response:
        return web.Response(text="<html>hi</html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", page)
    upstream = await upstream_factory(app)
    redis_port, port, admin = free_port(), free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxy.cli", "run", "--upstream", upstream,
         "--redis-url", f"redis://127.0.0.1:{redis_port}/0", "--data-dir", str(tmp_path / "data"),
         "--listen", f"127.0.0.1:{port}", "--admin-listen", f"127.0.0.1:{admin}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    server: EmbeddedRedis | None = None
    try:
        await wait_ready(admin, proc)
        async with aiohttp.ClientSession() as client:
            for i in range(5):
                async with client.get(f"http://127.0.0.1:{port}/p{i}") as resp:
                    assert resp.status == 200
            async with client.get(f"http://127.0.0.1:{admin}/readyz") as resp:
                assert resp.status == 200  # the proxy is safe: it spools
                assert "collectors: not ready" in await resp.text()
            assert proc.poll() is None
            server = EmbeddedRedis(tmp_path / "redis", port=redis_port).start()
            redis = server.url
            import redis.asyncio as aioredis

            r = aioredis.Redis.from_url(redis)
            try:
                for _ in range(300):  # backoff is at most 5 s
                    async with client.get(f"http://127.0.0.1:{admin}/readyz") as resp:
                        body = await resp.text()
                    if "collectors: ready" in body and await r.exists(STREAM) and await r.xlen(STREAM) >= 5:
                        break
                    await asyncio.sleep(0.1)
                assert "collectors: ready" in body
                assert await r.xlen(STREAM) == 5
                groups = {g["name"] for g in await r.xinfo_groups(STREAM)}
                assert groups == {b"analytics", b"performance"}
            finally:
                await r.aclose()
        assert await stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if server is not None:
            server.stop()
    assert proc.stderr is not None
    log = proc.stderr.read().decode()
    proc.stderr.close()
    assert "Traceback" not in log, log[-3000:]
    assert "retrying with backoff until Redis answers" in log


@pytest.mark.parametrize("route", ["shop.example", "*.example.org"])
async def test_the_banner_suggests_a_request_that_works_without_a_catch_all(
    route: str, upstream_factory: Any, tmp_path: Path
) -> None:
    async def page(_: web.Request) -> web.Response:
        return web.Response(text="served")

    app = web.Application()
    app.router.add_get("/", page)
    upstream = await upstream_factory(app)
    port, admin = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxy.cli", "proxy", "--upstream", f"{route}={upstream}", "--tracking", "off",
         "--listen", f"127.0.0.1:{port}", "--admin-listen", f"127.0.0.1:{admin}", "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await wait_ready(admin, proc)
        assert proc.stdout is not None
        # The banner is printed before the admin listener can answer: it is all there.
        read = asyncio.get_running_loop().run_in_executor
        banner = [await read(None, proc.stdout.readline) for _ in range(3)]
        try_line = next(line.decode() for line in banner if b"curl" in line)
        # e.g. "  try   curl -H 'Host: shop.example' http://127.0.0.1:PORT/"
        host = try_line.split("Host: ", 1)[1].split("'", 1)[0]
        url = try_line.split()[-1]
        assert url == f"http://127.0.0.1:{port}/"
        async with aiohttp.ClientSession() as client:
            async with client.get(url, headers={"Host": host}) as resp:
                assert resp.status == 200
                assert await resp.text() == "served"
            async with client.get(url) as resp:
                assert resp.status == 421  # what the bare listen URL alone gets
        assert await stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
