"""Real headless Chromium for tests (Playwright driving Debian's ``chromium``).

``playwright install`` cannot run here, so Playwright launches the system binary.
A missing binary FAILS the test that asked for a browser, with the way to fix it:
a browser test that silently skipped would prove nothing.

Use the ``browser`` fixture (sync API: the tests that use it are plain functions,
not coroutines). It is module-scoped, not session-scoped: while Playwright's sync API
is running, the thread has an event loop, and every asyncio test after it would fail
with "cannot be called from a running event loop". Closing the browser at the end of
the module gives the thread back.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

CHROMIUM = os.environ.get("FOOTFALL_CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium per test module; each test opens its own context (cookies, viewport)."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(
            f"no Chromium at {CHROMIUM}: install it (apt-get install -y chromium; .ci/run does) "
            "or point FOOTFALL_CHROMIUM at one",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True)
        yield instance
        instance.close()
