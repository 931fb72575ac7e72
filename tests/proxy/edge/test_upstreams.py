import pytest

from proxy.edge.upstreams import UpstreamMap
from proxy.settings import Upstream

RULES = [
    Upstream("shop.example", "http://10.0.0.5:8080"),
    Upstream("*.example", "http://10.0.0.6"),
    Upstream("*.eu.example", "http://10.0.0.7"),
]


@pytest.mark.parametrize(
    ("site", "expected"),
    [
        ("shop.example", "http://10.0.0.5:8080"),
        ("blog.example", "http://10.0.0.6"),
        ("a.b.example", "http://10.0.0.6"),
        ("shop.eu.example", "http://10.0.0.7"),  # longest suffix wins
        ("example", None),  # *.example is subdomains only
        ("evil.com", None),
        ("shop.example.evil.com", None),
        ("", None),
    ],
)
def test_match_without_catch_all_refuses_others(site, expected) -> None:
    up = UpstreamMap(RULES).match(site)
    assert (up.url if up else None) == expected


def test_catch_all_takes_the_rest() -> None:
    m = UpstreamMap([*RULES, Upstream("", "http://127.0.0.1:9000")])
    assert m.match("evil.com").url == "http://127.0.0.1:9000"
    assert m.match("shop.example").url == "http://10.0.0.5:8080"
