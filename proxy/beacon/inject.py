"""The body transform that puts the beacon's tag into one HTML response. Pure.

``feed(chunk, more) -> bytes`` for every body chunk as it arrives, then
``finish() -> bytes`` once: the caller writes whatever comes back (it may be
empty). ``more`` says that further body bytes are already in hand and will be fed
right away: a re-encoded body is then not flushed yet. Flushing only when the
upstream has nothing more ready keeps a slow page streaming (what arrived reaches
the client before the next bytes do) without paying a flush, and a new deflate
block with its own Huffman tables, for every small chunk of a fast one. For the
same reason, decoded bytes that arrive while more are in hand are handed to the
encoder together (up to :data:`COALESCE` bytes): brotli's fast qualities compress
every call on its own, so eleven 1.4 KB calls cost about twice the CPU of one call
and make the output ~50 % larger.

While the insertion point is not found, decoded bytes are held, at most
``max_scan`` of them (and the raw chunks they came from). Once found, the held
prefix goes out with the tag in it and the rest streams: an identity body is
passed through chunk for chunk, an encoded one is decoded and re-encoded chunk for
chunk. When no insertion point turns up within ``max_scan`` bytes, or before the
end, or the body does not decode, the held raw chunks go out untouched and the
rest is passed through: the client gets the upstream's bytes exactly, and
:attr:`Injection.skipped` names why (``no_insertion_point``, ``decode_error``).
A body that stops decoding after the tag went out is cut short (its upstream bytes
were broken anyway): ``skipped`` is then ``decode_error`` too.

``whole(body) -> bytes`` instead, once, when the upstream has already sent the
whole body (a small page, the usual case): one decode, one scan, one encode call,
none of the per-chunk machinery, and the caller can send an exact
``Content-Length``. The insertion point must then lie in the first ``max_scan``
decoded bytes too; what does not decode, or has no insertion point, comes back as
the upstream's bytes. A gzip body whose page id sits in the tag goes through a
:class:`~proxy.beacon.splice.SpliceCache` when one is given: the same upstream
bytes again (from their third time: the second admits them) cost no decoding and
no compression (see :mod:`proxy.beacon.splice`).
"""

from __future__ import annotations

from proxy.beacon.codecs import DecodeError, Decoder, Encoder, codec, decode_all, encode_all
from proxy.beacon.scan import Scan, scan
from proxy.beacon.splice import Parts, SpliceCache

COALESCE = 64 * 1024  # decoded bytes kept for one encoder call while more are in hand
WHOLE_DECODED = 1024 * 1024  # a whole body decoding to more than this goes the streaming way
_BOMB_SLICE = 1024  # ... fed this many encoded bytes at a time (deflate inflates at most ~1,032 x)
_GZIP = ("gzip", "x-gzip")


class Injection:
    """One response's transform; ``coding`` is ``""`` for an identity body."""

    __slots__ = (
        "_around", "_buf", "_cache", "_coding", "_dec", "_enc", "_held", "_max", "_pending", "_pending_bytes",
        "_pos", "_state", "_tag", "page_id", "skipped",
    )  # fmt: skip

    def __init__(
        self,
        tag: bytes,
        coding: str = "",
        max_scan: int = 64 * 1024,
        page_id: str = "",
        cache: SpliceCache | None = None,
        around: tuple[bytes, bytes] | None = None,
    ) -> None:
        """``around``: the tag before and after ``page_id`` when the caller has them
        (the same objects every time hash once); else they are found in ``tag``."""
        self.page_id = page_id  # the pageview's event id, named in the tag and Server-Timing
        self._tag = tag
        self._around = around
        self._max = max_scan
        self._coding = coding
        self._cache = cache
        self._dec: Decoder | None = None  # made on the first feed: whole() needs neither
        self._enc: Encoder | None = None
        self._buf = bytearray()  # decoded bytes held while scanning
        self._held: list[bytes] = []  # the raw chunks they came from (encoded bodies)
        self._pos = 0  # where the scan resumes in _buf
        self._pending: list[bytes] = []  # decoded, after the tag, not yet given to the encoder
        self._pending_bytes = 0
        self._state = "scan"  # scan → inject (tag placed) | raw (gave up) | dead (broken body)
        self.skipped: str | None = None

    @property
    def injected(self) -> bool:
        return self._state == "inject"

    def feed(self, chunk: bytes, more: bool = False) -> bytes:
        state = self._state
        if state == "raw":
            return chunk
        if state == "dead":
            return b""
        dec = self._dec
        if dec is None:
            if not self._coding:  # identity
                if state == "inject":
                    return chunk
                return self._look(chunk, more)
            self._dec, self._enc = codec(self._coding)
            dec = self._dec
        if state == "scan":
            self._held.append(chunk)
        # Piece by piece (at most PIECE decoded bytes each): a chunk that inflates to a
        # lot never sits in memory decoded whole.
        out: list[bytes] = []
        try:
            for piece in dec.decode(chunk):
                if self._state == "inject":
                    out.append(self._encode(piece, True))
                else:
                    out.append(self._look(piece, True))
                    if self._state == "raw":  # gave up: the held raw chunks, this one included, went out
                        return b"".join(out)
        except DecodeError:
            if self._state == "scan":
                out.append(self._give_up("decode_error"))
            else:
                out.append(self._broken(b""))
            return b"".join(out)
        if self._state == "inject":
            out.append(self._encode(b"", more))  # the flush policy, for all of this chunk
        return out[0] if len(out) == 1 else b"".join(out)

    def finish(self) -> bytes:
        state = self._state
        if state in ("raw", "dead"):
            return b""
        if not self._coding:
            if state == "inject":
                return b""
            return self._give_up("no_insertion_point")
        if self._dec is None:  # nothing was fed: an empty body
            self._dec, self._enc = codec(self._coding)
        dec, enc = self._dec, self._enc
        assert enc is not None
        try:
            rest = b"".join(dec.flush())
        except DecodeError:
            return self._broken(b"")
        if state == "inject":
            return self._encode(rest, False, final=True) + enc.finish()
        return self._give_up("no_insertion_point")

    def whole(self, body: bytes) -> bytes:
        """The transformed body when all of ``body`` is in hand, instead of
        :meth:`feed`/:meth:`finish` (see the module's text)."""
        coding = self._coding
        key = None
        cache = self._cache
        page_id = self.page_id.encode()
        if cache is not None and coding in _GZIP and page_id:
            around = self._around
            if around is None:
                tag = self._tag
                at = tag.find(page_id)
                if at >= 0:
                    around = (tag[:at], tag[at + len(page_id) :])
            if around is not None:
                key = cache.key(body, *around)
                parts = cache.get(key, body)
                if parts is not None:  # these very upstream bytes and tag before: no decode either
                    self._state = "inject"
                    return parts.gzip_with(page_id)
        if not coding:
            decoded = body
        else:
            try:
                got = decode_all(coding, body, WHOLE_DECODED)
            except DecodeError:
                return self._skip_whole("decode_error", body)
            if got is None:  # inflates to a lot: decoded and re-encoded a small slice at a time
                out = [self.feed(body[i : i + _BOMB_SLICE], True) for i in range(0, len(body), _BOMB_SLICE)]
                out.append(self.finish())
                return b"".join(out)
            decoded = got
        found, pos = scan(decoded if len(decoded) <= self._max else decoded[: self._max])
        if found is not Scan.FOUND:
            return self._skip_whole("no_insertion_point", body)
        self._state = "inject"
        tag = self._tag
        rest = memoryview(decoded)[pos:]  # not copied before the join
        if not coding:
            return b"".join((decoded[:pos], tag, rest))
        if key is not None and cache is not None and cache.admit(key):  # seen before: keep its parts
            parts = Parts(decoded[:pos] + key[2], b"".join((key[3], rest)), len(page_id))
            cache.put(key, body, parts)
            return parts.gzip_with(page_id)
        return encode_all(coding, b"".join((decoded[:pos], tag, rest)))

    def _skip_whole(self, reason: str, body: bytes) -> bytes:
        self.skipped = reason
        self._state = "raw"
        return body

    def _encode(self, data: bytes, more: bool, final: bool = False) -> bytes:
        """Re-encode decoded bytes. While more are in hand, keep them (up to
        :data:`COALESCE`) for one encoder call later; otherwise flush, unless the end
        of the stream (``final``) follows right away."""
        if more and self._pending_bytes + len(data) <= COALESCE:
            self._pending.append(data)
            self._pending_bytes += len(data)
            return b""
        if self._pending:
            self._pending.append(data)
            data = b"".join(self._pending)
            self._pending = []
            self._pending_bytes = 0
        assert self._enc is not None
        return self._enc.encode(data, not (more or final))

    def _look(self, data: bytes, more: bool) -> bytes:
        """Scan the held prefix and ``data`` after it; place the tag, give up, or keep
        holding. The usual page has its head in the first chunk: that chunk is
        scanned where it is, not copied into the buffer first."""
        buf: bytes | bytearray = data
        if self._buf:
            self._buf += data
            buf = self._buf
        found, pos = scan(buf, self._pos)  # a bytearray is scanned in place, not copied
        if found is Scan.FOUND:
            view = memoryview(buf)
            out = b"".join((view[:pos], self._tag, view[pos:]))  # one copy of the page
            view.release()
            self._buf = bytearray()
            self._held = []
            self._state = "inject"
            return out if self._enc is None else self._encode(out, more)
        self._pos = pos
        if buf is data:
            self._buf += data
        if len(self._buf) > self._max:
            return self._give_up("no_insertion_point")
        return b""

    def _give_up(self, reason: str) -> bytes:
        self.skipped = reason
        self._state = "raw"
        out = b"".join(self._held) if self._coding else bytes(self._buf)
        self._buf = bytearray()
        self._held = []
        return out

    def _broken(self, chunk: bytes) -> bytes:
        if self._state == "scan":
            self._held.append(chunk)
            return self._give_up("decode_error")
        self.skipped = "decode_error"
        self._state = "dead"
        assert self._enc is not None
        return self._encode(b"", False, final=True) + self._enc.finish()  # what decoded well, then the end
