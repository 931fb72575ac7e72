"""The benchmark's own parts are correct: the generator counts and measures right,
the upstream serves the payloads, the reference proxy forwards faithfully.
No timing is asserted: these machines are noisy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from load_tests import loadgen, reference_proxy
from load_tests.bench import count_events
from load_tests.upstream import DOWNLOAD_BODY, HTML_BODY, PAYLOADS, SMALL_BODY, serve_python
from proxy.stream.embedded import EmbeddedRedis, free_port


@pytest.mark.parametrize(
    ("p", "expected"),
    [(0, 1), (1, 1), (50, 50), (90, 90), (99, 99), (99.9, 100), (100, 100)],
)
def test_percentile_nearest_rank(p: float, expected: float) -> None:
    assert loadgen.percentile([float(v) for v in range(1, 101)], p) == expected


def test_percentile_small_and_empty() -> None:
    assert loadgen.percentile([7.0], 99) == 7.0
    assert loadgen.percentile([1.0, 2.0], 50) == 1.0
    assert loadgen.percentile([], 50) != loadgen.percentile([], 50)  # nan


def test_summarize_in_microseconds() -> None:
    s = loadgen.summarize_us([0.001] * 99 + [0.1])
    assert s["p50"] == pytest.approx(1000)
    assert s["p99"] == pytest.approx(1000)
    assert s["max"] == pytest.approx(100_000)


def test_request_mix_cookie_and_referer_pattern() -> None:
    mix = loadgen.request_mix(PAYLOADS["15KB"], "h:1", cookie="a=b")
    assert len(mix) == loadgen.MIX_SIZE
    assert b"Cookie:" not in mix[0]
    assert all(b"Cookie: a=b\r\n" in r for r in mix[1:])
    assert sum(b"Referer:" in r for r in mix) == 3
    assert all(b"Accept: text/html" in r for r in mix)
    post = loadgen.request_mix(PAYLOADS["post64KB"], "h:1")[0]
    head, _, body = post.partition(b"\r\n\r\n")
    assert len(body) == 64 * 1024
    assert b"Content-Length: 65536" in head


def test_wrk_script_and_parse() -> None:
    script = loadgen.wrk_script(PAYLOADS["post64KB"], "127.0.0.1:1", cookie='x="1"')
    assert 'string.rep("x", 65536)' in script
    assert '\\"1\\"' in script
    out = loadgen.WRK_MARK + (
        '{"requests":100,"duration_us":2000000,"bytes":5,"connect":0,"read":1,"write":0,'
        '"status":2,"timeout":0,"p50":10,"p90":20,"p99":30,"p999":40,"max":50,"mean":11.5}'
    )
    r = loadgen.parse_wrk("Running 2s test\n" + out + "\n")
    assert r["rps"] == 50
    assert r["errors"] == 1
    assert r["bad_status"] == 2
    assert r["latency_us"]["p99"] == 30


@pytest.fixture
async def upstream() -> AsyncIterator[int]:
    port = free_port()
    server = await serve_python("127.0.0.1", port)
    yield port
    server.close()
    await server.wait_closed()


@pytest.mark.parametrize("name", ["200B", "15KB", "1MB", "post64KB"])
async def test_closed_loop_counts_exactly(upstream: int, name: str) -> None:
    mix = loadgen.request_mix(PAYLOADS[name], f"127.0.0.1:{upstream}")
    r = await loadgen.closed_loop("127.0.0.1", upstream, mix, connections=4, duration=30, max_requests=37)
    assert r["requests"] == r["ok"] == 37
    assert r["errors"] == 0
    assert r["bytes_in"] == 37 * PAYLOADS[name].response_bytes
    assert len({round(v, 3) for v in r["latency_us"].values()}) > 1


async def test_open_loop_sends_every_scheduled_request(upstream: int) -> None:
    mix = loadgen.request_mix(PAYLOADS["200B"], "x")
    r = await loadgen.open_loop("127.0.0.1", upstream, mix, connections=5, rate=200, duration=0.5)
    assert r["requests"] == 100
    assert r["errors"] == r["unsent"] == 0
    # latency counts from the scheduled time, so it is never below the service time
    assert r["latency_us"]["p50"] >= r["service_us"]["p50"] * 0.999


async def test_errors_are_counted_not_raised() -> None:
    port = free_port()  # nothing listens here
    mix = loadgen.request_mix(PAYLOADS["200B"], "x")
    r = await loadgen.closed_loop("127.0.0.1", port, mix, connections=2, duration=0.3)
    assert r["requests"] == 0
    assert r["errors"] > 0


async def test_hold_idle(upstream: int) -> None:
    seen: list[int] = []
    raw = loadgen.request_mix(PAYLOADS["200B"], "x")[1]
    held, result = await loadgen.hold_idle("127.0.0.1", upstream, raw, 50, lambda n: seen.append(n) or "m")
    assert held == 50
    assert seen == [50]
    assert result == "m"


async def test_chunked_response_is_parsed() -> None:
    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for _ in range(3):
            await resp.write(b"a" * 1000)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/small", chunked)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        mix = loadgen.request_mix(PAYLOADS["200B"], "x")
        r = await loadgen.closed_loop("127.0.0.1", port, mix, connections=2, duration=30, max_requests=10)
        assert r["ok"] == 10
        assert r["bytes_in"] == 10 * 3000
    finally:
        await runner.cleanup()


@pytest.fixture
async def reference(upstream: int) -> AsyncIterator[int]:
    runner = web.AppRunner(reference_proxy.make_app(f"http://127.0.0.1:{upstream}"))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield port
    await runner.cleanup()


@pytest.mark.parametrize(
    ("path", "body"), [("/small", SMALL_BODY), ("/page.html", HTML_BODY), ("/download", DOWNLOAD_BODY)]
)
async def test_reference_proxy_forwards(reference: int, path: str, body: bytes) -> None:
    async with (
        aiohttp.ClientSession(auto_decompress=False) as s,
        s.get(f"http://127.0.0.1:{reference}{path}", headers={"Connection": "keep-alive, X-Drop", "X-Drop": "1"}) as r,
    ):
        assert r.status == 200
        assert await r.read() == body
        assert r.headers["Server"] == "bench-upstream"


async def test_reference_proxy_post_and_404(reference: int) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.post(f"http://127.0.0.1:{reference}/upload", data=b"x" * 65536) as r:
            assert (r.status, await r.read()) == (200, b"ok\n")
        async with s.get(f"http://127.0.0.1:{reference}/nope") as r:
            assert r.status == 404


def test_hop_by_hop_headers_removed() -> None:
    from multidict import CIMultiDict, CIMultiDictProxy

    h = CIMultiDictProxy(
        CIMultiDict(
            [
                ("Connection", "close, X-Secret"),
                ("X-Secret", "1"),
                ("Keep-Alive", "5"),
                ("Set-Cookie", "a=1"),
                ("Set-Cookie", "b=2"),
            ]
        )
    )
    out = reference_proxy._forwardable(h)
    assert list(out.items()) == [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]


async def test_reference_proxy_under_the_generator(reference: int) -> None:
    mix = loadgen.request_mix(PAYLOADS["15KB"], "x")
    r = await loadgen.closed_loop("127.0.0.1", reference, mix, connections=5, duration=30, max_requests=60)
    assert r["ok"] == 60
    assert r["bytes_in"] == 60 * len(HTML_BODY)


def test_count_events_delay_and_uniques(redis_server: EmbeddedRedis) -> None:
    import time

    import orjson
    import redis

    r: Any = redis.Redis.from_url(redis_server.url)
    now = time.time()
    for i in range(5):  # event i ended 100 ms before it was added
        event = {"id": f"e{i % 4}", "ts": now - 0.3, "duration_ms": 200.0}
        r.xadd("footfall:events", {"event": orjson.dumps(event)})
    got = count_events(r, elapsed=1.0)
    assert got["entries"] == 5
    assert got["unique"] == 4
    assert 90 <= got["delay_ms_p50"] < 1000
    r.close()
