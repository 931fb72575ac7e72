"""The footfall command as a user runs it: real processes, real ports."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
import psutil
import pytest
from aiohttp import web

from proxy.stream.embedded import free_port
from tests.proxy.processes import stop, wait_ready
from tests.proxy.tracking.test_tracking import NAV, V1_FIELDS

ROOT = Path(__file__).resolve().parents[2]


def footfall(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "proxy.cli", *args], capture_output=True, text=True, timeout=60, **kwargs
    )  # type: ignore[call-overload]


def test_check_config_accepts_the_example() -> None:
    result = footfall("check-config", str(ROOT / "config" / "footfall.example.toml"))
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


def test_check_config_names_the_field_without_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[upstreams]]\nhost = "a"\nurl = "nope"\n[limits]\nheader_timeout_seconds = -1\n')
    result = footfall("check-config", str(bad))
    assert result.returncode == 2
    assert "upstreams[0].url: not an http(s) URL" in result.stderr
    assert "limits.header_timeout_seconds: must be greater than 0" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["proxy"], "upstreams: at least one --upstream is required"),
        (["proxy", "--upstream", "http://a", "--listen", "nowhere"], "listen: not HOST:PORT"),
        (["proxy", "--upstream", "gopher://a"], "upstreams[0].url"),
    ],
)
def test_bad_flags_exit_2_with_the_field(args: list[str], message: str, tmp_path: Path) -> None:
    result = footfall(*args, "--data-dir", str(tmp_path), env={**os.environ, "FOOTFALL_UPSTREAM": ""})
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


async def test_demo_pageview_shows_in_tail_with_every_field(tmp_path: Path) -> None:
    port, admin = free_port(), free_port()
    data = str(tmp_path / "data")
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxy.cli", "demo", "--listen", f"127.0.0.1:{port}",
         "--admin-listen", f"127.0.0.1:{admin}", "--data-dir", data, "--traffic", "off"],  # fmt: skip
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        await wait_ready(admin, proc)
        async with aiohttp.ClientSession() as client:
            async with client.get(f"http://127.0.0.1:{port}/products/7", headers=NAV) as resp:
                assert resp.status == 200
                assert "Product 7" in await resp.text()
            async with client.get(f"http://127.0.0.1:{admin}/metrics") as resp:
                assert "footfall_http_request_duration_seconds" in await resp.text()
            async with client.get(f"http://127.0.0.1:{admin}/dashboard") as resp:
                assert resp.status == 200 and "<html" in (await resp.text()).lower()
        tail = await asyncio.get_running_loop().run_in_executor(
            None, lambda: footfall("tail", "--from-start", "--count", "1", "--data-dir", data)
        )
        assert tail.returncode == 0, tail.stderr
        event = orjson.loads(tail.stdout.splitlines()[0])
        assert event.keys() >= V1_FIELDS
        assert event["kind"] == "pageview" and event["route"] == "/products/{id}"
        assert await stop(proc) == 0
        assert proc.stdout is not None
        banner = proc.stdout.read().decode()
        assert f"http://127.0.0.1:{port}/" in banner and f"http://127.0.0.1:{admin}/metrics" in banner
        assert f"Dashboard           http://127.0.0.1:{admin}/dashboard\n" in banner  # where a new user goes next
    finally:
        if proc.poll() is None:
            proc.kill()
        if proc.stdout:
            proc.stdout.close()


MB = 1024 * 1024
TRANSFER = 96 * MB  # under the default 100 MiB request body limit


@pytest.fixture
async def bulk_upstream(upstream_factory) -> str:
    async def download(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        resp.content_length = TRANSFER
        await resp.prepare(request)
        chunk = b"\0" * MB
        for _ in range(TRANSFER // MB):
            await resp.write(chunk)
        return resp

    async def upload(request: web.Request) -> web.Response:
        total = 0
        async for chunk in request.content.iter_any():
            total += len(chunk)
        return web.json_response({"received": total})

    app = web.Application(client_max_size=TRANSFER * 2)
    app.router.add_get("/download", download)
    app.router.add_post("/upload", upload)
    return await upstream_factory(app)


async def test_large_bodies_stream_both_ways_in_flat_memory(bulk_upstream: str, tmp_path: Path) -> None:
    port, admin = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxy.cli", "proxy", "--upstream", bulk_upstream, "--tracking", "off",
         "--listen", f"127.0.0.1:{port}", "--admin-listen", f"127.0.0.1:{admin}", "--data-dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await wait_ready(admin, proc)
        process = psutil.Process(proc.pid)
        baseline = process.memory_info().rss
        peak = baseline

        async def sample() -> None:
            nonlocal peak
            while True:
                peak = max(peak, process.memory_info().rss)
                await asyncio.sleep(0.02)

        sampler = asyncio.create_task(sample())

        async def body() -> AsyncIterator[bytes]:
            chunk = b"\1" * MB
            for _ in range(TRANSFER // MB):
                yield chunk

        async with aiohttp.ClientSession() as client:
            received = 0
            async with client.get(f"http://127.0.0.1:{port}/download") as resp:
                async for chunk in resp.content.iter_any():
                    received += len(chunk)
            async with client.post(f"http://127.0.0.1:{port}/upload", data=body()) as resp:
                uploaded = (await resp.json())["received"]
        sampler.cancel()
        assert received == TRANSFER and uploaded == TRANSFER
        # 192 MB went through; the proxy's memory moved by a few buffers at most.
        assert peak - baseline < 32 * MB, (baseline, peak)
        assert await stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


async def test_two_workers_share_the_port_and_report_one_metrics_page(
    upstream_factory, redis_server, redis_client, tmp_path: Path
) -> None:
    async def ok(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/{tail:.*}", ok)
    upstream = await upstream_factory(app)
    port, admin = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxy.cli", "proxy", "--workers", "2", "--upstream", upstream,
         "--listen", f"127.0.0.1:{port}", "--admin-listen", f"127.0.0.1:{admin}",
         "--redis-url", redis_server.url, "--data-dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await wait_ready(admin, proc)
        n = 40
        async with aiohttp.ClientSession() as client:
            for i in range(n):  # a new connection each time, so the kernel spreads them
                async with client.get(f"http://127.0.0.1:{port}/p?n={i}", headers={"Connection": "close"}) as resp:
                    assert resp.status == 200
            await asyncio.sleep(0.3)
            async with client.get(f"http://127.0.0.1:{admin}/metrics") as resp:
                text = await resp.text()
        assert await stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    line = next(x for x in text.splitlines() if x.startswith("footfall_http_request_duration_seconds_count{"))
    assert float(line.split()[-1]) == n  # summed over both workers
    entries = await redis_client.xrange("footfall:events")
    assert sorted(int(orjson.loads(f[b"event"])["query"]["n"]) for _, f in entries) == list(range(n))
    assert {p.name for p in (tmp_path / "spool").iterdir()} == {"worker-0", "worker-1"}


async def test_ctrl_c_to_the_whole_group_drains_into_the_embedded_redis(tmp_path: Path) -> None:
    """A terminal's Ctrl-C reaches every process of the group; the embedded Redis
    must outlive the proxy's drain, so the events go to Redis, not to the spool."""
    port, admin = free_port(), free_port()
    config = tmp_path / "f.toml"  # events stay buffered until the signal comes
    config.write_text("[publisher]\nbatch_size = 100000\nflush_interval_ms = 600000\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxy.cli", "demo", "--listen", f"127.0.0.1:{port}", "--config", str(config),
         "--admin-listen", f"127.0.0.1:{admin}", "--data-dir", str(tmp_path / "d"), "--traffic", "off"],  # fmt: skip
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        await wait_ready(admin, proc)
        async with aiohttp.ClientSession() as client:
            for _ in range(3):
                async with client.get(f"http://127.0.0.1:{port}/", headers=NAV) as resp:
                    assert resp.status == 200
        os.killpg(proc.pid, signal.SIGINT)
        assert await asyncio.get_running_loop().run_in_executor(None, proc.wait, 30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.stderr is not None
    log = proc.stderr.read().decode()
    proc.stderr.close()
    assert "publisher closed: 3 published, 0 spooled, 0 dropped" in log, log[-1500:]
    assert "WARNING" not in log and "Traceback" not in log
