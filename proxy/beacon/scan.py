"""Where the beacon's tag goes in an HTML document. Pure, incremental.

The tag goes right after the opening ``<head …>`` tag, never before ``</head>``:
the first element decides, so a ``</head>`` inside an inline script string (or a
comment) later on is never looked at. Without a ``<head>``, it goes right after
``<body …>`` when that comes first, else right before the first other element
(after the doctype, comments and ``<html>``), which is where the HTML parser opens
the implicit head anyway.

:func:`scan` is called again with a longer buffer when it needs more bytes; it
returns where to resume, so a document arriving one byte at a time costs no
rescans of what was already passed.
"""

from __future__ import annotations

import re
from enum import Enum

_WS = frozenset(b" \t\n\r\f")
_NAME = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")
_LETTERS = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


# The usual document start, matched in one go: whitespace and a doctype, an optional
# <html ...>, then <head ...> or <body ...>, with plain attributes only (names, and
# values with no quote or angle bracket in them). Where it matches, the scan below
# finds the same point; anything else (comments, odd attributes, no match) goes the
# long way.
_ATTRS = rb"""(?:\s++[a-z][a-z0-9_:.-]*+(?:\s*+=\s*+(?:"[^"<>]*+"|'[^'<>]*+'|[^\s"'<>=`]++))?+)*+\s*+>"""
_FAST = re.compile(
    rb"(?:\s++|<!doctype[^<>]*+>)*+(?:<html" + _ATTRS + rb")?+(?:\s++|<!doctype[^<>]*+>)*+<(?:head|body)" + _ATTRS,
    re.IGNORECASE,
)


class Scan(Enum):
    FOUND = "found"  # position is the insertion point
    MORE = "more"  # undecided: call again with more bytes, resuming at position


def _tag_end(buf: bytes | bytearray, i: int) -> int:
    """Index of the ``>`` closing a start tag whose attributes begin at ``i``; -1 if
    not in ``buf`` yet. Quotes count only where an attribute value starts."""
    n = len(buf)
    after_eq = False
    while i < n:
        c = buf[i]
        if c == 0x3E:  # >
            return i
        if c == 0x3D:  # =
            after_eq = True
        elif after_eq and c in (0x22, 0x27):  # " '
            close = buf.find(b'"' if c == 0x22 else b"'", i + 1)
            if close < 0:
                return -1
            i = close
            after_eq = False
        elif c not in _WS:
            after_eq = False
        i += 1
    return -1


def scan(buf: bytes | bytearray, start: int = 0) -> tuple[Scan, int]:
    """Look for the insertion point in ``buf`` from ``start`` (a previous MORE's position)."""
    if start == 0:
        m = _FAST.match(buf)
        if m is not None:
            return Scan.FOUND, m.end()
    return scan_slow(buf, start)


def scan_slow(buf: bytes | bytearray, start: int = 0) -> tuple[Scan, int]:
    """:func:`scan` without the fast path: the parser the fast path must agree with."""
    i = start
    n = len(buf)
    while True:
        j = buf.find(b"<", i)
        if j < 0:
            return Scan.MORE, n
        if j + 1 >= n:
            return Scan.MORE, j
        c = buf[j + 1]
        if c == 0x21:  # <!: a comment, the doctype, CDATA
            if j + 4 > n:
                return Scan.MORE, j
            if buf.startswith(b"<!--", j):
                end = buf.find(b"-->", j + 4)
                if end < 0:
                    return Scan.MORE, j
                i = end + 3
                continue
            end = buf.find(b">", j + 2)
            if end < 0:
                return Scan.MORE, j
            i = end + 1
            continue
        if c == 0x3F or c == 0x2F:  # <? processing instruction (bogus comment), </ end tag
            end = buf.find(b">", j + 2)
            if end < 0:
                return Scan.MORE, j
            i = end + 1
            continue
        if c not in _LETTERS:
            i = j + 1  # a bare "<" in text
            continue
        k = j + 1
        while k < n and buf[k] in _NAME:
            k += 1
        if k >= n:
            return Scan.MORE, j
        name = buf[j + 1 : k].lower()
        if name not in (b"html", b"head", b"body"):
            return Scan.FOUND, j
        end = _tag_end(buf, k)
        if end < 0:
            return Scan.MORE, j
        if name == b"html":
            i = end + 1
            continue
        return Scan.FOUND, end + 1
