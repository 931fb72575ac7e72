"""The body transform, with documents split at every offset, plain and encoded."""

from __future__ import annotations

import gzip
import random
import tracemalloc
import zlib

import brotli
import pytest

from proxy.beacon.codecs import BROTLI_QUALITY, CODINGS
from proxy.beacon.inject import COALESCE, WHOLE_DECODED, Injection
from proxy.beacon.scan import _FAST, Scan, scan, scan_slow
from proxy.beacon.splice import STORED_MAX, Parts, SpliceCache

TAG = b'<script src="/_ff/v.js" defer></script>'

# (document, the expected output): T marks where the tag goes.
DOCS = [
    (b"<!doctype html><html><head><title>x</title></head><body>hi</body></html>",
     b"<!doctype html><html><head>T<title>x</title></head><body>hi</body></html>"),
    (b'<!DOCTYPE html>\n<HTML lang="en"><HEAD data-x="a>b" id=h>\n<meta charset=utf-8>',
     b'<!DOCTYPE html>\n<HTML lang="en"><HEAD data-x="a>b" id=h>T\n<meta charset=utf-8>'),
    # </head> inside an inline script string, before the real one: the opening tag decides
    (b"<html><head><script>var s='</head><body>';</script></head><body>x</body></html>",
     b"<html><head>T<script>var s='</head><body>';</script></head><body>x</body></html>"),
    # no <head>: after <body ...>
    (b"<!doctype html><html><body class=a><p>x</p></body></html>",
     b"<!doctype html><html><body class=a>T<p>x</p></body></html>"),
    # no <head>, no <body>: before the first element, after the doctype and comments
    (b"<!doctype html><!-- <head> in a comment --><title>t</title><p>x",
     b"<!doctype html><!-- <head> in a comment -->T<title>t</title><p>x"),
    (b"<?xml version='1.0'?><header>not a head</header>",
     b"<?xml version='1.0'?>T<header>not a head</header>"),
    (b"a < b and c <3 <head>", b"a < b and c <3 <head>T"),
    ("<!doctype html><head><title>é ü 😀</title>".encode(), "<!doctype html><head>T<title>é ü 😀</title>".encode()),
]  # fmt: skip
NO_POINT = [b"just text, no tags at all", b"<!doctype html><!-- never closed", b"<html", b""]


def encode(coding: str, body: bytes) -> bytes:
    if coding == "gzip":
        return gzip.compress(body)
    if coding == "deflate":
        return zlib.compress(body)
    if coding == "br":
        return brotli.compress(body)
    if coding == "zstd":
        from backports import zstd

        return bytes(zstd.compress(body))
    return body


def decode(coding: str, body: bytes) -> bytes:
    if coding == "gzip":
        return gzip.decompress(body)
    if coding == "deflate":
        return zlib.decompress(body)
    if coding == "br":
        return bytes(brotli.decompress(body))
    if coding == "zstd":
        from backports import zstd

        return bytes(zstd.decompress(body))
    return body


def run(
    chunks: list[bytes], coding: str = "", max_scan: int = 64 * 1024, more: bool = False
) -> tuple[bytes, Injection]:
    """``more``: every chunk is fed as if the next were already in hand (no flushes)."""
    inj = Injection(TAG, coding, max_scan)
    out = b"".join(inj.feed(c, more) for c in chunks) + inj.finish()
    return out, inj


def splits(data: bytes) -> list[list[bytes]]:
    """Every way to cut ``data`` in two, plus one byte at a time."""
    return [[data[:i], data[i:]] for i in range(len(data) + 1)] + [[data[i : i + 1] for i in range(len(data))]]


@pytest.mark.parametrize(("doc", "want"), DOCS)
def test_identity_body_split_everywhere(doc: bytes, want: bytes) -> None:
    expected = _expected(doc, want)
    for chunks in splits(doc):
        out, inj = run(chunks)
        assert out == expected, chunks
        assert inj.injected and inj.skipped is None


def _expected(doc: bytes, want: bytes) -> bytes:
    i = next(i for i in range(len(want)) if i >= len(doc) or want[i] != doc[i])
    assert want[i : i + 1] == b"T" and want[i + 1 :] == doc[i:]
    return doc[:i] + TAG + doc[i:]


@pytest.mark.parametrize("coding", sorted(CODINGS - {"x-gzip"}))
@pytest.mark.parametrize(("doc", "want"), DOCS[:4])
@pytest.mark.parametrize("more", [False, True])
def test_encoded_body_split_everywhere(coding: str, doc: bytes, want: bytes, more: bool) -> None:
    body = encode(coding, doc)
    expected = _expected(doc, want)
    for chunks in splits(body):
        out, inj = run(chunks, coding, more=more)
        assert decode(coding, out) == expected, (coding, chunks)
        assert inj.injected


@pytest.mark.parametrize("coding", ["", "gzip", "br"])
@pytest.mark.parametrize("doc", NO_POINT)
def test_no_insertion_point_passes_the_bytes_through(coding: str, doc: bytes) -> None:
    body = encode(coding, doc)
    for chunks in splits(body):
        out, inj = run(chunks, coding)
        assert out == body
        assert inj.skipped == "no_insertion_point" and not inj.injected


@pytest.mark.parametrize("coding", ["", "gzip", "br"])
def test_gives_up_after_max_scan_and_streams_the_rest_unchanged(coding: str) -> None:
    doc = b"<!-- " + random.Random(1).randbytes(2500).hex().encode() + b" --><head><p>after"  # compresses poorly
    body = encode(coding, doc)
    pieces = [body[i : i + 100] for i in range(0, len(body), 100)]
    out, inj = run(pieces, coding, max_scan=1000)
    assert out == body
    assert inj.skipped == "no_insertion_point"
    out, inj = run(pieces, coding, max_scan=10_000)
    assert decode(coding, out) == doc.replace(b"<head>", b"<head>" + TAG)


def test_large_encoded_body_streams_per_chunk() -> None:
    """After the tag, every chunk of a gzip body yields output at once (sync flush),
    so a streaming page is not held back."""
    doc = b"<html><head><title>t</title></head><body>" + b"".join(b"<p>row %d</p>" % i for i in range(20000))
    body = gzip.compress(doc)
    inj = Injection(TAG, "gzip")
    outs = [inj.feed(body[i : i + 4096]) for i in range(0, len(body), 4096)]
    outs.append(inj.finish())
    assert all(outs[1:-1])
    assert gzip.decompress(b"".join(outs)) == doc.replace(b"<head>", b"<head>" + TAG)


STREAM_DECODERS = {
    "gzip": lambda: zlib.decompressobj(31).decompress,
    "deflate": lambda: zlib.decompressobj().decompress,
    "br": lambda: brotli.Decompressor().process,
}


@pytest.mark.parametrize("coding", sorted(STREAM_DECODERS))
def test_flushes_only_when_no_more_bytes_are_in_hand(coding: str) -> None:
    """``more``: the encoder keeps what it has (one stream, no flush per chunk);
    without it, everything fed so far decodes at the client now."""
    head = b"<!doctype html><html><head><title>t</title></head><body>"
    rows = [b"".join(b"<p>row %d of chunk %d</p>" % (i, n) for i in range(40)) for n in range(4)]
    body = encode(coding, head + b"".join(rows))
    cut = len(body) // 3
    inj = Injection(TAG, coding)
    client = STREAM_DECODERS[coding]()
    held_back = client(inj.feed(body[:cut], more=True))
    assert len(held_back) < len(head)  # nothing flushed: not even the tag is out yet
    now = client(inj.feed(body[cut : 2 * cut], more=False))
    seen = held_back + now
    assert seen.startswith(head.replace(b"<head>", b"<head>" + TAG))
    assert len(seen) > len(head) + len(TAG) + len(rows[0])  # all decoded so far, flushed
    out = inj.feed(body[2 * cut :], more=True) + inj.finish()
    assert seen + client(out) == (head + b"".join(rows)).replace(b"<head>", b"<head>" + TAG)


def test_decoded_bytes_in_hand_go_to_the_encoder_together() -> None:
    """brotli compresses every encoder call on its own: pieces that arrive while
    more are in hand are encoded in one call (smaller output), but never more than
    COALESCE bytes wait for the end of the body."""
    doc = b"<html><head><title>t</title></head><body>" + b"".join(b"<p>row %d</p>" % i for i in range(20000))
    body = brotli.compress(doc)
    chunks = [body[i : i + 1400] for i in range(0, len(body), 1400)]
    inj = Injection(TAG, "br")
    outs = [inj.feed(c, more=True) for c in chunks]
    together = b"".join(outs) + inj.finish()
    assert decode("br", together) == doc.replace(b"<head>", b"<head>" + TAG)
    assert any(outs)  # bounded: the first COALESCE bytes went out before the end
    assert len(doc) > 2 * COALESCE
    one = brotli.Compressor(quality=BROTLI_QUALITY)
    one_call = one.process(doc.replace(b"<head>", b"<head>" + TAG)) + one.finish()
    assert len(together) <= len(one_call) * 1.02  # as small as one call (a call per chunk: +11 %)


@pytest.mark.parametrize("more", [False, True])
def test_identity_head_in_the_first_chunk_or_held(more: bool) -> None:
    """The head found in the first chunk (scanned where it is) or after bytes were
    held gives the same page."""
    doc = b"<!doctype html><html><head><title>t</title>" + b"x" * 5000
    want = doc.replace(b"<head>", b"<head>" + TAG)
    assert run([doc], more=more)[0] == want
    assert run([doc[:10], doc[10:]], more=more)[0] == want


def test_multi_member_gzip() -> None:
    doc1, doc2 = b"<html><head><title>a</title>", b"</head><body>b</body></html>"
    body = gzip.compress(doc1) + gzip.compress(doc2)
    for chunks in splits(body)[:: max(1, len(body) // 40)]:
        out, _ = run(chunks, "gzip")
        assert gzip.decompress(out) == (doc1 + doc2).replace(b"<head>", b"<head>" + TAG)


@pytest.mark.parametrize("coding", ["gzip", "br", "deflate"])
def test_undecodable_body_passes_through_untouched(coding: str) -> None:
    body = b"\x1f\x8b\x08garbage that is not compressed <head>"
    if coding == "br":
        body = b"\xff\xff\xff\xff<head> not brotli"
    if coding == "deflate":
        body = b"\x78\x9c\xff\xff<head> not deflate"
    for chunks in splits(body):
        out, inj = run(chunks, coding)
        assert out == body
        assert inj.skipped == "decode_error"


def test_broken_after_the_tag_ends_the_stream_cleanly() -> None:
    doc = b"<html><head><title>t</title></head><body>" + random.Random(2).randbytes(3000).hex().encode()
    good = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    start = good.compress(doc[:100]) + good.flush(zlib.Z_SYNC_FLUSH)
    inj = Injection(TAG, "gzip")
    out = inj.feed(start) + inj.feed(b"\xff" * 500) + inj.feed(b"more") + inj.finish()
    assert inj.skipped == "decode_error" and not inj.injected
    assert zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(out).startswith(b"<html><head>" + TAG)


# --- the whole body at once -----------------------------------------------------------

ID_A, ID_B = "0190a1b2c3d47e8f9a0b1c2d3e4f5a6b", "0190a1b2c3d47e8f9a0b1c2d3e4f5a6c"


def id_tag(page_id: str, nonce: str = "") -> bytes:
    extra = f' nonce="{nonce}"' if nonce else ""
    return f'<script src="/_ff/v.js" defer data-ff-page="{page_id}"{extra}></script>'.encode()


@pytest.mark.parametrize("coding", ["", *sorted(CODINGS)])
@pytest.mark.parametrize(("doc", "want"), DOCS)
@pytest.mark.parametrize("cached", [False, True])
def test_whole_body_at_once(coding: str, doc: bytes, want: bytes, cached: bool) -> None:
    """One decode, scan and encode: the same page as the streaming transform, in
    every coding, with the splice cache or without."""
    body = encode("gzip" if coding == "x-gzip" else coding, doc)
    cache = SpliceCache(1 << 20) if cached else None
    for page_id in (ID_A, ID_B, ID_A):  # gzip: plain, then admitted (spliced), then a cache hit
        tag = id_tag(page_id)
        inj = Injection(tag, coding, page_id=page_id, cache=cache)
        out = inj.whole(body)
        at = _expected_at(doc, want)
        assert decode("gzip" if coding == "x-gzip" else coding, out) == doc[:at] + tag + doc[at:]
        assert inj.injected and inj.skipped is None
    if cache is not None and coding in ("gzip", "x-gzip"):
        assert (cache.hits, cache.misses, len(cache)) == (1, 2, 1)
    elif cache is not None:
        assert len(cache) == 0


def _expected_at(doc: bytes, want: bytes) -> int:
    return next(i for i in range(len(want)) if i >= len(doc) or want[i] != doc[i])


@pytest.mark.parametrize("coding", ["", "gzip", "br", "deflate"])
@pytest.mark.parametrize("doc", NO_POINT)
def test_whole_without_insertion_point_is_the_upstreams_bytes(coding: str, doc: bytes) -> None:
    body = encode(coding, doc)
    inj = Injection(TAG, coding, cache=SpliceCache(1 << 20))
    assert inj.whole(body) == body
    assert inj.skipped == "no_insertion_point" and not inj.injected


@pytest.mark.parametrize("coding", ["gzip", "br", "deflate", "zstd"])
def test_whole_undecodable_or_truncated_is_the_upstreams_bytes(coding: str) -> None:
    doc = b"<!doctype html><html><head><title>t</title>" + b"<p>x</p>" * 100
    for body in (encode(coding, doc)[:-7], b"\xff\xfe garbage <head>"):
        inj = Injection(TAG, coding, cache=SpliceCache(1 << 20))
        assert inj.whole(body) == body
        assert inj.skipped == "decode_error" and not inj.injected
    inj = Injection(TAG, coding)
    assert inj.whole(b"") == b"" and not inj.injected  # an empty body (deflate: no insertion point)


def test_whole_looks_for_the_insertion_point_in_max_scan_bytes_only() -> None:
    doc = b"<!-- " + b"x" * 2000 + b" --><head><p>after"
    for coding in ("", "gzip"):
        body = encode(coding, doc)
        inj = Injection(TAG, coding, max_scan=1000)
        assert inj.whole(body) == body and inj.skipped == "no_insertion_point"
        inj = Injection(TAG, coding, max_scan=4000)
        assert decode(coding, inj.whole(body)) == doc.replace(b"<head>", b"<head>" + TAG)


def test_whole_bomb_is_decoded_piece_by_piece() -> None:
    """A body that inflates past WHOLE_DECODED is not decoded into memory in one
    piece: it goes through the streaming transform, with the same result."""
    doc = b"<html><head></head><body>" + b"a" * (WHOLE_DECODED + 1000)
    body = gzip.compress(doc)
    inj = Injection(id_tag(ID_A), "gzip", page_id=ID_A, cache=SpliceCache(1 << 20))
    assert gzip.decompress(inj.whole(body)) == doc.replace(b"<head>", b"<head>" + id_tag(ID_A))
    assert inj.injected


@pytest.mark.parametrize("how", ["whole", "one_chunk"])
def test_a_bomb_never_sits_in_memory_decoded(how: str) -> None:
    """64 MiB of decoded page in 64 KB of gzip, whole or as one streamed chunk:
    transformed with far less than that in memory at any time."""
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    head = b"<html><head></head><body>"
    body = c.compress(head) + b"".join(c.compress(b"a" * (1 << 20)) for _ in range(64)) + c.flush()
    tracemalloc.start()
    try:
        inj = Injection(TAG, "gzip")
        out = inj.whole(body) if how == "whole" else inj.feed(body) + inj.finish()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, peak
    d = zlib.decompressobj(31)
    first = d.decompress(out, 1000)
    assert first.startswith(head.replace(b"<head>", b"<head>" + TAG))
    size = len(first)
    while d.unconsumed_tail:
        size += len(d.decompress(d.unconsumed_tail, 1 << 20))
    assert size + len(d.flush()) == len(head) + len(TAG) + (64 << 20) and d.eof


def test_spliced_gzip_is_one_ordinary_member() -> None:
    """The cached parts around the id make a gzip body that every decoder reads
    (one-shot, streaming byte by byte, the CRC and length checked), for a short
    part before the id (stored) and a long one (compressed), and the same upstream
    bytes with another nonce are another entry."""
    rng = random.Random(3)
    for lead in (b"", b"<!-- " + rng.randbytes(STORED_MAX).hex().encode() + b" -->"):
        doc = lead + b"<!doctype html><html><head><title>t</title></head><body>" + b"<p>hi</p>" * 500
        body = gzip.compress(doc)
        cache = SpliceCache(1 << 20)
        outs = []
        # admitted on the second sighting, then hits; another nonce: another entry
        for page_id, nonce in ((ID_A, ""), (ID_B, ""), (ID_A, ""), (ID_B, "n1"), (ID_A, "n1"), (ID_B, "n1")):
            tag = id_tag(page_id, nonce)
            out = Injection(tag, "gzip", page_id=page_id, cache=cache).whole(body)
            want = doc.replace(b"<head>", b"<head>" + tag)
            assert gzip.decompress(out) == want
            d = zlib.decompressobj(31)
            assert b"".join(d.decompress(out[i : i + 1]) for i in range(len(out))) + d.flush() == want
            assert d.eof and not d.unused_data
            outs.append(out)
        assert (cache.hits, cache.misses, len(cache)) == (2, 4, 2)
        assert outs[1][:10] == outs[2][:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # spliced ones
        assert len(outs[1]) == len(outs[2]) and outs[1] != outs[2]
        if not lead:  # the part before the id goes stored: a few hundred bytes at most
            assert len(outs[2]) <= len(gzip.compress(want, 1)) + doc.index(b"<title>") + 64


def test_splice_cache_is_bounded_and_exact() -> None:
    parts = Parts(b"<head><script data-ff-page=\"", b"\"></script>" + b"<p>x</p>" * 300, 32)
    cache = SpliceCache(20 * (parts.size + 1000), seen=10)
    bodies = [bytes(1000) + b"%04d" % i for i in range(100)]
    for body in bodies:
        cache.put(cache.key(body, b"", b""), body, parts)
        assert cache.bytes <= cache.max_bytes
    assert 15 <= len(cache) <= 20
    assert cache.get(cache.key(bodies[99], b"", b""), bodies[99]) is parts  # the newest stay
    assert cache.get(cache.key(bodies[0], b"", b""), bodies[0]) is None  # the oldest went
    big = bytes(cache.max_bytes)
    cache.put(cache.key(big, b"", b""), big, parts)  # larger than the whole cache: not kept
    assert cache.bytes <= cache.max_bytes and cache.get(cache.key(big, b"", b""), big) is None
    # A key that matches (CRC-32 and length) with other bytes is a miss, never another page's parts.
    assert cache.get(cache.key(bodies[99], b"", b""), bytes(1000) + b"xxxx") is None
    # Admission: on the second sighting among the last `seen` keys.
    assert [cache.admit(k) for k in (1, 2, 1)] == [False, False, True]  # type: ignore[arg-type]
    for k in range(3, 20):
        cache.admit(k)  # type: ignore[arg-type]
    assert cache.admit(2) is False  # forgotten


@pytest.mark.parametrize(
    ("buf", "result"),
    [
        (b"", (Scan.MORE, 0)),
        (b"<", (Scan.MORE, 0)),
        (b"<!-", (Scan.MORE, 0)),
        (b"<!doctype html><hea", (Scan.MORE, 15)),
        (b"<!doctype html><head", (Scan.MORE, 15)),
        (b"<!doctype html><head>", (Scan.FOUND, 21)),
        (b"<html><head a='>'", (Scan.MORE, 6)),
        (b"<html><meta>", (Scan.FOUND, 6)),
        (b"text only", (Scan.MORE, 9)),
    ],
)
def test_scan_table(buf: bytes, result: tuple[Scan, int]) -> None:
    assert scan(buf) == result


def test_scan_fast_path_agrees_with_the_parser() -> None:
    """The one-regex fast path for the usual document start finds exactly what the
    byte-by-byte scan finds, on every prefix of many generated starts."""
    rng = random.Random(7)
    pieces = [
        b"<!doctype html>", b"<!DOCTYPE html PUBLIC '-//W3C//DTD'>", b"\n", b"  ", b"<html>", b'<html lang="en">',
        b"<HTML class=a data-x='1'>", b"<head>", b"<HEAD id=h>", b'<head data-x="a>b">', b"<body>",
        b"<body class=x>", b"<header>", b"<!-- c -->", b"<title>t</title>", b"<meta charset=utf-8>", b"x",
        b"<html\tlang = en >", b"<head a=b c>", b'<head a="<">', b"<html/>", b"<?xml?>", b"</head>", b"<",
    ]  # fmt: skip
    fast = 0
    for _ in range(3000):
        doc = b"".join(rng.choice(pieces) for _ in range(rng.randint(1, 6)))
        for cut in range(len(doc) + 1):
            buf = doc[:cut]
            assert scan(buf) == scan_slow(buf), buf
            fast += _FAST.match(buf) is not None
    assert fast > 1000  # the fast path was taken, not only the long way
