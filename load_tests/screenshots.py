"""Screenshots of the dashboard: desktop and phone, light and dark, in headless Chromium.

    python load_tests/screenshots.py                        # starts `footfall demo`, waits, shoots
    python load_tests/screenshots.py --sample               # `footfall run` with 8 weeks of sample data
    python load_tests/screenshots.py --url http://127.0.0.1:9108/dashboard [--token T]

Writes ``desktop-light.png``, ``desktop-dark.png``, ``phone-light.png`` and
``phone-dark.png`` to ``--out`` (default ``load_tests/screenshots/``, not committed).
``--readme`` also writes the desktop light one, scaled, to ``docs/dashboard.png``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser import ARGS as LAUNCH_ARGS  # noqa: E402
from tests.browser import CHROMIUM  # noqa: E402

VIEWS = {"desktop": {"width": 1366, "height": 900}, "phone": {"width": 390, "height": 844}}


def wait_for(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"{url} did not answer within {seconds:.0f} s")


def shoot(url: str, out: Path, token: str | None, readme: bool) -> list[Path]:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    written = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True)
        for view, size in VIEWS.items():
            for scheme in ("light", "dark"):
                context = browser.new_context(
                    viewport=size, color_scheme=scheme, device_scale_factor=1 if view == "desktop" else 2,
                    is_mobile=view == "phone", has_touch=view == "phone",
                )  # fmt: skip
                page = context.new_page()
                page.goto(url)
                if token and "/login" in page.url:
                    page.fill("#token", token)
                    page.click("button[type=submit]")
                page.wait_for_selector("body[data-ready]", timeout=30_000)
                page.wait_for_timeout(300)  # the chart's first paint
                path = out / f"{view}-{scheme}.png"
                page.screenshot(path=str(path), full_page=True)
                written.append(path)
                if readme and view == "desktop" and scheme == "light":
                    docs = ROOT / "docs"
                    docs.mkdir(exist_ok=True)
                    page.screenshot(path=str(docs / "dashboard.png"), full_page=False)
                    written.append(docs / "dashboard.png")
                context.close()
        browser.close()
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="dashboard URL; default: start `footfall demo` on free ports")
    parser.add_argument("--token", default=os.environ.get("FOOTFALL_ADMIN_TOKEN"), help="admin token, if set")
    parser.add_argument("--out", type=Path, default=ROOT / "load_tests" / "screenshots")
    parser.add_argument("--warmup", type=float, default=60, help="seconds of demo traffic before shooting")
    parser.add_argument("--readme", action="store_true", help="also write docs/dashboard.png")
    parser.add_argument("--sample", action="store_true",
                        help="footfall run with the browser tests' 8 weeks of sample data instead of the demo")
    args = parser.parse_args()
    if args.url:
        for path in shoot(args.url, args.out, args.token, args.readme):
            print(path)
        return 0
    if args.sample:
        from tests.collectors.dashboard.conftest import SITE, TOKEN, running

        with tempfile.TemporaryDirectory() as root, running(Path(root)) as app:
            for path in shoot(f"{app.admin}/dashboard?site={SITE}&period=30d", args.out, TOKEN, args.readme):
                print(path)
        return 0
    from proxy.stream.embedded import free_port

    port, admin = free_port(), free_port()
    with tempfile.TemporaryDirectory() as data:
        proc = subprocess.Popen(
            [sys.executable, "-m", "proxy.cli", "demo", "--listen", f"127.0.0.1:{port}",
             "--admin-listen", f"127.0.0.1:{admin}", "--data-dir", data],  # fmt: skip
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(f"http://127.0.0.1:{admin}/readyz", 60)
            time.sleep(args.warmup)
            for path in shoot(f"http://127.0.0.1:{admin}/dashboard", args.out, None, args.readme):
                print(path)
        finally:
            proc.terminate()
            proc.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
