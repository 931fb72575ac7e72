from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet  # type: ignore[import-untyped]

from proxy.settings import EnrichmentSettings
from proxy.tracking.enrich import Enricher
from proxy.tracking.enrich.geo import CountryLookup, normalize_country, record_country


@pytest.fixture(scope="module")
def geoip_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny GeoIP2-Country-layout database, written for real and read by maxminddb."""
    path = tmp_path_factory.mktemp("geoip") / "country.mmdb"
    writer = MMDBWriter(ip_version=6, database_type="GeoIP2-Country", ipv4_compatible=True)
    writer.insert_network(IPSet(["203.0.113.0/24"]), {"country": {"iso_code": "NZ"}})
    writer.insert_network(IPSet(["2001:db8::/32"]), {"country": {"iso_code": "DE"}})
    writer.insert_network(IPSet(["198.51.100.0/24"]), {"registered_country": {"iso_code": "US"}})
    writer.to_db_file(str(path))
    return path


@pytest.fixture
def lookup(geoip_db: Path) -> Iterator[CountryLookup]:
    geo = CountryLookup(str(geoip_db))
    yield geo
    geo.close()


@pytest.mark.parametrize(
    ("header", "ip", "expected"),
    [
        (None, "203.0.113.7", "NZ"),
        (None, "2001:db8::1", "DE"),
        (None, "198.51.100.1", None),  # only a registered country: no guess
        (None, "192.0.2.1", None),  # not in the database
        (None, "not-an-ip", None),
        (None, None, None),
        ("fr", "203.0.113.7", "FR"),  # a trusted header wins
        ("XX", "203.0.113.7", "NZ"),  # Cloudflare's "unknown" falls through to the database
    ],
)
def test_country_from_database(lookup: CountryLookup, header: str | None, ip: str | None,
                               expected: str | None) -> None:  # fmt: skip
    assert lookup.country(header, ip) == expected


def test_enricher_geolocates_with_the_configured_database(geoip_db: Path) -> None:
    enricher = Enricher(EnrichmentSettings(geoip_database=str(geoip_db)))
    try:
        out = enricher.enrich(site="s.example", path="/", query=[], user_agent=None, referer=None,
                              client_ip="203.0.113.9", country_header=None)  # fmt: skip
        assert out["country"] == "NZ"
        assert "203.0.113.9" not in repr(out)  # the raw IP is never part of the result
    finally:
        enricher.close()
        enricher.close()  # idempotent


def test_no_database_no_header_is_null() -> None:
    geo = CountryLookup(None)
    assert geo.country(None, "203.0.113.7") is None
    assert geo.country("ca", "203.0.113.7") == "CA"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("de", "DE"), (" GB ", "GB"), ("XX", None), ("T1", None), ("DEU", None), ("1A", None),
     ("", None), (None, None), ("ÄÖ", None)],
)
def test_normalize_country(value: str | None, expected: str | None) -> None:
    assert normalize_country(value) == expected


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"country": {"iso_code": "JP"}}, "JP"),
        ({"country": "BR"}, "BR"),  # flat layouts (e.g. IPinfo)
        ({"country_code": "IN"}, "IN"),
        ({"continent": {"code": "EU"}}, None),
        (None, None),
        ("NZ", None),
    ],
)
def test_record_country(record: object, expected: str | None) -> None:
    assert record_country(record) == expected
