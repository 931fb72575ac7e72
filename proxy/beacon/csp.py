"""Does a response's Content-Security-Policy let the beacon run? Pure.

The beacon never weakens a site's policy: it is injected only when every enforced
policy already allows it, and otherwise the page goes out byte for byte.

- The ``<script src=PREFIX/…js>`` element: the effective directive is
  ``script-src-elem``, else ``script-src``, else ``default-src``; none → allowed.
  It allows the script when it lists ``'self'`` or ``*`` (without
  ``'strict-dynamic'``, which makes browsers ignore both), or a nonce that is then
  copied onto the tag. ``'none'`` allows nothing. Host sources naming the site
  itself are not matched: when in doubt, skip.
- ``sendBeacon``/``fetch`` to ``PREFIX/e``: ``connect-src``, else ``default-src``;
  none → allowed; ``'self'`` or ``*`` allow it.
- Several policies (repeated headers or comma-joined) must each allow; a nonce must
  then be one that every policy needing a nonce lists.
- ``Content-Security-Policy-Report-Only`` blocks nothing and is not read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

_NONCE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=_-")
_SCRIPT_ORDER = ("script-src-elem", "script-src", "default-src")
_CONNECT_ORDER = ("connect-src", "default-src")


@dataclass(frozen=True, slots=True)
class Verdict:
    """``allowed``: inject; ``nonce``: the nonce to put on the tag (None: no nonce needed)."""

    allowed: bool
    nonce: str | None = None


ALLOWED = Verdict(True)
BLOCKED = Verdict(False)


def _directives(policy: str) -> dict[str, list[str]]:
    """Directive name → source list of one serialized policy; the first of a name wins
    (as browsers do)."""
    out: dict[str, list[str]] = {}
    for part in policy.split(";"):
        tokens = part.split()
        if tokens:
            name = tokens[0].lower()
            if name not in out:
                out[name] = tokens[1:]
    return out


def _effective(directives: dict[str, list[str]], order: tuple[str, ...]) -> list[str] | None:
    for name in order:
        if name in directives:
            return directives[name]
    return None


def _script_rule(sources: list[str] | None) -> tuple[bool, set[str]]:
    """(allows a same-origin script without a nonce, nonces listed)."""
    if sources is None:
        return True, set()
    lowered = [s.lower() for s in sources]
    nonces = set()
    for s in sources:
        if s[:7].lower() == "'nonce-" and s.endswith("'") and len(s) > 8:
            value = s[7:-1]
            if set(value) <= _NONCE_CHARS:
                nonces.add(value)
    if "'strict-dynamic'" in lowered:
        return False, nonces
    return ("'self'" in lowered or "*" in lowered), nonces


def _connect_allowed(sources: list[str] | None) -> bool:
    if sources is None:
        return True
    lowered = [s.lower() for s in sources]
    return "'self'" in lowered or "*" in lowered


def verdict(headers: Iterable[str]) -> Verdict:
    """The verdict for the values of a response's ``Content-Security-Policy`` headers."""
    needs_nonce: list[set[str]] = []
    any_nonces: list[str] = []
    seen = False
    for header in headers:
        for policy in header.split(","):
            if not policy.strip():
                continue
            seen = True
            d = _directives(policy)
            if not _connect_allowed(_effective(d, _CONNECT_ORDER)):
                return BLOCKED
            self_ok, nonces = _script_rule(_effective(d, _SCRIPT_ORDER))
            if not self_ok:
                if not nonces:
                    return BLOCKED
                needs_nonce.append(nonces)
            any_nonces.extend(sorted(nonces))
    if not seen:
        return ALLOWED
    if not needs_nonce:
        # 'self' suffices; a nonce listed anyway is carried, harmless and future-proof.
        return Verdict(True, any_nonces[0] if any_nonces else None)
    common = set.intersection(*needs_nonce)
    if not common:
        return BLOCKED
    return Verdict(True, sorted(common)[0])
