"""What the first-party beacon costs, measured. Short and bounded by design.

1. ``transform``: CPU per 15 KB HTML page of decode + inject + re-encode
   (:class:`proxy.beacon.inject.Injection`) for identity, gzip and br, in process:
   streamed in 1,460-byte chunks, and whole (``Injection.whole``, what the proxy
   does when the page arrives with its head), for gzip both a page seen before
   (splice cache hit) and a new one (miss: decode + compress).
2. ``script``: the bundled script's size, raw / gzip / br.
3. ``pages``: 15 KB HTML pageviews through two Footfall proxies (beacon on, beacon
   off; tracking off in both, so the beacon's share is not diluted), closed loop at
   50 connections, cells interleaved on/off round by round: ``gz`` the same gzip
   page every time (as a static or cached page), ``gz_unique`` a different gzip
   page for every request (4,096 variants in turn, more than the splice cache
   holds: every request a miss, the full decode + re-encode), and ``html`` the
   identity page: req/s ratio and p99 ratio (medians of per-round ratios).
4. ``cpu``: the same three pages with both proxies loaded at the same time: proxy
   CPU per request on vs off under the same contention (see :func:`bench_cpu_shared`).
5. ``endpoint``: ``POST /_ff/e`` with 20 items each, tracking on (events built and
   published to a dedicated Redis): items per second of proxy CPU time.

The proxy is pinned to CPU 0 and the load generator, upstream and Redis to the
others when the machine has more than one. Everything runs on 127.0.0.1.

    .venv/bin/python load_tests/bench_beacon.py [--rounds 3] [--duration 5] [--only transform,script,...] [--save]
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import gzip  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import brotli  # noqa: E402
import orjson  # noqa: E402

from load_tests import loadgen  # noqa: E402
from load_tests.upstream import wait_http  # noqa: E402

_WORDS = [
    "shoe", "price", "order", "delivery", "colour", "size", "return", "basket", "gift", "review", "stock",
    "summer", "winter", "cotton", "leather", "classic", "modern", "sale", "free", "fast", "premium",
    "account", "wishlist", "compare", "newsletter", "store", "brand", "quality", "material", "fit",
]  # fmt: skip


def html_page(size: int = 15 * 1024) -> bytes:
    """A 15 KB page that compresses like a real one (~4:1 with gzip), not like a
    repeated paragraph."""
    rng = random.Random(15)
    out = ['<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>Bench shop</title>'
           '<link rel="stylesheet" href="/s.css"></head><body>\n']  # fmt: skip
    while sum(map(len, out)) < size - 200:
        words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(8, 30)))
        out.append(f'<p class="c{rng.randint(1, 99)}">{words} <a href="/p/{rng.randint(1, 99999)}">more</a></p>\n')
    body = "".join(out) + "</body></html>\n"
    return (body + " " * (size - len(body))).encode()


PAGE = html_page()
PAGE_GZ = gzip.compress(PAGE, 6)
PAGE_BR = brotli.compress(PAGE, quality=5)
VARIANTS = 4096  # distinct gzip pages served in turn by /gzu


def page_variant(i: int) -> bytes:
    """The page with a per-request token near its end (a CSRF token, a timestamp):
    same size, different bytes."""
    token = b'<input type="hidden" name="csrf" value="%032x">' % (i * 2654435761 % (1 << 128))
    cut = len(PAGE) - 200
    return PAGE[:cut] + token + PAGE[cut + len(token) :]


# --- 1. the transform ----------------------------------------------------------------


def bench_transform(pages: int = 2000) -> dict[str, Any]:
    """CPU per page, the body cut in 1,460-byte chunks (one TCP segment each):
    ``us_per_page`` as the proxy runs it when the upstream sends faster than it is
    read (more bytes in hand at every chunk: one encoder stream, flushed at the end),
    ``us_per_page_flush_each`` when every chunk arrives alone (a flush per chunk)."""
    from proxy.beacon.inject import Injection
    from proxy.beacon.injector import SPLICE_CACHE_BYTES
    from proxy.beacon.splice import SpliceCache

    tag = b'<script src="/_ff/0123456789ab.js" defer data-ff-page="0190a1b2c3d47e8f9a0b1c2d3e4f5a6b"></script>'
    out: dict[str, Any] = {"page_bytes": len(PAGE), "gzip_bytes": len(PAGE_GZ), "br_bytes": len(PAGE_BR)}
    for coding, body in (("identity", PAGE), ("gzip", PAGE_GZ), ("br", PAGE_BR)):
        chunks = [body[i : i + 1460] for i in range(0, len(body), 1460)]
        row: dict[str, float] = {}
        for key, more in (("us_per_page", True), ("us_per_page_flush_each", False)):
            size = 0
            t0 = time.process_time()
            for _ in range(pages):
                inj = Injection(tag, "" if coding == "identity" else coding)
                for c in chunks:
                    size += len(inj.feed(c, more))
                size += len(inj.finish())
            row[key] = round((time.process_time() - t0) / pages * 1e6, 1)
            row["out_bytes" if more else "out_bytes_flush_each"] = size // pages
        # Whole: the body in hand at once, as the proxy gets a small page.
        coding = "" if coding == "identity" else coding
        cache = SpliceCache(SPLICE_CACHE_BYTES)
        t0 = time.process_time()
        for i in range(pages):
            page_id = f"{i:032x}"
            size = len(Injection(tag.replace(b"0190a1b2c3d47e8f9a0b1c2d3e4f5a6b", page_id.encode()), coding,
                                 page_id=page_id, cache=cache).whole(body))  # fmt: skip
        row["us_per_page_whole"] = round((time.process_time() - t0) / pages * 1e6, 1)
        row["out_bytes_whole"] = size
        if coding == "gzip":  # the cell above hit the cache (after the first page); now every page new
            row["us_per_page_whole_cache_hit"] = row.pop("us_per_page_whole")
            bodies = [gzip.compress(page_variant(i), 6) for i in range(200)]
            t0 = time.process_time()
            for i in range(pages):
                page_id = f"{i:032x}"
                Injection(tag.replace(b"0190a1b2c3d47e8f9a0b1c2d3e4f5a6b", page_id.encode()), coding,
                          page_id=page_id, cache=SpliceCache(SPLICE_CACHE_BYTES)).whole(bodies[i % 200])  # fmt: skip
            row["us_per_page_whole_cache_miss"] = round((time.process_time() - t0) / pages * 1e6, 1)
        out[coding or "identity"] = row
    return out


def bench_script() -> dict[str, int]:
    from proxy.beacon.script import bundle

    b = bundle()
    return {"raw": len(b.body), "gzip": len(b.gzip), "br": len(b.br)}


# --- processes -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Upstream(asyncio.Protocol):
    """Minimal keep-alive HTTP/1.1 server: /gz → the page gzip-encoded, /gzu → the
    next of :data:`VARIANTS` gzip pages, else identity."""

    UNIQUE: list[bytes] = []
    served = 0
    RESP = {
        b"/gz": b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Encoding: gzip\r\n"
        b"Content-Length: %d\r\n\r\n" % len(PAGE_GZ) + PAGE_GZ,
        b"/html": b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
        b"Content-Length: %d\r\n\r\n" % len(PAGE) + PAGE,
    }

    def connection_made(self, transport: Any) -> None:
        self.t = transport
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while b"\r\n\r\n" in self.buf:
            head, _, self.buf = self.buf.partition(b"\r\n\r\n")
            path = head.split(b" ", 2)[1]
            if path == b"/gzu":
                Upstream.served += 1
                self.t.write(self.UNIQUE[Upstream.served % len(self.UNIQUE)])
                continue
            self.t.write(self.RESP.get(path, self.RESP[b"/html"]))


def serve_upstream(port: int) -> None:
    for i in range(VARIANTS):
        body = gzip.compress(page_variant(i), 6)
        Upstream.UNIQUE.append(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Encoding: gzip\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body) + body
        )

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Upstream, "127.0.0.1", port, backlog=1024)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def pin(pid: int, cpus: set[int]) -> None:
    if (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(pid, cpus)


def start_proxy(
    upstream: str, tmp: Path, name: str, beacon: bool, redis_url: str | None
) -> tuple[subprocess.Popen[bytes], int]:
    port, admin = free_port(), free_port()
    config = tmp / f"{name}.toml"
    config.write_text("[beacon]\nrate_per_second = 1000000.0\nrate_burst = 1000000\n")
    exe = str(Path(sys.executable).with_name("footfall"))
    cmd = [exe, "proxy", "--upstream", upstream, "--listen", f"127.0.0.1:{port}", "--admin-listen",
           f"127.0.0.1:{admin}", "--data-dir", str(tmp / name), "--config", str(config), "--log-level", "WARNING",
           "--beacon", "on" if beacon else "off"]  # fmt: skip
    if redis_url:
        cmd += ["--redis-url", redis_url]
    else:
        cmd += ["--tracking", "off"]
    # This checkout's code, not whichever one the venv has installed (editable).
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "FOOTFALL_COOKIE_SECRET": loadgen.BENCH_COOKIE_SECRET, "PYTHONPATH": path}
    proc = subprocess.Popen(cmd, env=env)
    if not wait_http(f"http://127.0.0.1:{admin}/readyz", 20):
        proc.kill()
        raise RuntimeError(f"proxy {name} did not start")
    pin(proc.pid, {0})
    return proc, port


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def get_requests(path: str) -> list[bytes]:
    head = (f"GET {path} HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: {loadgen.USER_AGENT}\r\n"
            f"Accept: {loadgen.ACCEPT_HTML}\r\nAccept-Encoding: gzip, deflate, br\r\n")  # fmt: skip
    return [(head + "\r\n").encode(), (head + f"Cookie: {loadgen.returning_visitor_cookie()}\r\n\r\n").encode()]


def post_requests(items_per_post: int) -> list[bytes]:
    items = [{"kind": "vitals", "page_id": f"{i:032x}", "url": "/products/42?utm_source=news",
              "referrer": "https://www.google.com/", "vitals": {"lcp": 1234.5, "cls": 0.02, "ttfb": 120}}
             for i in range(items_per_post)]  # fmt: skip
    body = orjson.dumps({"items": items})
    head = (f"POST /_ff/e HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: {loadgen.USER_AGENT}\r\n"
            f"Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {len(body)}\r\n"
            f"Cookie: {loadgen.returning_visitor_cookie()}\r\n\r\n")  # fmt: skip
    return [head.encode() + body]


# --- 3, 4 and 5: load ---------------------------------------------------------------


async def load(port: int, requests: list[bytes], connections: int, duration: float) -> dict[str, Any]:
    return await loadgen.closed_loop("127.0.0.1", port, requests, connections=connections, duration=duration)


def bench_pages(upstream: str, tmp: Path, rounds: int, duration: float) -> dict[str, Any]:
    on, on_port = start_proxy(upstream, tmp, "on", True, None)
    off, off_port = start_proxy(upstream, tmp, "off", False, None)
    results: dict[str, Any] = {}
    try:
        for path in ("/gz", "/gzu", "/html"):
            reqs = get_requests(path)
            cells: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}
            for r in range(rounds):
                order = [("off", off_port), ("on", on_port)] if r % 2 == 0 else [("on", on_port), ("off", off_port)]
                for name, port in order:
                    pid = (on if name == "on" else off).pid
                    cpu0 = cpu_seconds(pid)
                    cell = asyncio.run(load(port, reqs, 50, duration))
                    cell["proxy_cpu_us"] = (cpu_seconds(pid) - cpu0) / max(cell["requests"], 1) * 1e6
                    cells[name].append(cell)
            rps = [a["rps"] / b["rps"] for a, b in zip(cells["on"], cells["off"], strict=True)]
            p99 = [a["latency_us"]["p99"] / b["latency_us"]["p99"]
                   for a, b in zip(cells["on"], cells["off"], strict=True)]  # fmt: skip
            results[{"/gzu": "gz_unique"}.get(path, path.strip("/"))] = {
                "rps_on": round(statistics.median(c["rps"] for c in cells["on"])),
                "rps_off": round(statistics.median(c["rps"] for c in cells["off"])),
                "p99_us_on": round(statistics.median(c["latency_us"]["p99"] for c in cells["on"])),
                "p99_us_off": round(statistics.median(c["latency_us"]["p99"] for c in cells["off"])),
                "proxy_cpu_us_per_request_on": round(statistics.median(c["proxy_cpu_us"] for c in cells["on"])),
                "proxy_cpu_us_per_request_off": round(statistics.median(c["proxy_cpu_us"] for c in cells["off"])),
                "throughput_ratio": round(statistics.median(rps), 3),
                "p99_ratio": round(statistics.median(p99), 3),
                "errors": sum(c["errors"] + c["bad_status"] for c in cells["on"] + cells["off"]),
            }
    finally:
        for p in (on, off):
            p.terminate()
            p.wait(15)
    return results


def bench_cpu_shared(upstream: str, tmp: Path, rounds: int, duration: float) -> dict[str, Any]:
    """Proxy CPU per request, beacon on and off loaded *at the same time* (both on
    CPU 0, 50 connections each): whatever else runs on the machine slows both
    alike, so their ratio holds even where interleaved cells drift apart. The
    ratio is what a CPU-bound proxy's throughput ratio would be (off / on)."""
    on, on_port = start_proxy(upstream, tmp, "shared-on", True, None)
    off, off_port = start_proxy(upstream, tmp, "shared-off", False, None)
    results: dict[str, Any] = {}

    async def both(reqs: list[bytes]) -> list[dict[str, Any]]:
        return list(await asyncio.gather(load(on_port, reqs, 50, duration), load(off_port, reqs, 50, duration)))

    try:
        for path in ("/gz", "/gzu", "/html"):
            reqs = get_requests(path)
            ratios, cpu_on, cpu_off = [], [], []
            for _ in range(rounds):
                c0 = cpu_seconds(on.pid), cpu_seconds(off.pid)
                a, b = asyncio.run(both(reqs))
                us_on = (cpu_seconds(on.pid) - c0[0]) / max(a["requests"], 1) * 1e6
                us_off = (cpu_seconds(off.pid) - c0[1]) / max(b["requests"], 1) * 1e6
                cpu_on.append(us_on)
                cpu_off.append(us_off)
                ratios.append(us_off / us_on)
            results[{"/gzu": "gz_unique"}.get(path, path.strip("/"))] = {
                "proxy_cpu_us_per_request_on": round(statistics.median(cpu_on)),
                "proxy_cpu_us_per_request_off": round(statistics.median(cpu_off)),
                "cpu_ratio_off_over_on": round(statistics.median(ratios), 3),
                "rounds": [round(r, 3) for r in ratios],
            }
    finally:
        for p in (on, off):
            p.terminate()
            p.wait(15)
    return results


def bench_endpoint(upstream: str, tmp: Path, duration: float, items_per_post: int = 20) -> dict[str, Any]:
    from proxy.stream.embedded import EmbeddedRedis

    redis = EmbeddedRedis(tmp / "redis", port=free_port()).start()
    proc, port = start_proxy(upstream, tmp, "endpoint", True, redis.url)
    try:
        cpu0 = cpu_seconds(proc.pid)
        stats = asyncio.run(load(port, post_requests(items_per_post), 8, duration))
        time.sleep(1.0)  # let the flush task build and publish the tail of the events
        cpu = cpu_seconds(proc.pid) - cpu0
    finally:
        proc.terminate()
        proc.wait(15)
        redis.kill()
    items = stats["ok"] * items_per_post
    return {
        "posts": stats["ok"], "items": items, "errors": stats["errors"] + stats["bad_status"],
        "items_per_s_wall": round(items / stats["elapsed_s"]),
        "items_per_cpu_s": round(items / cpu) if cpu else None,
        "proxy_cpu_s": round(cpu, 2),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per load cell")
    parser.add_argument("--only", default="transform,script,pages,cpu,endpoint")
    parser.add_argument("--save", action="store_true", help="write load_tests/results/bench_beacon-<time>.json")
    args = parser.parse_args()
    only = set(args.only.split(","))
    report: dict[str, Any] = {"cpus": os.cpu_count(), "load": os.getloadavg()}
    if "transform" in only:
        report["transform"] = bench_transform()
        print("transform", report["transform"], flush=True)
    if "script" in only:
        report["script"] = bench_script()
        print("script", report["script"], flush=True)
    if only & {"pages", "cpu", "endpoint"}:
        import multiprocessing

        port = free_port()
        up = multiprocessing.Process(target=serve_upstream, args=(port,), daemon=True)
        up.start()
        try:
            if up.pid is not None:
                pin(up.pid, set(range(1, os.cpu_count() or 1)) or {0})
            pin(os.getpid(), set(range(1, os.cpu_count() or 1)) or {0})
            upstream = f"http://127.0.0.1:{port}"
            if not wait_http(upstream + "/html", 60):  # it compresses its page variants first
                raise RuntimeError("the upstream did not start")
            with tempfile.TemporaryDirectory(prefix="bench-beacon-") as tmp:
                if "pages" in only:
                    report["pages"] = bench_pages(upstream, Path(tmp), args.rounds, args.duration)
                    print("pages", report["pages"], flush=True)
                if "cpu" in only:
                    report["cpu_shared"] = bench_cpu_shared(upstream, Path(tmp), args.rounds, args.duration)
                    print("cpu_shared", report["cpu_shared"], flush=True)
                if "endpoint" in only:
                    report["endpoint"] = bench_endpoint(upstream, Path(tmp), args.duration)
                    print("endpoint", report["endpoint"], flush=True)
        finally:
            up.terminate()
            up.join(5)
    report["commit"] = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    report["load_after"] = os.getloadavg()
    text = orjson.dumps(report, option=orjson.OPT_INDENT_2).decode()
    print(text)
    if args.save:
        out = ROOT / "load_tests" / "results" / f"bench_beacon-{time.strftime('%Y%m%d-%H%M%S')}.json"
        out.write_text(text + "\n")
        print("saved", out)


if __name__ == "__main__":
    main()
