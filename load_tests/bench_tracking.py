"""Micro-benchmark of the tracking work per request, in isolation (no sockets).

The issue's budget: tracking on must keep >= 0.90 x the reference's throughput,
which leaves about 25 µs of CPU per request for everything tracking does
(identity, enrichment with warm caches, event building, encoding, publishing).
This measures each piece with warm caches and prints the median µs per call and
the total of the pieces on the hot path.

Building blocks are always measured (uuid7-style id, ``orjson.dumps`` of a
realistic 25-field event, ``hiredis.pack_command`` of an XADD). Footfall's own
pieces are measured when they import (identity, ``EventBuilder.build`` with its
enricher, the publisher's RESP framing); otherwise they are reported as
"not available".

    .venv/bin/python load_tests/bench_tracking.py [--quick]
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import hiredis  # noqa: E402
import orjson  # noqa: E402

BUDGET_US = 25.0
USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
)


def uuid7_hex() -> str:
    """The building-block id: 48-bit ms time + 80 random bits, as 32 hex chars."""
    return f"{time.time_ns() // 1_000_000:012x}{os.urandom(10).hex()}"


def sample_event() -> dict[str, Any]:
    """A realistic event v1 (DESIGN.md 3.3): 29 fields, nested objects included."""
    return {
        "v": 1, "id": uuid7_hex(), "ts": time.time(), "kind": "pageview", "site": "shop.example",
        "method": "GET", "path": "/products/42", "route": "/products/{id}",
        "query": {"utm_source": "newsletter", "page": "2"}, "status": 200, "bytes_out": 15360,
        "content_type": "text/html", "duration_ms": 3.412, "upstream_ms": 1.204,
        "visitor": "P7t8uNfCy1AO0_ghm4itaQ", "session": "rmisy0idfctPbsfjBvTXdg",
        "new_visitor": False, "new_session": False,
        "referrer": {"url": "https://www.google.com/", "host": "www.google.com",
                     "medium": "search", "source": "Google"},
        "utm": {"source": "newsletter", "medium": "email", "campaign": "spring"},
        "ua": {"browser": "Chrome", "browser_version": "126.0.0", "os": "Windows",
               "device": "desktop"},
        "bot": False, "bot_name": None, "channel": "Email", "ip": "203.0.113.0", "country": "DE",
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "error": None, "consent": "granted",
    }  # fmt: skip


def measure(fn: Callable[[], Any], *, loops: int, repeats: int) -> float:
    """Median over ``repeats`` of the mean µs per call of ``loops`` calls."""
    fn()  # warm caches
    per_call = []
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter_ns()
        for _ in range(loops):
            fn()
        per_call.append((time.perf_counter_ns() - t0) / loops / 1000)
    return statistics.median(per_call)


def building_blocks() -> dict[str, Callable[[], Any]]:
    event = sample_event()
    payload = orjson.dumps(event)
    xadd = ("XADD", "footfall:events", "MAXLEN", "~", "1000000", "*", "event")
    return {
        "id: uuid7-style hex": uuid7_hex,
        "encode: orjson.dumps(event)": lambda: orjson.dumps(event),
        "publish: hiredis.pack_command(XADD)": lambda: hiredis.pack_command((*xadd, payload)),
    }


def footfall_pieces() -> tuple[dict[str, Callable[[], Any] | str], list[str]]:
    """Footfall's own per-request pieces, each a callable or a 'not available' reason.

    The second value names the pieces that make up the hot-path total.
    """
    pieces: dict[str, Callable[[], Any] | str] = {}
    try:
        from proxy.tracking.event import new_event_id

        pieces["id: proxy.tracking.event.new_event_id"] = new_event_id
    except Exception as exc:
        pieces["id: proxy.tracking.event.new_event_id"] = f"not available ({exc})"
    try:
        from proxy.settings import IdentitySettings
        from proxy.tracking.identity import CookieIdentity

        ident = CookieIdentity(IdentitySettings())
        first = ident.resolve(None, now=time.time(), pageview=True, secure=False, denied=False)
        cookie = "; ".join(c.split(";", 1)[0] for c in first.set_cookies) + "; theme=dark"
        now = time.time()

        def asset() -> Any:
            return ident.resolve(cookie, now=now, pageview=False, secure=False, denied=False)

        def page() -> Any:
            return ident.resolve(cookie, now=now, pageview=True, secure=False, denied=False)

        pieces["identity: returning visitor, asset"] = asset
        pieces["identity: returning visitor, pageview"] = page
    except Exception as exc:
        pieces["identity: returning visitor"] = f"not available ({exc})"
    build = _event_builder()
    if isinstance(build, str):
        pieces["build: EventBuilder.build (warm enrich)"] = build
    else:
        pieces["build: EventBuilder.build (warm enrich)"] = build
        pieces["build+encode: orjson.dumps(build())"] = lambda: orjson.dumps(build())
    try:
        from proxy.stream.rediswire import xadd_head

        head = xadd_head("footfall:events", 1_000_000)
        payload = orjson.dumps(sample_event())

        def frame() -> bytes:
            return b"".join((head, b"$%d\r\n" % len(payload), payload, b"\r\n"))

        pieces["publish: rediswire framing"] = frame
    except Exception as exc:
        pieces["publish: rediswire framing"] = f"not available ({exc})"
    total = [
        "identity: returning visitor, pageview",
        "build+encode: orjson.dumps(build())",
        "publish: rediswire framing",
    ]
    return pieces, total


def sample_exchange() -> Any:
    """A realistic pageview Exchange: returning visitor, Google referrer, a campaign."""
    from multidict import CIMultiDict, CIMultiDictProxy

    from proxy.tracking.event import Exchange

    headers = CIMultiDictProxy(CIMultiDict({
        "Host": "shop.example", "User-Agent": USER_AGENT, "Accept": "text/html",
        "Referer": "https://www.google.com/", "Cookie": "ff_vid=abc; ff_sid=def",
    }))  # fmt: skip
    return Exchange(
        ts=time.time(), method="GET", raw_path="/products/42?utm_source=newsletter&page=2",
        site="shop.example", scheme="https", headers=headers, client_ip="203.0.113.7",
        peer_trusted=False, pageview=True, status=200, bytes_out=15360,
        content_type="text/html", duration_ms=3.4, upstream_ms=1.2,
        visitor="P7t8uNfCy1AO0_ghm4itaQ", session="rmisy0idfctPbsfjBvTXdg",
        new_visitor=False, new_session=False, consent="granted",
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736", error=None,
    )  # fmt: skip


def _event_builder() -> Callable[[], Any] | str:
    """``EventBuilder.build`` bound to a realistic Exchange, or why it is unavailable."""
    try:
        from proxy.settings import Settings
        from proxy.tracking.enrich import Enricher
        from proxy.tracking.event import EventBuilder

        settings = Settings()
        builder = EventBuilder(settings, Enricher(settings.enrichment))
        ex = sample_exchange()
        builder.build(ex)
    except Exception as exc:
        return f"not available ({type(exc).__name__}: {exc})"
    return lambda: builder.build(ex)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="per-request tracking CPU budget")
    parser.add_argument("--quick", action="store_true", help="fewer loops and repeats")
    parser.add_argument("--out", type=Path, default=ROOT / "load_tests" / "results")
    args = parser.parse_args(argv)
    loops, repeats = (2_000, 3) if args.quick else (20_000, 7)

    results: dict[str, float | str] = {}
    blocks = building_blocks()
    pieces, total_names = footfall_pieces()
    for name, fn in {**blocks, **pieces}.items():
        results[name] = fn if isinstance(fn, str) else measure(fn, loops=loops, repeats=repeats)

    print(f"tracking work per request (median of {repeats} x {loops} calls, µs per call)")
    for name, value in results.items():
        shown = f"{value:9.2f}" if isinstance(value, float) else f"  {value}"
        print(f"  {name:<44}{shown}")
    hot = [results.get(n) for n in total_names]
    if all(isinstance(v, float) for v in hot):
        total = sum(v for v in hot if isinstance(v, float))
        basis = "footfall pieces: " + " + ".join(total_names)
    else:
        total = sum(v for n in blocks if isinstance(v := results[n], float))
        basis = "building blocks only (footfall pieces not available)"
    print(f"  {'total on the hot path':<44}{total:9.2f}   ({basis})")
    print(f"  budget {BUDGET_US:.0f} µs: {'within' if total <= BUDGET_US else 'OVER'}")

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / time.strftime("tracking-%Y%m%d-%H%M%S.json")
    path.write_text(json.dumps({
        "loops": loops, "repeats": repeats, "us_per_call": results, "total_us": total,
        "total_basis": basis, "budget_us": BUDGET_US, "python": sys.version.split()[0],
        "cpu_affinity": sorted(os.sched_getaffinity(0)), "loadavg": os.getloadavg(),
    }, indent=1))  # fmt: skip
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
