"""Streaming decoders and encoders for the content codings the beacon can rewrite.

A body is decoded chunk by chunk and re-encoded in the same coding. The encoder
is flushed whenever the caller asks (sync flush for gzip/deflate, a flushed
meta-block for br, a flushed block for zstd): the transform asks when the
upstream has no more bytes ready, so a streaming page keeps streaming, while a
body already in hand is compressed as one stream with no flush in between. Each
flush ends a deflate block with its own Huffman tables (or a brotli meta-block):
per small chunk, that was a large share of the re-encoding cost. Decoders hand out their
output in pieces of at most :data:`PIECE` bytes, so a small compressed chunk that
inflates to megabytes never sits in memory whole (gzip, deflate, br).

Levels favour CPU over ratio: the page is compressed a second time on the hot
path (measured in ``load_tests/bench_beacon.py``). gzip and deflate go through
ISA-L (the ``isal`` package, zlib-compatible streams) when it is installed: about
5 x less CPU than the standard library's zlib at level 1 for a 15 KB page, with a
slightly smaller output; without it, the standard ``zlib`` module.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Any, Protocol

import brotli

try:
    from isal import isal_zlib as _deflate
except ImportError:  # pragma: no cover - isal is a dependency; stay correct without it
    _deflate = zlib  # type: ignore[misc,unused-ignore]

try:  # Python 3.14 has it in the standard library; before, the backport
    from compression import zstd as _zstd  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # pragma: no cover - depends on the Python version
    try:
        from backports import zstd as _zstd  # type: ignore[no-redef,unused-ignore]
    except ImportError:  # pragma: no cover
        _zstd = None

ZLIB: Any = _deflate  # the zlib-compatible module in use (ISA-L's when installed)
PIECE = 256 * 1024
GZIP_LEVEL = 1
BROTLI_QUALITY = 1
ZSTD_LEVEL = 3

DecodeError: tuple[type[Exception], ...] = (zlib.error, _deflate.error, brotli.error) + (
    (_zstd.ZstdError,) if _zstd is not None else ()
)


class Decoder(Protocol):
    def decode(self, data: bytes) -> Iterator[bytes]:
        """Decoded pieces of ``data``; raises one of :data:`DecodeError` on bad input."""

    def flush(self) -> Iterator[bytes]:
        """Whatever is left at the end of the body."""


class Encoder(Protocol):
    def encode(self, data: bytes, flush: bool = True) -> bytes:
        """``data`` compressed; with ``flush``, so the client can decode all of it now
        (without, the encoder may keep some of it for later)."""

    def finish(self) -> bytes:
        """The end of the stream."""


class _ZlibDecoder:
    """gzip (members may follow one another), zlib-wrapped or raw deflate."""

    def __init__(self, coding: str) -> None:
        self._gzip = coding == "gzip"
        self._head = b""  # deflate: the wrapper is told by the first two bytes
        self._d: Any = _deflate.decompressobj(16 + zlib.MAX_WBITS) if self._gzip else None

    def decode(self, data: bytes) -> Iterator[bytes]:
        if self._d is None:
            self._head += data
            if len(self._head) < 2:
                return
            b0, b1 = self._head[0], self._head[1]
            zlib_wrapped = b0 & 0x0F == 8 and (b0 << 8 | b1) % 31 == 0
            self._d = _deflate.decompressobj(zlib.MAX_WBITS if zlib_wrapped else -zlib.MAX_WBITS)
            data, self._head = self._head, b""
        while data:
            d = self._d
            yield d.decompress(data, PIECE)
            data = d.unconsumed_tail
            if d.eof:
                rest = d.unused_data
                if self._gzip and rest.strip(b"\x00"):
                    self._d = _deflate.decompressobj(16 + zlib.MAX_WBITS)  # the next gzip member
                    data = rest
                else:
                    return

    def flush(self) -> Iterator[bytes]:
        if self._d is None:
            if self._head:
                raise zlib.error("truncated deflate stream")  # in DecodeError whichever library runs
            return
        rest: bytes = self._d.flush()
        if not self._d.eof:
            raise zlib.error("truncated or corrupt stream")  # in DecodeError whichever library runs
        yield rest


class _BrotliDecoder:
    def __init__(self) -> None:
        self._d = brotli.Decompressor()

    def decode(self, data: bytes) -> Iterator[bytes]:
        d = self._d
        yield d.process(data, output_buffer_limit=PIECE)
        while not d.can_accept_more_data():
            yield d.process(b"", output_buffer_limit=PIECE)

    def flush(self) -> Iterator[bytes]:
        if not self._d.is_finished():
            raise brotli.error("truncated brotli stream")
        return iter(())


class _ZstdDecoder:
    def __init__(self) -> None:
        assert _zstd is not None
        self._d = _zstd.ZstdDecompressor()

    def decode(self, data: bytes) -> Iterator[bytes]:
        while data:
            if self._d.eof:  # a further frame follows the first
                self._d = _zstd.ZstdDecompressor()
            yield self._d.decompress(data)
            data = self._d.unused_data if self._d.eof else b""

    def flush(self) -> Iterator[bytes]:
        if not self._d.eof:
            assert _zstd is not None
            raise _zstd.ZstdError("truncated zstd stream")
        return iter(())


class _ZlibEncoder:
    def __init__(self, coding: str) -> None:
        wbits = 16 + zlib.MAX_WBITS if coding == "gzip" else zlib.MAX_WBITS
        self._c = _deflate.compressobj(GZIP_LEVEL, zlib.DEFLATED, wbits)

    def encode(self, data: bytes, flush: bool = True) -> bytes:
        out: bytes = self._c.compress(data)
        return out + self._c.flush(zlib.Z_SYNC_FLUSH) if flush else out

    def finish(self) -> bytes:
        out: bytes = self._c.flush(zlib.Z_FINISH)
        return out


class _BrotliEncoder:
    def __init__(self) -> None:
        self._c = brotli.Compressor(quality=BROTLI_QUALITY)

    def encode(self, data: bytes, flush: bool = True) -> bytes:
        out: bytes = self._c.process(data)
        return out + self._c.flush() if flush else out

    def finish(self) -> bytes:
        out: bytes = self._c.finish()
        return out


class _ZstdEncoder:
    def __init__(self) -> None:
        assert _zstd is not None
        self._c = _zstd.ZstdCompressor(level=ZSTD_LEVEL)

    def encode(self, data: bytes, flush: bool = True) -> bytes:
        mode = _zstd.ZstdCompressor.FLUSH_BLOCK if flush else _zstd.ZstdCompressor.CONTINUE
        out: bytes = self._c.compress(data, mode)
        return out

    def finish(self) -> bytes:
        out: bytes = self._c.flush(_zstd.ZstdCompressor.FLUSH_FRAME)
        return out


CODINGS = frozenset({"gzip", "x-gzip", "deflate", "br"} | ({"zstd"} if _zstd is not None else set()))


def decoder(coding: str) -> Decoder:
    """A fresh streaming decoder for one body in ``coding`` (one of :data:`CODINGS`)."""
    if coding in ("gzip", "x-gzip", "deflate"):
        return _ZlibDecoder("deflate" if coding == "deflate" else "gzip")
    if coding == "br":
        return _BrotliDecoder()
    if coding == "zstd" and _zstd is not None:
        return _ZstdDecoder()
    raise ValueError(f"cannot rewrite content coding {coding!r}")


def encoder(coding: str) -> Encoder:
    """A fresh streaming encoder for one body in ``coding`` (one of :data:`CODINGS`)."""
    if coding in ("gzip", "x-gzip", "deflate"):
        return _ZlibEncoder("deflate" if coding == "deflate" else "gzip")
    if coding == "br":
        return _BrotliEncoder()
    if coding == "zstd" and _zstd is not None:
        return _ZstdEncoder()
    raise ValueError(f"cannot rewrite content coding {coding!r}")


def decode_all(coding: str, body: bytes, limit: int) -> bytes | None:
    """A whole body decoded at once; None when it decodes to more than ``limit``
    bytes (the caller streams it instead, so a bomb never sits in memory whole).
    Raises one of :data:`DecodeError` on a broken or truncated body."""
    dec = decoder(coding)
    pieces = []
    size = 0
    for piece in dec.decode(body):
        size += len(piece)
        if size > limit:
            return None
        pieces.append(piece)
    pieces.extend(dec.flush())
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


def encode_all(coding: str, data: bytes) -> bytes:
    """``data`` encoded in ``coding`` in one call: one stream, no flush inside."""
    if coding in ("gzip", "x-gzip"):
        out: bytes = _deflate.compress(data, GZIP_LEVEL, wbits=16 + zlib.MAX_WBITS)
    elif coding == "deflate":
        out = _deflate.compress(data, GZIP_LEVEL, wbits=zlib.MAX_WBITS)
    elif coding == "br":
        out = brotli.compress(data, quality=BROTLI_QUALITY)
    elif coding == "zstd" and _zstd is not None:
        out = _zstd.compress(data, ZSTD_LEVEL)
    else:
        raise ValueError(f"cannot rewrite content coding {coding!r}")
    return out


def codec(coding: str) -> tuple[Decoder, Encoder]:
    """A fresh decoder/encoder pair for one body in ``coding`` (one of :data:`CODINGS`)."""
    return decoder(coding), encoder(coding)
