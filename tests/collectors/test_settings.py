"""collectors.settings: the [collectors] table, validated with key paths."""

from __future__ import annotations

from typing import Any

import pytest

from collectors.settings import CollectorSettings, Funnel, Goal, glob_regex, parse, parse_status


def test_example_config_parses() -> None:
    errors: list[str] = []
    s = parse(
        {
            "batch_size": 200,
            "apdex_threshold_ms": 300,
            "goals": [
                {"name": "signup", "method": "post", "path": "/signup", "status": "2xx,303"},
                {"name": "pricing", "path": "/pricing*"},
            ],
            "funnels": [{"name": "checkout", "steps": ["/cart", "/checkout", "/thank-you"]}],
        },
        errors,
    )
    assert errors == []
    assert s.batch_size == 200
    assert s.apdex_threshold_ms == 300.0
    assert s.goals[0] == Goal("signup", "/signup", "POST", parse_status("2xx,303"))
    assert not s.goals[0].pageview_only
    assert s.goals[1].pageview_only
    assert s.funnels == (Funnel("checkout", ("/cart", "/checkout", "/thank-you")),)


def test_defaults() -> None:
    assert parse({}, []) == CollectorSettings()


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ({"batch_size": 0}, "collectors.batch_size: must be a positive integer, not 0"),
        ({"batch_size": True}, "collectors.batch_size: must be a positive integer, not True"),
        ({"apdex_threshold_ms": "x"}, "collectors.apdex_threshold_ms: must be a positive number"),
        ({"nope": 1}, "collectors.nope: unknown setting"),
        ({"goals": {}}, "collectors.goals: must be a list of tables"),
        ({"goals": [{"name": "g", "path": "signup"}]}, "collectors.goals[0].path: must be a path"),
        ({"goals": [{"path": "/x"}]}, "collectors.goals[0].name: must be 1-64 characters"),
        ({"goals": [{"name": "g", "path": "/x", "status": "6xx"}]},
         "collectors.goals[0].status: not a status code or class like 2xx: '6xx'"),
        ({"goals": [{"name": "g", "path": "/x", "method": "PO ST"}]},
         "collectors.goals[0].method: must be an HTTP method"),
        ({"goals": [{"name": "g", "path": "/x"}, {"name": "g", "path": "/y"}]},
         "collectors.goals[1].name: 'g' defined twice"),
        ({"goals": [{"name": "g", "path": "/x", "colour": 1}]}, "collectors.goals[0].colour: unknown"),
        ({"funnels": [{"name": "f", "steps": ["/a"]}]},
         "collectors.funnels[0].steps: must be a list of 2 to 10 path patterns"),
        ({"funnels": [{"name": "f", "steps": ["/a", "b"]}]}, "collectors.funnels[0].steps[1]: must"),
    ],
)  # fmt: skip
def test_errors_name_the_field(raw: dict[str, Any], error: str) -> None:
    errors: list[str] = []
    parse(raw, errors)
    assert len(errors) == 1
    assert errors[0].startswith(error)


@pytest.mark.parametrize(
    ("spec", "inside", "outside"),
    [("2xx,303", [200, 299, 303], [301, 404]), ([201, "5xx"], [201, 503], [200]), (404, [404], [400])],
)
def test_parse_status(spec: Any, inside: list[int], outside: list[int]) -> None:
    codes = parse_status(spec)
    assert all(c in codes for c in inside)
    assert not any(c in codes for c in outside)


@pytest.mark.parametrize(
    ("pattern", "path", "match"),
    [("/signup", "/signup", True), ("/signup", "/signup/x", False), ("/blog/*", "/blog/a/b", True),
     ("/p.html", "/pxhtml", False), ("*/thanks", "/shop/thanks", True)],
)  # fmt: skip
def test_glob(pattern: str, path: str, match: bool) -> None:
    assert bool(glob_regex(pattern).match(path)) is match
