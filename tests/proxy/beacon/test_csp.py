"""CSP verdicts: inject only where the site's own policy already allows the script."""

from __future__ import annotations

import pytest

from proxy.beacon.csp import Verdict, verdict


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([], Verdict(True)),
        (["upgrade-insecure-requests"], Verdict(True)),
        (["default-src 'self'"], Verdict(True)),
        (["script-src 'self' https://cdn.example; connect-src 'self'"], Verdict(True)),
        (["script-src *"], Verdict(True)),
        (["default-src 'none'"], Verdict(False)),
        (["script-src 'none'"], Verdict(False)),
        (["script-src https://cdn.example"], Verdict(False)),  # host sources are never guessed
        (["script-src 'self' 'strict-dynamic'"], Verdict(False)),  # 'self' ignored
        (["script-src 'strict-dynamic' 'nonce-abc123'"], Verdict(True, "abc123")),
        (["script-src 'nonce-r4nd0m+/='"], Verdict(True, "r4nd0m+/=")),
        (["script-src 'self' 'nonce-abc'"], Verdict(True, "abc")),  # carried, harmless
        (["script-src 'nonce-a\"b'"], Verdict(False)),  # a nonce that cannot go in an attribute
        (["default-src 'self'; connect-src https://api.example"], Verdict(False)),  # endpoint blocked
        (["default-src 'none'; script-src 'self'"], Verdict(False)),  # connect falls back to 'none'
        (["script-src 'self'; default-src 'none'; connect-src 'self'"], Verdict(True)),
        (["script-src-elem 'self'; script-src 'none'"], Verdict(True)),  # elements use -elem
        (["script-src 'self'", "script-src 'none'"], Verdict(False)),  # every policy must allow
        (["script-src 'self', script-src https://x.example"], Verdict(False)),  # comma-joined
        (["script-src 'nonce-a'", "script-src 'nonce-b'"], Verdict(False)),  # no common nonce
        (["script-src 'nonce-a' 'nonce-b'", "script-src 'nonce-b'"], Verdict(True, "b")),
        (["SCRIPT-SRC 'SELF'"], Verdict(True)),
        (["script-src 'self'; script-src 'none'"], Verdict(True)),  # first directive of a name wins
    ],
)
def test_verdicts(headers: list[str], expected: Verdict) -> None:
    assert verdict(headers) == expected
