"""Privacy scrubbing: IP anonymisation, query-string and path scrubbing. Pure functions.

Runs in the publisher's flush task (via :class:`proxy.tracking.event.EventBuilder`), never on
the response path. Every output is bounded so a hostile URL cannot bloat events.

Sensitive parameter names (``PrivacySettings.scrub_params``) are matched by *word*,
not by substring, so ``key`` catches ``api_key`` and ``apiKey`` but not ``monkey``:

1. The name is lower-cased and split into tokens at every character that is not a
   letter (``api_key2`` → ``api``, ``key``).
2. A token is sensitive when it can be cut, start to end, into pieces that are all
   either sensitive words or credential qualifiers (:data:`QUALIFIERS`: ``api``,
   ``access``, ``orization`` …), with at least one sensitive word among them. One
   trailing ``s`` (a plural) is ignored. So ``apikey`` = api+key, ``accesstoken`` =
   access+token, ``authorization`` = auth+orization are dropped, while ``monkey``,
   ``keyword`` and ``author`` cannot be cut that way and survive.
3. An entry written ``=name`` matches only a parameter named exactly ``name``
   (``=code`` drops OAuth's ``code`` but keeps ``promo_code``).

``utm_*`` parameters and ad click ids are never dropped (attribution needs them),
but e-mail addresses inside them are still masked.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache

from proxy.settings import PrivacySettings

EMAIL_MASK = "[email]"
MAX_PARAMS = 50  # parameters kept per event; the rest are dropped
MAX_NAME_CHARS = 100
MAX_VALUE_CHARS = 500
MAX_PATH_CHARS = 2048

CLICK_IDS = frozenset(
    {"gclid", "gbraid", "wbraid", "dclid", "fbclid", "msclkid", "ttclid", "twclid",
     "li_fat_id", "yclid"}
)  # fmt: skip

# Words that, glued to a sensitive word, still name a credential (api+key,
# access+token, auth+orization). Never sensitive on their own.
QUALIFIERS = frozenset(
    {"api", "access", "refresh", "id", "client", "private", "public", "bearer", "csrf",
     "xsrf", "oauth", "app", "user", "pass", "orization", "orize", "entication",
     "enticate", "hash", "value", "header", "reset", "one", "time"}
)  # fmt: skip

_AT = re.compile(r"@|%40")
_LOCAL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-")
_DOMAIN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-")
_NON_LETTERS = re.compile(r"[^a-z]+")


def anonymize_ip(ip: str) -> str | None:
    """IPv4 → its /24 (``203.0.113.0``), IPv6 → its /48 (``2001:db8:1::``).

    IPv4-mapped IPv6 (``::ffff:203.0.113.9``) is treated as IPv4 and returned in
    dotted form. Brackets and an IPv6 zone are accepted and dropped. Invalid → None.
    """
    try:
        addr = ipaddress.ip_address(ip.strip("[]"))
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address):
        mapped = addr.ipv4_mapped
        if mapped is None:
            masked = int(addr) & ~((1 << 80) - 1)
            return str(ipaddress.IPv6Address(masked))
        addr = mapped
    return str(ipaddress.IPv4Address(int(addr) & 0xFFFFFF00))


def mask_emails(text: str) -> str:
    """Replace every e-mail address (``@`` or percent-encoded ``%40``) with ``[email]``.

    Linear scan around each ``@``, no backtracking regex, so hostile input costs
    O(len). An address needs a non-empty local part and a dotted domain whose last
    label is at least two letters.
    """
    if "@" not in text and "%40" not in text:
        return text
    out: list[str] = []
    pos = 0  # text[:pos] is already in out
    n = len(text)
    for m in _AT.finditer(text):
        at, after = m.start(), m.end()
        if at < pos:
            continue  # inside an address already masked
        start = at
        # A local part is at most 64 chars (RFC 5321); the cap keeps "a%40a%40…" linear.
        floor = max(pos, at - 64)
        while start > floor and text[start - 1] in _LOCAL_CHARS:
            start -= 1
        end = after
        while end < n and text[end] in _DOMAIN_CHARS:
            end += 1
        while end > after and text[end - 1] in ".-":
            end -= 1  # a trailing dot ends a sentence, not the domain
        domain = text[after:end]
        tld = domain.rpartition(".")[2]
        if start < at and "." in domain and len(tld) >= 2 and tld.isalpha():
            out.append(text[pos:start])
            out.append(EMAIL_MASK)
            pos = end
    if not out:
        return text
    out.append(text[pos:])
    return "".join(out)


def scrub_path(path: str) -> str:
    """Mask e-mail addresses in a URL path (raw, percent-encoded) and cap its length.

    Unchanged (same object) in the common case: short and no ``@``/``%40``.
    """
    if len(path) <= MAX_PATH_CHARS and "@" not in path and "%40" not in path:
        return path
    # Mask before cutting, so the cut cannot leave half an address behind.
    return mask_emails(path[: MAX_PATH_CHARS * 2])[:MAX_PATH_CHARS]


class _NameMatcher:
    """Sensitive-name test for one ``scrub_params`` tuple, with a bounded cache."""

    __slots__ = ("_cache", "_exact", "_longest", "_vocab", "_words")

    def __init__(self, entries: tuple[str, ...]) -> None:
        self._exact = frozenset(e[1:].lower() for e in entries if e.startswith("="))
        self._words = frozenset(e.lower() for e in entries if e and not e.startswith("="))
        self._vocab = self._words | QUALIFIERS
        self._longest = max((len(w) for w in self._vocab), default=0)
        self._cache: dict[str, bool] = {}

    def sensitive(self, name: str) -> bool:
        hit = self._cache.get(name)
        if hit is None:
            lowered = name.lower()
            hit = lowered in self._exact or any(
                self._token(t) for t in _NON_LETTERS.split(lowered) if t
            )
            if len(self._cache) >= 4096:
                self._cache.clear()  # hostile names must not grow memory
            self._cache[name] = hit
        return hit

    def _token(self, token: str) -> bool:
        if token in self._words:
            return True
        if len(token) > 64:
            return False
        return self._segments(token) or (token.endswith("s") and self._segments(token[:-1]))

    def _segments(self, token: str) -> bool:
        # ok[i] = (token[:i] can be cut into vocab pieces, one of them sensitive?)
        n = len(token)
        ok: list[bool | None] = [None] * (n + 1)  # None: not reachable
        ok[0] = False
        for i in range(n):
            if ok[i] is None:
                continue
            for j in range(i + 1, min(n, i + self._longest) + 1):
                piece = token[i:j]
                if piece in self._vocab:
                    flag = bool(ok[i]) or piece in self._words
                    if ok[j] is None or (flag and not ok[j]):
                        ok[j] = flag
        return ok[n] is True


@lru_cache(maxsize=8)
def _matcher(entries: tuple[str, ...]) -> _NameMatcher:
    return _NameMatcher(entries)


def is_sensitive(name: str, settings: PrivacySettings) -> bool:
    """True when the parameter ``name`` would be dropped (see the module docstring)."""
    lowered = name.lower()
    if lowered.startswith("utm_") or lowered in CLICK_IDS:
        return False
    return _matcher(settings.scrub_params).sensitive(name)


def scrub_query(
    pairs: list[tuple[str, str]], settings: PrivacySettings
) -> dict[str, str | list[str]]:
    """Decoded query pairs → the event's ``query`` object.

    Drops sensitive names (never ``utm_*`` or click ids), masks e-mail addresses in
    names and values when ``settings.scrub_emails``, keeps at most
    :data:`MAX_PARAMS` values in total, cuts names and values to their caps. One
    value → str; a repeated name → list of str in arrival order.
    """
    out: dict[str, str | list[str]] = {}
    kept = 0
    emails = settings.scrub_emails
    for name, value in pairs:
        if kept >= MAX_PARAMS:
            break
        if is_sensitive(name, settings):
            continue
        if emails:
            name = mask_emails(name[: MAX_NAME_CHARS * 2])
            value = mask_emails(value[: MAX_VALUE_CHARS * 2])
        name, value = name[:MAX_NAME_CHARS], value[:MAX_VALUE_CHARS]
        kept += 1
        prev = out.get(name)
        if prev is None:
            out[name] = value
        elif isinstance(prev, list):
            prev.append(value)
        else:
            out[name] = [prev, value]
    return out
