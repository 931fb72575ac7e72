"""What a browser's request headers must look like, checked against what the request claims.

Pure. A User-Agent is a claim; the headers a real browser adds by itself are hard to fake
by accident. For a document fetch (GET answered with HTML) from a browser family the UA
names, on a secure context (HTTPS, or a loopback host — browsers send fetch metadata and
client hints only there):

- **missing**: Chromium ≥ 80, Firefox ≥ 90 and Safari ≥ 16.4 send ``Sec-Fetch-Site``,
  ``-Mode`` and ``-Dest``; Chrome/Edge/Opera ≥ 89 send ``sec-ch-ua``; every browser sends
  ``Accept`` and ``Accept-Language``. An HTTP library with a copied UA rarely does.
- **order**: each engine writes its headers in a fixed order. Chromium: User-Agent, Accept,
  Sec-Fetch-*, Referer, Accept-Encoding, Accept-Language (measured: Chromium 156 through
  this proxy, navigations and subresources); Firefox: User-Agent, Accept, Accept-Language,
  Accept-Encoding, then Sec-Fetch-*. Only the relative order of these names counts, so
  headers added by proxies and CDNs on the way do not matter. Safari's order has changed
  between versions: not checked.

The header-name order is summarised as our own compact fingerprint (:func:`order_key`:
the lower-cased names of the tracked headers, in order), used to cache verdicts; it is no
JA4H (whose licence forbids commercial use) and is never emitted.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Iterable
from dataclasses import dataclass


class Engine(enum.Enum):
    CHROMIUM = "chromium"
    FIREFOX = "firefox"
    SAFARI = "safari"


@dataclass(frozen=True, slots=True)
class Claim:
    """What the User-Agent claims, as far as header checks go."""

    engine: Engine
    client_hints: bool  # Chromium ≥ 89 with default client hints (not Samsung Internet, not WebViews)
    fetch_metadata: bool  # Sec-Fetch-* expected at this version


# ua-parser (uap-core) families. iOS browsers other than Safari are WebKit whatever their
# name (CriOS, FxiOS): no claim. In-app WebViews vary by app and OS version: no claim.
_CHROMIUM_HINTS = frozenset({"Chrome", "Chrome Mobile", "Edge", "Edge Mobile", "Opera", "Chromium", "Brave",
                             "Vivaldi", "Yandex Browser"})  # fmt: skip
_CHROMIUM_OTHER = frozenset({"Samsung Internet", "Opera Mobile"})
_FIREFOX = frozenset({"Firefox", "Firefox Mobile"})
_SAFARI = frozenset({"Safari", "Mobile Safari"})

TRACKED = {
    Engine.CHROMIUM: ("user-agent", "accept", "sec-fetch-site", "sec-fetch-mode", "sec-fetch-user", "sec-fetch-dest",
                      "referer", "accept-encoding", "accept-language"),
    Engine.FIREFOX: ("user-agent", "accept", "accept-language", "accept-encoding", "sec-fetch-dest",
                     "sec-fetch-mode", "sec-fetch-site", "sec-fetch-user"),
}  # fmt: skip
_TRACKED_ALL = frozenset(name for names in TRACKED.values() for name in names) | {"sec-ch-ua"}
_RANK = {engine: {name: i for i, name in enumerate(names)} for engine, names in TRACKED.items()}
_FETCH_METADATA = ("sec-fetch-site", "sec-fetch-mode", "sec-fetch-dest")
_LOOPBACK_SUFFIXES = (".localhost",)


def _major_minor(version: str | None) -> tuple[int, int]:
    if not version:
        return (0, 0)
    major, _, minor = version.partition(".")
    try:
        return (int(major), int(minor or 0))
    except ValueError:
        return (0, 0)


def claim(browser: str | None, version: str | None) -> Claim | None:
    """The engine a parsed UA (``ua.browser``, ``ua.browser_version``) claims, or ``None``
    when we know no header rule for it."""
    if not browser:
        return None
    ver = _major_minor(version)
    if browser in _CHROMIUM_HINTS:
        # Edge/Opera versions differ from Chromium's, but every release past these numbers
        # is built on a Chromium that sends both (Opera 75 = Chromium 89).
        return Claim(Engine.CHROMIUM, client_hints=ver >= (89, 0), fetch_metadata=ver >= (80, 0))
    if browser in _CHROMIUM_OTHER:
        return Claim(Engine.CHROMIUM, client_hints=False, fetch_metadata=ver >= (13, 0))
    if browser in _FIREFOX:
        return Claim(Engine.FIREFOX, client_hints=False, fetch_metadata=ver >= (90, 0))
    if browser in _SAFARI:
        return Claim(Engine.SAFARI, client_hints=False, fetch_metadata=ver >= (16, 4))
    return None


def secure_context(scheme: str, site: str) -> bool:
    """Browsers send fetch metadata and client hints only to potentially trustworthy
    origins: HTTPS, or a loopback host."""
    return (
        scheme == "https"
        or site in ("localhost", "::1", "[::1]")
        or site.startswith("127.")
        or site.endswith(_LOOPBACK_SUFFIXES)
    )


def order_key(names: Iterable[str]) -> tuple[str, ...]:
    """The tracked header names of a request, lower-cased, in the order received."""
    return tuple(low for name in names if (low := name.lower()) in _TRACKED_ALL)


@dataclass(frozen=True, slots=True)
class Verdict:
    missing: tuple[str, ...]  # headers this browser always sends that are absent
    out_of_order: bool  # tracked headers in an order this engine never writes


def check(c: Claim, key: tuple[str, ...]) -> Verdict:
    """Header verdict for a document fetch on a secure context, from :func:`order_key`."""
    present = frozenset(key)
    missing = [name for name in ("accept", "accept-language") if name not in present]
    if c.fetch_metadata and not present.intersection(_FETCH_METADATA):
        missing.append("sec-fetch-*")
    if c.client_hints and "sec-ch-ua" not in present:
        missing.append("sec-ch-ua")
    rank = _RANK.get(c.engine)
    out_of_order = False
    if rank is not None:
        ranks = [rank[name] for name in key if name in rank]
        out_of_order = any(a > b for a, b in itertools.pairwise(ranks))
    return Verdict(tuple(missing), out_of_order)
