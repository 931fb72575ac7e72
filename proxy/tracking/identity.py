"""Visitor and session identity from first-party cookies, and consent. Pure; hot path.

Cookies (both set by the proxy, ``HttpOnly; SameSite=Lax; Path=/``, ``Secure`` on
HTTPS):

- visitor ``ff_vid``: 22-char base64url of 16 random bytes; Max-Age
  ``visitor_max_age_days``, re-sent when a session starts so it keeps rolling.
  Any well-formed value is accepted: choosing an id is no worse than deleting the
  cookie. Malformed → a new visitor.
- session ``ff_sid``: ``<id>.<start>.<last>.<mac>`` — session id, start and last
  pageview (Unix seconds, hex) and a keyed BLAKE2b tag over the visitor id and
  the rest (key ``cookie_secret``). Max-Age ``session_idle_seconds``, re-sent
  whenever a session starts and on pageviews (30-minute sliding expiry), but at
  most once per refresh interval (1/30 of ``session_idle_seconds``, at most 60 s):
  a reader of ten pages a minute costs one HMAC and one Set-Cookie, not ten. The
  server re-checks the timestamps too: a session ends after ``session_idle_seconds``
  without a refresh or ``session_max_seconds`` after its start, even if the
  browser kept the cookie — so the idle timeout counts from the last refresh,
  up to one interval before the last pageview. A bad tag, malformed value or start
  in the future → a new session. Requests that are not pageviews neither refresh
  nor re-send it.

``resolve`` with ``denied=True`` (GPC/DNT) returns no ids and expires any Footfall
cookie the client still sends.
"""

from __future__ import annotations

import base64
import hmac
import os
from dataclasses import dataclass
from hashlib import blake2b

from proxy.settings import IdentitySettings

GRANTED = "granted"
DENIED = "denied"
ID_CHARS = 22
_MAC_BYTES = 8  # 16 hex chars: 2^64 guesses to forge, and hex is 5x cheaper than base64
_SESSION_CACHE = 4096  # verified session cookies kept (asset requests repeat them)
_CLOCK_SKEW = 300  # seconds a session start may lie in the future (multi-host clocks)
_COOKIE_ATTRS = "; Path=/; HttpOnly; SameSite=Lax"


def new_id() -> str:
    """A random opaque id: 16 bytes from the OS CSPRNG as 22 base64url chars."""
    return base64.urlsafe_b64encode(os.urandom(16))[:ID_CHARS].decode("ascii")


def _well_formed_id(value: str) -> bool:
    return (
        len(value) == ID_CHARS
        and value.isascii()
        and value.replace("-", "A").replace("_", "A").isalnum()
    )


def read_cookie(cookie_header: str | None, name: str) -> str | None:
    """The value of cookie ``name`` in a ``Cookie`` header (first occurrence), or None.

    Hand split (SimpleCookie costs ~40x more); surrounding spaces and double
    quotes are removed.
    """
    if not cookie_header:
        return None
    return _find_cookie(cookie_header, name + "=")


def _find_cookie(cookie_header: str, key: str) -> str | None:
    start = 0
    while True:
        i = cookie_header.find(key, start)
        if i < 0:
            return None
        if i == 0 or cookie_header[i - 1] in " ;\t":
            j = cookie_header.find(";", i)
            value = cookie_header[i + len(key) : j if j >= 0 else None].strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            return value
        start = i + 1


def consent_denied(sec_gpc: str | None, dnt: str | None, settings: IdentitySettings) -> bool:
    """True when the browser opts out: ``Sec-GPC: 1`` or ``DNT: 1``, each only when
    its ``honor_*`` flag is on."""
    return (settings.honor_gpc and sec_gpc is not None and sec_gpc.strip() == "1") or (
        settings.honor_dnt and dnt is not None and dnt.strip() == "1"
    )


def expire_cookie(name: str, *, secure: bool) -> str:
    """A Set-Cookie value that deletes cookie ``name`` (set with our attributes)."""
    return f"{name}=; Max-Age=0{_COOKIE_ATTRS}{'; Secure' if secure else ''}"


@dataclass(slots=True, frozen=True)
class Identity:
    """Who made a request. ``set_cookies`` are complete Set-Cookie header values."""

    visitor: str | None
    session: str | None
    new_visitor: bool
    new_session: bool
    consent: str  # GRANTED | DENIED
    set_cookies: tuple[str, ...] = ()


_DENIED = Identity(None, None, False, False, DENIED, ())


class CookieIdentity:
    """Resolves :class:`Identity` from the Cookie header; one instance per process."""

    __slots__ = (
        "_hasher", "_idle", "_max", "_refresh", "_sess_attrs", "_sess_key", "_sess_name",
        "_verified", "_vis_attrs", "_vis_key", "_vis_name",
    )  # fmt: skip

    def __init__(self, settings: IdentitySettings) -> None:
        self._vis_name = settings.visitor_cookie
        self._sess_name = settings.session_cookie
        self._vis_key = settings.visitor_cookie + "="
        self._sess_key = settings.session_cookie + "="
        self._idle = settings.session_idle_seconds
        self._max = settings.session_max_seconds
        self._refresh = min(60, settings.session_idle_seconds // 30)
        # Keyed once; copy() per use skips the key setup (~0.4 µs).
        self._hasher = blake2b(key=settings.cookie_secret.encode(), digest_size=_MAC_BYTES)
        self._verified: dict[str, _Verified] = {}
        vis = f"; Max-Age={settings.visitor_max_age_days * 86400}{_COOKIE_ATTRS}"
        sess = f"; Max-Age={settings.session_idle_seconds}{_COOKIE_ATTRS}"
        # Index by `secure`: attributes are built once, not per request.
        self._vis_attrs = (vis, vis + "; Secure")
        self._sess_attrs = (sess, sess + "; Secure")

    def _mac(self, visitor: str, body: str) -> str:
        h = self._hasher.copy()
        h.update(f"{visitor}.{body}".encode())
        return h.hexdigest()

    def session_value(self, visitor: str, session: str, start: int, last: int) -> str:
        """The session cookie value (exposed for tests and tools)."""
        body = f"{session}.{start:x}.{last:x}"
        return f"{body}.{self._mac(visitor, body)}"

    def _parse_session(self, visitor: str, value: str | None) -> _Verified | None:
        """The verified session cookie ``value`` bound to ``visitor``; None if bad."""
        if value is None or len(value) > 80:
            return None
        hit = self._verified.get(value)
        if hit is not None:
            return hit if hit.visitor == visitor else None
        body, _, mac = value.rpartition(".")
        parts = body.split(".")
        if len(parts) != 3 or not _well_formed_id(parts[0]) or not mac.isascii():
            return None
        try:
            start, last = int(parts[1], 16), int(parts[2], 16)
        except ValueError:
            return None
        if not hmac.compare_digest(mac, self._mac(visitor, body)):
            return None
        if len(self._verified) >= _SESSION_CACHE:
            self._verified.clear()  # crude bound; refills with live sessions at once
        verified = _Verified(visitor, parts[0], start, last)
        self._verified[value] = verified
        return verified

    def resolve(
        self, cookie_header: str | None, *, now: float, pageview: bool, secure: bool, denied: bool
    ) -> Identity:
        """Identity for one request at ``now`` (Unix seconds).

        ``pageview``: a document navigation (refreshes the session cookie, at most
        once per refresh interval).
        ``secure``: the client connection is HTTPS (cookies get ``Secure``).
        ``denied``: consent refused; no ids, Footfall cookies expired.
        """
        if denied:
            if not cookie_header or (
                self._vis_key not in cookie_header and self._sess_key not in cookie_header
            ):
                return _DENIED
            stale = tuple(
                expire_cookie(name, secure=secure)
                for name in (self._vis_name, self._sess_name)
                if read_cookie(cookie_header, name) is not None
            )
            return Identity(None, None, False, False, DENIED, stale)
        ts = int(now)
        visitor = _find_cookie(cookie_header, self._vis_key) if cookie_header else None
        current = None
        if visitor is not None and _well_formed_id(visitor):
            assert cookie_header is not None  # the visitor cookie came from it
            current = self._parse_session(visitor, _find_cookie(cookie_header, self._sess_key))
            if current is not None and not (
                current.start <= ts + _CLOCK_SKEW
                and ts - current.last <= self._idle
                and ts - current.start <= self._max
            ):
                current = None
            if current is not None and (not pageview or ts - current.last < self._refresh):
                return current.identity  # an asset, or a pageview soon after a refresh: nothing to send
            new_visitor = False
        else:
            visitor, new_visitor = new_id(), True
        cookies = []
        if current is None:
            session, start, new_session = new_id(), ts, True
            # A new session re-sends the visitor cookie too, so its 400 days roll on.
            cookies.append(f"{self._vis_name}={visitor}{self._vis_attrs[secure]}")
        else:
            session, start, new_session = current.session, current.start, False
        last = ts if current is None else max(ts, current.last)
        value = self.session_value(visitor, session, start, last)
        cookies.append(f"{self._sess_name}={value}{self._sess_attrs[secure]}")
        return Identity(visitor, session, new_visitor, new_session, GRANTED, tuple(cookies))


class _Verified:
    """A session cookie value whose tag checked out, with its no-cookie Identity."""

    __slots__ = ("identity", "last", "session", "start", "visitor")

    def __init__(self, visitor: str, session: str, start: int, last: int) -> None:
        self.visitor, self.session, self.start, self.last = visitor, session, start, last
        self.identity = Identity(visitor, session, False, False, GRANTED, ())
