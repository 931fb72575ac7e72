"""Real headless Chromium for browser tests (Debian's /usr/bin/chromium, driven by
Playwright over CDP). Fixtures, imported by tests/conftest.py:

- ``chromium`` (session): one Chromium process for the whole run; its DevTools URL.
- ``browser`` (per test): a Playwright connection to it, closed after the test.
- ``browser_context`` (per test): a fresh context (own cookies, cache, storage).

Chromium runs once and each test connects over CDP because Playwright's objects are
bound to the event loop that made them, and every async test has its own loop.
Nothing is skipped: without /usr/bin/chromium the tests fail and say what to install
(``npx playwright install`` cannot work here; CI installs Debian's package).
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
_LISTENING = re.compile(rb"DevTools listening on (ws://\S+)")


@pytest.fixture(scope="session")
def chromium() -> Iterator[str]:
    """Start Chromium once; yields its DevTools WebSocket URL."""
    if not Path(CHROMIUM).is_file():
        pytest.fail(
            f"{CHROMIUM} is missing: browser tests need Debian's Chromium "
            "(apt-get install -y chromium; .ci/run does it in CI)",
            pytrace=False,
        )
    with tempfile.TemporaryDirectory(prefix="footfall-chromium-") as profile:
        proc = subprocess.Popen(
            [CHROMIUM, *ARGS, "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # the wrapper script forks: stop the whole group
        )
        try:
            assert proc.stderr is not None
            url = _wait_for_url(proc, proc.stderr.fileno(), deadline=time.monotonic() + 30)
            yield url
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()


def _wait_for_url(proc: subprocess.Popen[bytes], fd: int, deadline: float) -> str:
    seen = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            data = os.read(fd, 65536)
            if not data:
                break
            seen += data
            match = _LISTENING.search(seen)
            if match:
                # Keep draining stderr in the background so Chromium never blocks on it.
                _drain(fd)
                return match.group(1).decode()
        elif proc.poll() is not None:
            break
    pytest.fail(f"Chromium did not start: {seen.decode(errors='replace')[-2000:]}", pytrace=False)


def _drain(fd: int) -> None:
    import threading

    def run() -> None:
        try:
            while os.read(fd, 65536):
                pass
        except OSError:
            pass

    threading.Thread(target=run, name="chromium-stderr", daemon=True).start()


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[object]:
    from playwright.async_api import async_playwright

    pw = await async_playwright().start()
    try:
        connected = await pw.chromium.connect_over_cdp(chromium)
        yield connected
        await connected.close()
    finally:
        await pw.stop()


@pytest.fixture
async def browser_context(browser: object) -> AsyncIterator[object]:
    from playwright.async_api import Browser

    assert isinstance(browser, Browser)
    context = await browser.new_context()
    yield context
    await context.close()
