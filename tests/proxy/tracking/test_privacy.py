from __future__ import annotations

import pytest

from proxy.settings import PrivacySettings
from proxy.tracking.privacy import (
    MAX_PARAMS,
    MAX_PATH_CHARS,
    MAX_VALUE_CHARS,
    anonymize_ip,
    is_sensitive,
    mask_emails,
    scrub_path,
    scrub_query,
)

DEFAULTS = PrivacySettings()


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("203.0.113.77", "203.0.113.0"),
        ("10.0.0.0", "10.0.0.0"),
        ("2001:db8:abcd:12:1:2:3:4", "2001:db8:abcd::"),
        ("2001:db8::1", "2001:db8::"),
        ("::ffff:198.51.100.9", "198.51.100.0"),
        ("[2001:db8:1:2::5]", "2001:db8:1::"),
        ("fe80::1%eth0", "fe80::"),
        ("::1", "::"),
        ("not-an-ip", None),
        ("", None),
        ("256.1.1.1", None),
        ("1.2.3", None),
    ],
)
def test_anonymize_ip(ip: str, expected: str | None) -> None:
    assert anonymize_ip(ip) == expected


@pytest.mark.parametrize(
    ("name", "dropped"),
    [
        ("api_key", True),
        ("apikey", True),
        ("apiKey", True),
        ("API-KEY", True),
        ("key", True),
        ("keys", True),
        ("key2", True),
        ("access_token", True),
        ("accessToken", True),
        ("refresh_token", True),
        ("authorization", True),
        ("Authorization", True),
        ("auth", True),
        ("password", True),
        ("user[password]", True),
        ("sessionid", True),
        ("PHPSESSID", True),
        ("client_secret", True),
        ("e-mail", True),
        ("email", True),
        ("code", True),
        ("sig", True),
        ("x-amz-signature", True),
        ("monkey", False),
        ("keyword", False),
        ("keywords", False),
        ("author", False),
        ("authors", False),
        ("promo_code", False),
        ("zipcode", False),
        ("passport", False),
        ("page", False),
        ("q", False),
        ("sort", False),
        ("user_id", False),
        ("utm_source", False),
        ("utm_content", False),
        ("gclid", False),
        ("fbclid", False),
        ("li_fat_id", False),
        ("UTM_Campaign", False),
    ],
)
def test_sensitive_names(name: str, dropped: bool) -> None:
    assert is_sensitive(name, DEFAULTS) is dropped


def test_exact_entry_and_custom_list() -> None:
    settings = PrivacySettings(scrub_params=("=q", "ref"))
    assert is_sensitive("q", settings)
    assert not is_sensitive("q2", settings)
    assert is_sensitive("ref", settings)
    assert is_sensitive("api_ref", settings)
    assert not is_sensitive("referrer", settings)
    # utm_* stays even if a listed word appears in it
    assert not is_sensitive("utm_ref", settings)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hello", "hello"),
        ("john.doe+tag@example.co.uk", "[email]"),
        ("contact john@example.com now", "contact [email] now"),
        ("a@b.com,c@d.org", "[email],[email]"),
        ("john%40example.com", "[email]"),
        ("mail me at x@example.com.", "mail me at [email]."),
        ("@handle", "@handle"),
        ("user@localhost", "user@localhost"),
        ("x@1.2", "x@1.2"),
        ("a@@b.com", "a@@b.com"),
    ],
)
def test_mask_emails(text: str, expected: str) -> None:
    assert mask_emails(text) == expected


def test_mask_emails_is_linear_on_hostile_input() -> None:
    # 100k '@' and dots: a backtracking regex would take minutes; this is one pass.
    hostile = "a." * 50_000 + "@" * 50_000
    assert mask_emails(hostile) == hostile
    encoded = "a%40" * 5_000
    assert mask_emails(encoded) == encoded


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/products/42", "/products/42"),
        ("/users/john@example.com/profile", "/users/[email]/profile"),
        ("/users/john%40example.com", "/users/[email]"),
        ("/@me", "/@me"),
    ],
)
def test_scrub_path(path: str, expected: str) -> None:
    assert scrub_path(path) == expected


def test_scrub_path_fast_path_returns_same_object_and_bounds_length() -> None:
    path = "/a/b/c"
    assert scrub_path(path) is path
    long = "/" + "x" * (MAX_PATH_CHARS * 3)
    assert len(scrub_path(long)) == MAX_PATH_CHARS


def test_scrub_query_drops_masks_and_groups() -> None:
    pairs = [
        ("q", "shoes"),
        ("api_key", "s3cr3t"),
        ("monkey", "banana"),
        ("tag", "a"),
        ("tag", "b"),
        ("utm_source", "news"),
        ("utm_term", "bob@example.com"),
        ("gclid", "abc123"),
        ("note", "write to bob@example.com please"),
        ("authorization", "Bearer x"),
    ]
    assert scrub_query(pairs, DEFAULTS) == {
        "q": "shoes",
        "monkey": "banana",
        "tag": ["a", "b"],
        "utm_source": "news",
        "utm_term": "[email]",
        "gclid": "abc123",
        "note": "write to [email] please",
    }


def test_scrub_query_without_email_scrubbing() -> None:
    settings = PrivacySettings(scrub_emails=False)
    assert scrub_query([("note", "bob@example.com")], settings) == {"note": "bob@example.com"}


def test_scrub_query_is_bounded() -> None:
    pairs = [(f"p{i}", "v" * 10_000) for i in range(1000)]
    out = scrub_query(pairs, DEFAULTS)
    assert len(out) == MAX_PARAMS
    assert all(isinstance(v, str) and len(v) == MAX_VALUE_CHARS for v in out.values())
    repeated = scrub_query([("t", "x")] * 1000, DEFAULTS)
    assert repeated["t"] == ["x"] * MAX_PARAMS


def test_scrub_query_masks_email_before_cutting() -> None:
    value = "x" * (MAX_VALUE_CHARS - 5) + " bob@example.com"
    out = scrub_query([("v", value)], DEFAULTS)
    assert out["v"] == "x" * (MAX_VALUE_CHARS - 5) + " [ema"
    assert "bob" not in str(out["v"])
