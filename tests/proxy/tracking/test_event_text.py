"""Whatever bytes a client puts in the request, its event is built and encodes:
text is cleaned before enrichment and encoding, and a failing enrichment step
nulls its own fields instead of dropping the event."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mmdb_writer import MMDBWriter
from multidict import CIMultiDict, CIMultiDictProxy
from netaddr import IPSet  # type: ignore[import-untyped]

from proxy.settings import load
from proxy.tracking.enrich import Enricher
from proxy.tracking.event import EventBuilder, Exchange, clean_text

SCHEMA = jsonschema.Draft202012Validator(
    orjson.loads((Path(__file__).resolve().parents[3] / "config" / "event.schema.json").read_bytes())
)
# Every request header the event is built from (country ones count from trusted peers).
EVENT_HEADERS = ("User-Agent", "Referer", "CF-IPCountry", "CloudFront-Viewer-Country", "X-Country-Code")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("plain ascii", "plain ascii"),
        ("café", "café"),  # valid UTF-8 stays as it is
        (b"caf\xe9".decode("utf-8", "surrogateescape"), "caf\ufffd"),  # Latin-1 bytes
        (b"\xff\xfe".decode("utf-8", "surrogateescape"), "\ufffd\ufffd"),
        ("a\ud800b", "a\ufffd\ufffd\ufffdb"),  # a surrogate no byte stands for
    ],
)
def test_clean_text(value: str | None, expected: str | None) -> None:
    assert clean_text(value) == expected


def as_aiohttp_decodes(raw: bytes) -> str:
    """Header bytes as aiohttp's parsers hand them to the proxy."""
    return raw.decode("utf-8", "surrogateescape")


@functools.cache
def builder() -> EventBuilder:
    """One builder for all examples (an Enricher loads its data files once)."""
    settings = load(None, {"upstreams": ["http://127.0.0.1:1"], "trusted_proxies": "127.0.0.1"}, env={})
    return EventBuilder(settings, Enricher(settings.enrichment))


def exchange(headers: CIMultiDictProxy[str], *, site: str = "shop.example", raw_path: str = "/",
             method: str = "GET") -> Exchange:  # fmt: skip
    return Exchange(
        1_700_000_000.0, method, raw_path, site, "https", headers, "203.0.113.7", True, True,
        200, 10, "text/html", 1.0, 0.5, None, None, False, False, "granted", "0" * 32, None,
    )  # fmt: skip


header_bytes = st.binary(max_size=200).filter(lambda b: b"\r" not in b and b"\n" not in b)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    values=st.fixed_dictionaries({name: header_bytes for name in EVENT_HEADERS}),
    path=st.binary(max_size=100),
    host=st.binary(max_size=40),
    method=st.binary(min_size=1, max_size=10),
)
def test_any_header_bytes_give_a_valid_encodable_event(
    values: dict[str, bytes], path: bytes, host: bytes, method: bytes
) -> None:
    headers = CIMultiDictProxy(CIMultiDict((name, as_aiohttp_decodes(raw)) for name, raw in values.items()))
    ex = exchange(headers, site=as_aiohttp_decodes(host).lower(), raw_path="/" + as_aiohttp_decodes(path),
                  method=as_aiohttp_decodes(method))  # fmt: skip
    event = builder().build(ex)
    encoded = orjson.dumps(event)  # raises on any text that is not valid Unicode
    SCHEMA.validate(orjson.loads(encoded))
    assert event["ua"] is not None and event["referrer"] is not None and event["channel"] is not None


def test_a_failing_enrichment_step_nulls_its_field_only(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # A GeoIP database whose data section is corrupt: every look-up raises.
    path = tmp_path / "corrupt.mmdb"
    writer = MMDBWriter(ip_version=6, database_type="GeoIP2-Country", ipv4_compatible=True)
    writer.insert_network(IPSet(["203.0.113.0/24"]), {"country": {"iso_code": "NZ"}})
    writer.to_db_file(str(path))
    data = bytearray(path.read_bytes())
    start, end = data.find(b"\x00" * 16) + 16, data.rfind(b"\xab\xcd\xefMaxMind.com")
    data[start:end] = b"\xff" * (end - start)
    path.write_bytes(bytes(data))
    settings = load(None, {"upstreams": ["http://127.0.0.1:1"], "enrichment.geoip_database": str(path)}, env={})
    enricher = Enricher(settings.enrichment)
    try:
        ex = exchange(CIMultiDictProxy(CIMultiDict({"User-Agent": "curl/8.5.0", "Referer": "https://www.google.com/"})))
        event = EventBuilder(settings, enricher).build(ex)
    finally:
        enricher.close()
    assert event["country"] is None
    assert event["ua"]["browser"] == "curl" and event["referrer"]["medium"] == "search"
    assert event["channel"] == "Organic Search"
    assert any("'country' failed" in r.getMessage() for r in caplog.records)


async def test_latin1_and_invalid_bytes_on_the_wire_still_give_an_event(
    upstream_factory, proxy_factory, redis_server, redis_client
) -> None:
    async def page(_: web.Request) -> web.Response:
        return web.Response(text="<html></html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", page)
    proxy = await proxy_factory({"upstreams": [await upstream_factory(app)]}, redis_url=redis_server.url)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(
            b"GET /caf%E9?q=%FF HTTP/1.1\r\nHost: x\r\nUser-Agent: caf\xe9 bot\r\nReferer: \xff\xfe\r\n"
            b"Accept: text/html\r\nConnection: close\r\n\r\n"
        )
        reply = await asyncio.wait_for(reader.read(), 5.0)
    finally:
        writer.close()
    assert reply.startswith(b"HTTP/1.1 200")
    event: dict[str, Any] | None = None
    for _ in range(250):
        entries = await redis_client.xrange("footfall:events")
        if entries:
            event = orjson.loads(entries[0][1][b"event"])
            break
        await asyncio.sleep(0.02)
    assert event is not None, "the event vanished"
    assert event["ua"]["browser"] is not None or event["ua"]["device"] is not None
    assert event["referrer"]["medium"] == "unknown"
    assert proxy.metrics.events_dropped.labels("build_error")._value.get() == 0
