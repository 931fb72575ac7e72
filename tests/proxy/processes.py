"""Helpers for tests that run footfall as a real process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess

import aiohttp


async def wait_ready(admin_port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    async with aiohttp.ClientSession() as client:
        while asyncio.get_running_loop().time() < deadline:
            if proc.poll() is not None:
                said = proc.stderr.read().decode(errors="replace")[-2000:] if proc.stderr else ""
                raise AssertionError(f"footfall exited early ({proc.returncode}): {said}")
            try:
                async with client.get(f"http://127.0.0.1:{admin_port}/readyz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("footfall never became ready")


async def stop(proc: subprocess.Popen[bytes]) -> int:
    os.kill(proc.pid, signal.SIGTERM)
    return await asyncio.get_running_loop().run_in_executor(None, proc.wait, 30)
