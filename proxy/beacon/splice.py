"""gzip pages that differ only in the page id, compressed once. Pure.

Every page view gets its own tag: ``<script … data-ff-page="ID">`` with a fresh
32-character id. When the upstream sends the same gzip bytes again (a static or
cached page, the common case), everything but those 32 characters is the same
as last time, and compressing it again is most of the beacon's cost. So the
re-encoded body is one gzip member made of three deflate parts, and the two that
do not change are kept:

- ``prefix``: the gzip header and the page up to and including ``data-ff-page="``
  (the head's start: usually a few hundred bytes), opening a *stored* block that
  the id ends: no compression to redo, and no Huffman tables (when that part is
  longer than :data:`STORED_MAX`, it is compressed instead and ended with a sync
  flush, and the id gets a stored block of its own);
- the id, 32 bytes as they are;
- ``rest``: raw deflate of the rest of the page, the final block. It is compressed
  on its own, so its back-references never reach into the part before it: it
  decodes the same whatever the id is (what is lost is matches into the first
  few hundred bytes: a few bytes of output).

Then the trailer: CRC-32 of the decoded page (combined from the parts' CRCs, so
the page is not read again) and its length. Any gzip decoder reads the result as
one ordinary member.

:class:`SpliceCache` keeps the parts per upstream body (the encoded bytes, exact,
not a hash: no collision can give one page another's content) and tag, bounded
in bytes, least recently used first out.
"""

from __future__ import annotations

import struct
import zlib
from collections import OrderedDict

from proxy.beacon.codecs import GZIP_LEVEL
from proxy.beacon.codecs import ZLIB as _deflate

_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # gzip, deflate, no name, no mtime, OS unknown
STORED_MAX = 4096  # the page before the id is sent stored up to this size, compressed beyond


def _stored(n: int) -> bytes:
    """The header of a stored block of ``n`` bytes, not the last one (on a byte boundary)."""
    return struct.pack("<BHH", 0, n, n ^ 0xFFFF)


class Parts:
    """The kept parts of one page (see the module's text)."""

    __slots__ = ("crc_before", "crc_rest", "id_len", "len_before", "len_rest", "prefix", "rest", "size")

    def __init__(self, before: bytes, rest_plain: bytes, id_len: int) -> None:
        if len(before) + id_len <= STORED_MAX:
            self.prefix = _HEADER + _stored(len(before) + id_len) + before
        else:
            c = _deflate.compressobj(GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
            self.prefix = _HEADER + c.compress(before) + c.flush(zlib.Z_SYNC_FLUSH) + _stored(id_len)
        self.rest = _deflate.compress(rest_plain, GZIP_LEVEL, wbits=-zlib.MAX_WBITS)
        self.id_len = id_len
        self.crc_before, self.crc_rest = _deflate.crc32(before), _deflate.crc32(rest_plain)
        self.len_before, self.len_rest = len(before), len(rest_plain)
        self.size = len(self.prefix) + len(self.rest)

    def gzip_with(self, page_id: bytes) -> bytes:
        """The gzip body with ``page_id`` (``id_len`` bytes) in its place."""
        assert len(page_id) == self.id_len
        crc = _deflate.crc32_combine(_deflate.crc32(page_id, self.crc_before), self.crc_rest, self.len_rest)
        size = (self.len_before + self.id_len + self.len_rest) & 0xFFFFFFFF
        return b"".join((self.prefix, page_id, self.rest, struct.pack("<II", crc, size)))


Key = tuple[int, int, bytes, bytes]  # CRC-32 and length of the upstream's body, tag before the id, after it


class SpliceCache:
    """At most ``max_bytes`` of parts and the upstream bodies they belong to.

    Looked up by the body's CRC-32 and length (ISA-L's CRC: ~0.1 µs for a 4 KB
    body, where hashing the bytes costs 1-2 µs), then the body itself is compared,
    so a CRC collision is only a miss. A body is admitted on its second sighting
    (:meth:`admit`): a page seen once, as with a per-request token in it, is
    compressed the plain way and costs the cache nothing but its key in
    ``seen``, a bounded set of recent keys."""

    def __init__(self, max_bytes: int, seen: int = 4096) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Key, tuple[bytes, Parts]] = OrderedDict()
        self._seen: OrderedDict[Key, None] = OrderedDict()
        self._max_seen = seen
        self._bytes = 0
        self.hits = self.misses = 0

    @staticmethod
    def key(body: bytes, before: bytes, after: bytes) -> Key:
        return (_deflate.crc32(body), len(body), before, after)

    def get(self, key: Key, body: bytes) -> Parts | None:
        entry = self._entries.get(key)
        if entry is None or (entry[0] is not body and entry[0] != body):
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        return entry[1]

    def admit(self, key: Key) -> bool:
        """Whether to keep this body's parts: True when its key was seen recently."""
        seen = self._seen
        if key in seen:
            del seen[key]
            return True
        seen[key] = None
        if len(seen) > self._max_seen:
            seen.popitem(last=False)
        return False

    def put(self, key: Key, body: bytes, parts: Parts) -> None:
        cost = len(body) + parts.size
        if cost > self.max_bytes:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= len(old[0]) + old[1].size
        self._entries[key] = (body, parts)
        self._bytes += cost
        while self._bytes > self.max_bytes:
            _, (b, p) = self._entries.popitem(last=False)
            self._bytes -= len(b) + p.size

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        return self._bytes
