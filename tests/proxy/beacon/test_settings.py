"""``[beacon]`` settings: sources, per-site override, errors naming the key path."""

from __future__ import annotations

import pytest

from proxy.beacon.ratelimit import TokenBuckets
from proxy.beacon.settings import BeaconSettings
from proxy.cli import build_parser, load_settings
from proxy.settings import ConfigError, load


def test_default_off_env_and_flag() -> None:
    assert load(None, {}, env={}).beacon.enabled is False
    assert load(None, {}, env={"FOOTFALL_BEACON": "on"}).beacon.enabled is True
    assert load(None, {"beacon.enabled": "off"}, env={"FOOTFALL_BEACON": "on"}).beacon.enabled is False


def test_cli_flag_and_demo_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FOOTFALL_BEACON", raising=False)
    parse = build_parser().parse_args
    assert load_settings(parse(["proxy", "--upstream", "http://a"])).beacon.enabled is False
    assert load_settings(parse(["proxy", "--upstream", "http://a", "--beacon", "on"])).beacon.enabled is True
    assert load_settings(parse(["demo"])).beacon.enabled is True
    assert load_settings(parse(["demo", "--beacon", "off"])).beacon.enabled is False


@pytest.mark.parametrize(
    ("settings", "site", "on"),
    [
        (BeaconSettings(), "shop.example", False),
        (BeaconSettings(enabled=True), "shop.example", True),
        (BeaconSettings(enabled=True, sites_off=("shop.example",)), "shop.example", False),
        (BeaconSettings(sites_on=("*.example",)), "shop.example", True),
        (BeaconSettings(sites_on=("*.example",)), "example", False),
        (BeaconSettings(sites_on=("*.example",), sites_off=("a.example",)), "a.example", False),
    ],
)
def test_per_site_override(settings: BeaconSettings, site: str, on: bool) -> None:
    assert settings.on_for(site) is on


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"beacon.prefix": "_ff"}, "beacon.prefix: must start and end with '/'"),
        ({"beacon.prefix": "/a b/"}, "beacon.prefix: only path characters"),
        ({"beacon.max_body_bytes": 0}, "beacon.max_body_bytes: must be greater than 0"),
        ({"beacon.rate_per_second": "fast"}, "beacon.rate_per_second: must be a number"),
        ({"beacon.sites_on": ["Shop.Example"]}, "beacon.sites_on[0]: not a lower-case host"),
        ({"beacon.colour": "red"}, "beacon.colour: unknown setting"),
    ],
)
def test_errors_name_the_key(overrides: dict[str, object], error: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(None, overrides, env={})
    assert any(e.startswith(error) for e in info.value.errors), info.value.errors


def test_token_buckets() -> None:
    buckets = TokenBuckets(rate=2.0, burst=3, capacity=2)
    assert [buckets.allow("a", 0.0) for _ in range(4)] == [True, True, True, False]
    assert buckets.allow("a", 0.5) is True  # one token back after 0.5 s at 2/s
    assert buckets.allow("a", 0.5) is False
    assert buckets.allow("b", 0.5) is True  # another client is unaffected
    assert buckets.allow("c", 0.5) is True  # capacity 2: "a" (least recent) is forgotten
    assert [buckets.allow("a", 0.5) for _ in range(4)] == [True, True, True, False]
