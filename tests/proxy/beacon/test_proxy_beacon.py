"""The beacon in the real proxy: injection on real sockets, the endpoint under bad
input, and the events both make, read back from a real Redis stream."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from typing import Any

import aiohttp
import brotli
import orjson
from aiohttp import web

from proxy.beacon.script import bundle
from tests.proxy.tracking.test_tracking import CHROME, NAV, SCHEMA, browser, events

PAGE = b"<!doctype html><html><head><title>t</title></head><body>" + b"<p>hello</p>" * 200 + b"</body></html>"
STRICT = "default-src 'self'; script-src 'strict-dynamic' 'nonce-abc'"


def site_app(hits: list[str]) -> web.Application:
    async def page(request: web.Request) -> web.Response:
        hits.append(request.raw_path)
        headers = {"ETag": '"v1"', "Content-Type": "text/html; charset=utf-8"}
        if request.query.get("csp") == "strict":
            headers["Content-Security-Policy"] = "script-src 'self' 'strict-dynamic'"
        elif request.query.get("csp") == "nonce":
            headers["Content-Security-Policy"] = STRICT
        body = PAGE
        if request.query.get("enc") == "gzip":
            body, headers["Content-Encoding"] = gzip.compress(PAGE, mtime=0), "gzip"  # the same bytes each time
        elif request.query.get("enc") == "br":
            body, headers["Content-Encoding"] = brotli.compress(PAGE), "br"
        elif request.query.get("enc") == "weird":
            headers["Content-Encoding"] = "compress"
        return web.Response(body=body, headers=headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", page)
    return app


def metric(proxy: Any, name: str, **labels: str) -> float:
    return proxy.metrics.registry.get_sample_value(name, labels) or 0.0


async def start(
    upstream_factory, proxy_factory, redis_url: str | None = None, **extra: Any
) -> tuple[Any, str, list[str]]:
    hits: list[str] = []
    upstream = await upstream_factory(site_app(hits))
    proxy = await proxy_factory({"upstreams": [upstream], "beacon.enabled": True, **extra}, redis_url=redis_url)
    return proxy, f"http://127.0.0.1:{proxy.port}", hits


def tag_of(page_id: str, nonce: str = "") -> bytes:
    extra = f' nonce="{nonce}"' if nonce else ""
    return f'<script src="/_ff/{bundle().name}" defer data-ff-page="{page_id}"{extra}></script>'.encode()


async def test_pages_get_the_tag_in_every_encoding_and_the_pageview_is_named(
    upstream_factory, proxy_factory, redis_server, redis_client
) -> None:
    proxy, base, _ = await start(upstream_factory, proxy_factory, redis_server.url)
    ids = []
    gzip_seen = 0
    async with aiohttp.ClientSession(auto_decompress=False) as client:
        # gzip three times: compressed whole, then admitted to the splice cache, then
        # from it; each with its own page id
        for enc in ("identity", "gzip", "br", "gzip", "gzip"):
            async with client.get(f"{base}/p?enc={enc}", headers={**NAV, "Accept-Encoding": "gzip, br"}) as resp:
                raw = await resp.read()
                assert resp.headers.get("Content-Encoding", "identity") == enc
                # The small page came whole with its head: its exact new length, not chunked.
                assert resp.headers["Content-Length"] == str(len(raw)) and "Transfer-Encoding" not in resp.headers
                assert resp.headers["ETag"] == 'W/"v1"'
                timing = resp.headers["Server-Timing"]
                page_id = timing.split('ff;desc="')[1][:32]
                assert "ff-origin;dur=" in timing and "ff-proxy;dur=" in timing
            if enc == "gzip":  # the second and third built around the page id: a stored block after the header
                spliced = raw[:11] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff\x00"
                assert spliced == (gzip_seen > 0), gzip_seen
                gzip_seen += 1
            body = gzip.decompress(raw) if enc == "gzip" else brotli.decompress(raw) if enc == "br" else raw
            assert body == PAGE.replace(b"<head>", b"<head>" + tag_of(page_id))
            ids.append(page_id)
    assert len(set(ids)) == 5
    got = await events(redis_client, 5)
    assert [e["id"] for e in got] == ids and [e["page_id"] for e in got] == ids
    assert all(e["via"] == "proxy" and e["kind"] == "pageview" for e in got)
    for e in got:
        SCHEMA.validate(e)
    assert metric(proxy, "footfall_beacon_injected_total") == 5


async def test_skips_leave_the_page_byte_identical_and_are_counted(upstream_factory, proxy_factory) -> None:
    proxy, base, _ = await start(upstream_factory, proxy_factory)
    async with aiohttp.ClientSession(auto_decompress=False) as client:
        cases = [
            ("/p?csp=strict", NAV, "csp"),
            ("/p?enc=weird", NAV, "encoding"),
            ("/p", {"User-Agent": CHROME, "Sec-Fetch-Dest": "empty"}, "not_navigation"),
        ]
        for path, headers, reason in cases:
            async with client.get(base + path, headers=headers) as resp:
                assert await resp.read() == PAGE
                assert resp.headers["ETag"] == '"v1"' and "Server-Timing" not in resp.headers
            assert metric(proxy, "footfall_beacon_skipped_total", reason=reason) == 1, reason
        async with client.get(base + "/p?csp=nonce", headers=NAV) as resp:
            body = await resp.read()
            page_id = resp.headers["Server-Timing"].split('ff;desc="')[1][:32]
        assert body == PAGE.replace(b"<head>", b"<head>" + tag_of(page_id, "abc"))
        async with client.head(base + "/p", headers=NAV) as resp:
            assert "Server-Timing" not in resp.headers
    assert metric(proxy, "footfall_beacon_injected_total") == 1


async def test_beacon_off_for_a_site_forwards_its_prefix(upstream_factory, proxy_factory) -> None:
    proxy, base, hits = await start(upstream_factory, proxy_factory, **{"beacon.sites_off": ["127.0.0.1"]})
    async with aiohttp.ClientSession() as client:
        async with client.post(f"{base}/_ff/e", data=b"{}") as resp:
            assert resp.status == 200
        async with client.get(f"{base}/p", headers=NAV) as resp:
            assert await resp.read() == PAGE
    assert hits == ["/_ff/e", "/p"]
    assert metric(proxy, "footfall_beacon_skipped_total", reason="site_off") == 1


async def test_script_is_served_by_the_proxy(upstream_factory, proxy_factory) -> None:
    _proxy, base, hits = await start(upstream_factory, proxy_factory)
    b = bundle()
    async with aiohttp.ClientSession(auto_decompress=False) as client:
        async with client.get(f"{base}/_ff/{b.name}", headers={"Accept-Encoding": "gzip, br"}) as resp:
            assert resp.status == 200 and resp.headers["Content-Encoding"] == "br"
            assert "immutable" in resp.headers["Cache-Control"]
            assert brotli.decompress(await resp.read()) == b.body
            etag = resp.headers["ETag"]
        async with client.get(f"{base}/_ff/{b.name}", headers={"Accept-Encoding": "br", "If-None-Match": etag}) as resp:
            assert resp.status == 304
        async with client.get(f"{base}/_ff/old.js") as resp:
            assert resp.status == 200 and resp.headers["Cache-Control"] == "public, max-age=300"
        async with client.get(f"{base}/_ff/nothing") as resp:
            assert resp.status == 404
        async with client.get(f"{base}/_ff/e") as resp:
            assert resp.status == 405
    assert len(b.br) <= 4096
    assert hits == []


PID = "0190a1b2c3d47e8f9a0b1c2d3e4f5a6b"


def items(*entries: dict[str, Any]) -> bytes:
    return orjson.dumps({"items": list(entries)})


async def test_endpoint_turns_items_into_enriched_events(
    upstream_factory, proxy_factory, redis_server, redis_client
) -> None:
    proxy, base, hits = await start(upstream_factory, proxy_factory, redis_server.url)
    async with browser() as client:
        async with client.get(f"{base}/landing?utm_source=news", headers={**NAV, "Referer": "https://www.google.com/"}):
            pass
        body = items(
            {"kind": "vitals", "page_id": PID, "url": "/landing?utm_source=news", "referrer": "https://www.google.com/",
             "vitals": {"lcp": 1200.4, "cls": 0.05, "ttfb": 80}, "unknown": "ignored"},
            {"kind": "engagement", "page_id": PID, "url": "/landing", "engaged_ms": 5300, "scroll_depth": 80},
            {"kind": "custom", "page_id": PID, "url": "/landing", "name": "signup", "props": {"plan": "pro"}},
            {"kind": "click", "page_id": PID, "url": "/landing", "name": "outbound",
             "props": {"url": "https://example.org/x"}},
            {"kind": "pageview", "page_id": "1" * 32, "url": "/app/settings", "referrer": "http://x/landing"},
        )  # fmt: skip
        async with client.post(f"{base}/_ff/e", data=body, headers={"User-Agent": CHROME,
                               "Content-Type": "text/plain;charset=UTF-8"}) as resp:  # fmt: skip
            assert resp.status == 204
    got = await events(redis_client, 6)
    page, vitals, engagement, custom, click, spa = got
    assert hits == ["/landing?utm_source=news"]  # nothing of the beacon upstream
    for e in got[1:]:
        SCHEMA.validate(e)
        assert e["via"] == "beacon" and e["visitor"] == page["visitor"] and e["session"] == page["session"]
        assert e["ua"]["browser"] == "Chrome"
        assert e["id"] != page["id"]
    assert vitals["kind"] == "vitals" and vitals["vitals"] == {"lcp": 1200.4, "cls": 0.05, "ttfb": 80.0}
    assert vitals["page_id"] == PID and "unknown" not in vitals
    assert vitals["utm"]["source"] == "news" and vitals["referrer"]["host"] == "www.google.com"
    assert (engagement["engaged_ms"], engagement["scroll_depth"]) == (5300, 80)
    assert (custom["name"], custom["props"]) == ("signup", {"plan": "pro"})
    assert (click["name"], click["props"]) == ("outbound", {"url": "https://example.org/x"})
    assert spa["kind"] == "pageview" and spa["page_id"] == "1" * 32 and spa["path"] == "/app/settings"
    assert metric(proxy, "footfall_beacon_items_accepted_total", kind="vitals") == 1
    # beacon events are not responses: the proxy's request metrics did not see them
    assert metric(proxy, "footfall_http_responses_total", site="127.0.0.1", status="200") == 1


async def test_endpoint_under_bad_input(upstream_factory, proxy_factory, redis_server, redis_client) -> None:
    proxy, base, hits = await start(upstream_factory, proxy_factory, redis_server.url,
                                    **{"beacon.rate_burst": 5, "beacon.rate_per_second": 0.01})  # fmt: skip
    good = {"kind": "custom", "page_id": PID, "url": "/", "name": "ok"}
    bad = [
        ({"kind": "nope", "page_id": PID, "url": "/"}, "kind"),
        ({"kind": "custom", "page_id": "XYZ", "url": "/", "name": "n"}, "page_id"),
        ({"kind": "custom", "page_id": PID, "url": "https://evil/", "name": "n"}, "url"),
        ({"kind": "custom", "page_id": PID, "url": "/", "name": 5}, "field"),
        ({"kind": "custom", "page_id": PID, "url": "/", "name": "n", "props": {"a": 1}}, "field"),
        ({"kind": "vitals", "page_id": PID, "url": "/", "vitals": {"lcp": "fast"}}, "field"),
        ({"kind": "vitals", "page_id": PID, "url": "/", "vitals": {"lcp": -1}}, "field"),
        ({"kind": "engagement", "page_id": PID, "url": "/", "engaged_ms": 1.5, "scroll_depth": 10}, "field"),
        ({"kind": "engagement", "page_id": PID, "url": "/", "engaged_ms": 1, "scroll_depth": 101}, "field"),
        ({"kind": "click", "page_id": PID, "url": "/", "name": "outbound", "props": {}}, "field"),
        ([1, 2], "malformed"),
    ]
    async with aiohttp.ClientSession() as client:
        post = f"{base}/_ff/e"
        async with client.post(post, data=items(good, *(b for b, _ in bad))) as resp:
            assert resp.status == 204
        for reason in {r for _, r in bad}:
            want = sum(1 for _, r in bad if r == reason)
            assert metric(proxy, "footfall_beacon_items_rejected_total", reason=reason) == want, reason
        async with client.post(post, data=b"x" * (16 * 1024 + 1)) as resp:
            assert resp.status == 413

        async def chunked():
            for _ in range(20):
                yield b"y" * 1024

        async with client.post(post, data=chunked()) as resp:  # no Content-Length: cut off while streaming
            assert resp.status == 413
        async with client.post(post, data=b"{not json") as resp:
            assert resp.status == 400
        async with client.post(post, data=items(*[good] * 60)) as resp:
            assert resp.status == 204
        assert metric(proxy, "footfall_beacon_items_rejected_total", reason="too_many") == 10
        # four requests above took a token each (413 on Content-Length is refused before);
        # the fifth empties the bucket of 5, the rest of the flood gets 429s
        codes = []
        for _ in range(10):
            async with client.post(post, data=items(good)) as resp:
                codes.append(resp.status)
        assert codes == [204] + [429] * 9
        assert metric(proxy, "footfall_beacon_items_rejected_total", reason="rate_limited") == 9
        # another visitor on the same address has a bucket of its own
        async with client.post(post, data=items(good), headers={"Cookie": "ff_vid=AAAAAAAAAAAAAAAAAAAAAA"}) as resp:
            assert resp.status == 204
        async with client.get(f"{base}/p", headers=NAV) as resp:  # the site itself is unaffected
            assert resp.status == 200
    assert hits == ["/p"]
    got = await events(redis_client, 54)
    beacon = [e for e in got if e["via"] == "beacon"]
    assert len(beacon) == 1 + 50 + 1 + 1
    await asyncio.sleep(0.1)
    assert len(await redis_client.xrange("footfall:events")) == 54


async def test_a_streaming_page_keeps_streaming(upstream_factory, proxy_factory) -> None:
    """The head (with the tag) reaches the client while the upstream still holds the
    rest back, in gzip as in identity: nothing waits for the end of the body."""
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.StreamResponse:
        gz = request.query.get("enc") == "gzip"
        resp = web.StreamResponse(headers={"Content-Type": "text/html", **({"Content-Encoding": "gzip"} if gz else {})})
        await resp.prepare(request)
        enc = zlib.compressobj(6, zlib.DEFLATED, 31)

        def piece(data: bytes) -> bytes:
            return enc.compress(data) + enc.flush(zlib.Z_SYNC_FLUSH) if gz else data

        await resp.write(piece(b"<!doctype html><html><head><title>t</title>"))
        await release.wait()
        await resp.write(piece(b"</head><body>late</body></html>") + (enc.flush() if gz else b""))
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/slow", slow)
    proxy = await proxy_factory({"upstreams": [await upstream_factory(app)], "beacon.enabled": True})
    async with aiohttp.ClientSession(auto_decompress=False) as client:
        for enc in ("identity", "gzip"):
            release.clear()
            async with client.get(f"http://127.0.0.1:{proxy.port}/slow?enc={enc}", headers=NAV) as resp:
                assert resp.headers["Transfer-Encoding"] == "chunked" and "Content-Length" not in resp.headers
                try:
                    first = await asyncio.wait_for(resp.content.readany(), 5)
                finally:
                    release.set()  # never leave the upstream handler waiting
                head = zlib.decompressobj(31).decompress(first) if enc == "gzip" else first
                assert head.startswith(b"<!doctype html><html><head><script src=") and b"late" not in head
                rest = first + await resp.read()
            body = gzip.decompress(rest) if enc == "gzip" else rest
            assert body.endswith(b"</head><body>late</body></html>")


async def test_each_slow_chunk_after_the_tag_is_flushed(upstream_factory, proxy_factory) -> None:
    """The flush policy: once the tag is placed, a chunk the upstream sends and then
    pauses after reaches the client, decodable, before the next chunk is sent (the
    encoder is flushed when the upstream has nothing more ready), in gzip and br."""
    gates = [asyncio.Event(), asyncio.Event()]

    async def slow(request: web.Request) -> web.StreamResponse:
        enc = request.query["enc"]
        resp = web.StreamResponse(headers={"Content-Type": "text/html", "Content-Encoding": enc})
        await resp.prepare(request)
        if enc == "gzip":
            z = zlib.compressobj(6, zlib.DEFLATED, 31)
            piece, end = (lambda d: z.compress(d) + z.flush(zlib.Z_SYNC_FLUSH)), z.flush
        else:
            b = brotli.Compressor()
            piece, end = (lambda d: b.process(d) + b.flush()), b.finish
        await resp.write(piece(b"<!doctype html><html><head><title>t</title>"))
        await gates[0].wait()
        await resp.write(piece(b"<p>second</p>"))
        await gates[1].wait()
        await resp.write(piece(b"<p>third</p></html>") + end())
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/slow", slow)
    proxy = await proxy_factory({"upstreams": [await upstream_factory(app)], "beacon.enabled": True})
    async with aiohttp.ClientSession(auto_decompress=False) as client:
        for enc in ("gzip", "br"):
            for gate in gates:
                gate.clear()
            decode = zlib.decompressobj(31).decompress if enc == "gzip" else brotli.Decompressor().process
            async with client.get(f"http://127.0.0.1:{proxy.port}/slow?enc={enc}", headers=NAV) as resp:
                try:
                    seen = b""
                    for gate, want in zip(gates, (b"<head><script src=", b"<p>second</p>"), strict=True):
                        while want not in seen:
                            seen += decode(await asyncio.wait_for(resp.content.readany(), 5))
                        assert b"third" not in seen
                        gate.set()
                finally:
                    for gate in gates:
                        gate.set()  # never leave the upstream handler waiting
                seen += decode(await resp.read())
            assert seen.endswith(b"<p>second</p><p>third</p></html>"), enc
