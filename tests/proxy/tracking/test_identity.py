from __future__ import annotations

import pytest

from proxy.settings import IdentitySettings
from proxy.tracking.identity import (
    DENIED,
    GRANTED,
    CookieIdentity,
    Identity,
    consent_denied,
    expire_cookie,
    new_id,
    read_cookie,
)

T0 = 1_795_000_000.0
SETTINGS = IdentitySettings(cookie_secret="test-secret")


@pytest.mark.parametrize(
    ("header", "name", "expected"),
    [
        (None, "ff_vid", None),
        ("", "ff_vid", None),
        ("ff_vid=abc", "ff_vid", "abc"),
        ("a=1; ff_vid=abc; b=2", "ff_vid", "abc"),
        ("a=1;ff_vid=abc", "ff_vid", "abc"),
        ("xff_vid=no; ff_vid=yes", "ff_vid", "yes"),
        ("ff_vid=first; ff_vid=second", "ff_vid", "first"),
        ('ff_vid="quoted"', "ff_vid", "quoted"),
        ("ff_vid= spaced ", "ff_vid", "spaced"),
        ("ff_vid=", "ff_vid", ""),
        ("a=ff_vid=x", "ff_vid", None),
        ("ff_sid=1", "ff_vid", None),
    ],
)
def test_read_cookie(header: str | None, name: str, expected: str | None) -> None:
    assert read_cookie(header, name) == expected


@pytest.mark.parametrize(
    ("gpc", "dnt", "honor_gpc", "honor_dnt", "denied"),
    [
        (None, None, True, True, False),
        ("1", None, True, True, True),
        (None, "1", True, True, True),
        ("0", "0", True, True, False),
        ("1", None, False, True, False),
        (None, "1", True, False, False),
        (" 1 ", None, True, True, True),
        ("1", "1", False, False, False),
    ],
)
def test_consent_denied(
    gpc: str | None, dnt: str | None, honor_gpc: bool, honor_dnt: bool, denied: bool
) -> None:
    settings = IdentitySettings(honor_gpc=honor_gpc, honor_dnt=honor_dnt)
    assert consent_denied(gpc, dnt, settings) is denied


def test_new_ids_are_opaque_and_distinct() -> None:
    ids = {new_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == 22 and i.replace("-", "a").replace("_", "a").isalnum() for i in ids)


def _cookie_header(identity: Identity, previous: str = "") -> str:
    """What the browser sends next: previous cookies overridden by Set-Cookie."""
    jar = dict(p.split("=", 1) for p in previous.split("; ") if p)
    for set_cookie in identity.set_cookies:
        name, _, rest = set_cookie.partition("=")
        value = rest.split(";", 1)[0]
        if "Max-Age=0" in set_cookie:
            jar.pop(name, None)
        else:
            jar[name] = value
    return "; ".join(f"{k}={v}" for k, v in jar.items())


def test_first_visit_sets_both_cookies() -> None:
    ident = CookieIdentity(SETTINGS).resolve(
        None, now=T0, pageview=False, secure=True, denied=False
    )
    assert ident.new_visitor
    assert ident.new_session
    assert ident.consent == GRANTED
    assert ident.visitor
    assert ident.session
    assert ident.visitor != ident.session
    vis, sess = ident.set_cookies
    assert vis == (
        f"ff_vid={ident.visitor}; Max-Age={400 * 86400}; Path=/; HttpOnly; SameSite=Lax; Secure"
    )
    assert sess.startswith(f"ff_sid={ident.session}.")
    assert sess.endswith("; Max-Age=1800; Path=/; HttpOnly; SameSite=Lax; Secure")


def test_plain_http_has_no_secure_attribute() -> None:
    ids = CookieIdentity(SETTINGS)
    ident = ids.resolve(None, now=T0, pageview=True, secure=False, denied=False)
    assert all("Secure" not in c for c in ident.set_cookies)


def test_session_lifecycle() -> None:
    ids = CookieIdentity(SETTINGS)
    first = ids.resolve(None, now=T0, pageview=True, secure=True, denied=False)
    jar = _cookie_header(first, "other=1")

    asset = ids.resolve(jar, now=T0 + 5, pageview=False, secure=True, denied=False)
    assert (asset.visitor, asset.session) == (first.visitor, first.session)
    assert not asset.new_visitor
    assert not asset.new_session
    assert asset.set_cookies == ()

    page = ids.resolve(jar, now=T0 + 600, pageview=True, secure=True, denied=False)
    assert page.session == first.session
    assert not page.new_session
    assert len(page.set_cookies) == 1
    assert page.set_cookies[0].startswith("ff_sid=")
    jar = _cookie_header(page, jar)

    # idle is measured from the last pageview (T0+600), not from the session start
    later = ids.resolve(jar, now=T0 + 600 + 1700, pageview=True, secure=True, denied=False)
    assert later.session == first.session
    jar = _cookie_header(later, jar)

    gap = ids.resolve(jar, now=T0 + 2300 + 1801, pageview=True, secure=True, denied=False)
    assert gap.visitor == first.visitor
    assert not gap.new_visitor
    assert gap.new_session
    assert gap.session != first.session
    assert len(gap.set_cookies) == 2  # the visitor cookie rolls on with each new session


def test_non_pageview_after_idle_gap_starts_session() -> None:
    ids = CookieIdentity(SETTINGS)
    jar = _cookie_header(ids.resolve(None, now=T0, pageview=True, secure=True, denied=False))
    late = ids.resolve(jar, now=T0 + 1801, pageview=False, secure=True, denied=False)
    assert late.new_session
    assert not late.new_visitor
    assert any(c.startswith("ff_sid=") for c in late.set_cookies)


def test_session_max_duration_even_when_kept_alive() -> None:
    ids = CookieIdentity(SETTINGS)
    first = ids.resolve(None, now=T0, pageview=True, secure=True, denied=False)
    jar = _cookie_header(first)
    now = T0
    while now + 1500 <= T0 + 86400:
        now += 1500
        ident = ids.resolve(jar, now=now, pageview=True, secure=True, denied=False)
        assert ident.session == first.session
        jar = _cookie_header(ident, jar)
    capped = ids.resolve(jar, now=now + 1500, pageview=True, secure=True, denied=False)
    assert capped.new_session
    assert capped.session != first.session


def _with_session(value: str, visitor: str) -> str:
    return f"ff_vid={visitor}; ff_sid={value}"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda v: v[:-1] + ("0" if v[-1] != "0" else "1"),  # tag changed
        lambda v: v.replace(".", ".1", 1),  # start changed
        lambda v: "garbage",
        lambda v: "",
        lambda v: v + ".extra",
        lambda v: "é" + v[1:],
        lambda v: v.replace(v.split(".")[0], "x" * 22),  # session id swapped
    ],
)
def test_tampered_or_malformed_session_is_replaced(mutate: object) -> None:
    ids = CookieIdentity(SETTINGS)
    first = ids.resolve(None, now=T0, pageview=True, secure=True, denied=False)
    value = first.set_cookies[1].split(";")[0].split("=", 1)[1]
    assert callable(mutate)
    header = _with_session(mutate(value), str(first.visitor))
    ident = ids.resolve(header, now=T0 + 1, pageview=False, secure=True, denied=False)
    assert ident.visitor == first.visitor
    assert not ident.new_visitor
    assert ident.new_session
    assert ident.session != first.session


def test_session_bound_to_visitor_and_secret() -> None:
    ids = CookieIdentity(SETTINGS)
    first = ids.resolve(None, now=T0, pageview=True, secure=True, denied=False)
    value = first.set_cookies[1].split(";")[0].split("=", 1)[1]
    moved = ids.resolve(_with_session(value, new_id()), now=T0 + 1, pageview=False,
                        secure=True, denied=False)  # fmt: skip
    assert moved.new_session
    other = CookieIdentity(IdentitySettings(cookie_secret="another"))
    foreign = other.resolve(_with_session(value, str(first.visitor)), now=T0 + 1,
                            pageview=False, secure=True, denied=False)  # fmt: skip
    assert foreign.new_session
    assert foreign.visitor == first.visitor


def test_forged_session_with_valid_tag_but_future_start_is_rejected() -> None:
    ids = CookieIdentity(SETTINGS)
    visitor = new_id()
    value = ids.session_value(visitor, new_id(), int(T0) + 3600, int(T0) + 3600)
    ident = ids.resolve(_with_session(value, visitor), now=T0, pageview=False,
                        secure=True, denied=False)  # fmt: skip
    assert ident.new_session


@pytest.mark.parametrize("visitor", ["short", "x" * 23, "bad!chars-bad!chars-12", ""])
def test_malformed_visitor_is_a_new_visitor(visitor: str) -> None:
    ident = CookieIdentity(SETTINGS).resolve(
        f"ff_vid={visitor}", now=T0, pageview=False, secure=True, denied=False
    )
    assert ident.new_visitor
    assert ident.new_session
    assert ident.visitor != visitor


def test_denied_gives_no_ids_and_expires_our_cookies() -> None:
    ids = CookieIdentity(SETTINGS)
    jar = _cookie_header(ids.resolve(None, now=T0, pageview=True, secure=True, denied=False))
    ident = ids.resolve(jar + "; theme=dark", now=T0 + 1, pageview=True, secure=True, denied=True)
    assert ident == Identity(
        None,
        None,
        False,
        False,
        DENIED,
        (expire_cookie("ff_vid", secure=True), expire_cookie("ff_sid", secure=True)),
    )
    assert ident.set_cookies[0] == "ff_vid=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax; Secure"
    clean = ids.resolve("theme=dark", now=T0, pageview=True, secure=True, denied=True)
    assert clean.set_cookies == ()
    assert clean.visitor is None


def test_pageviews_refresh_the_session_cookie_at_most_once_a_minute() -> None:
    ids = CookieIdentity(SETTINGS)  # idle 1800 s: refresh interval 60 s
    first = ids.resolve(None, now=T0, pageview=True, secure=True, denied=False)
    jar = _cookie_header(first)
    soon = ids.resolve(jar, now=T0 + 59, pageview=True, secure=True, denied=False)
    assert (soon.session, soon.new_session, soon.set_cookies) == (first.session, False, ())
    later = ids.resolve(jar, now=T0 + 60, pageview=True, secure=True, denied=False)
    assert later.session == first.session
    assert [c.split("=")[0] for c in later.set_cookies] == ["ff_sid"]
    assert f".{int(T0) + 60:x}." in later.set_cookies[0]  # the refresh moves `last` forward
    # idle counts from the last refresh: 1800 s after T0 the unrefreshed session is over
    assert ids.resolve(jar, now=T0 + 1801, pageview=True, secure=True, denied=False).new_session


def test_refresh_interval_scales_down_with_a_short_idle_timeout() -> None:
    ids = CookieIdentity(IdentitySettings(session_idle_seconds=60))  # interval 2 s
    jar = _cookie_header(ids.resolve(None, now=T0, pageview=True, secure=False, denied=False))
    assert ids.resolve(jar, now=T0 + 1, pageview=True, secure=False, denied=False).set_cookies == ()
    assert len(ids.resolve(jar, now=T0 + 2, pageview=True, secure=False, denied=False).set_cookies) == 1


def test_custom_cookie_names_and_ages() -> None:
    settings = IdentitySettings(
        visitor_cookie="v", session_cookie="s", visitor_max_age_days=1, session_idle_seconds=60
    )
    ids = CookieIdentity(settings)
    first = ids.resolve(None, now=T0, pageview=True, secure=False, denied=False)
    assert first.set_cookies[0].startswith(f"v={first.visitor}; Max-Age=86400;")
    assert "; Max-Age=60;" in first.set_cookies[1]
    jar = _cookie_header(first)
    assert ids.resolve(jar, now=T0 + 59, pageview=False, secure=False, denied=False).session == (
        first.session
    )
    assert ids.resolve(jar, now=T0 + 61, pageview=False, secure=False, denied=False).new_session
