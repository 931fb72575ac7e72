"""The on-disk spool: order, rotation, bound, torn records, lock and cursor."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from proxy.stream.spool import Spool, SpoolLocked


def _open(path: Path, *, max_bytes: int = 1 << 20, segment_bytes: int = 1 << 16) -> Spool:
    return Spool(path, max_bytes=max_bytes, segment_bytes=segment_bytes).open()


def _drain(spool: Spool, chunk: int = 7) -> list[bytes]:
    out: list[bytes] = []
    while spool:
        records, token = spool.read_chunk(chunk)
        out.extend(records)
        spool.commit(token)
    return out


def _payloads(n: int, start: int = 0) -> list[bytes]:
    return [b'{"id":"%06d","pad":"%s"}' % (i, b"x" * 40) for i in range(start, start + n)]


def _segments(path: Path) -> list[str]:
    return sorted(p.name for p in path.glob("seg-*.ndjson"))


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    s = _open(tmp_path / "spool", segment_bytes=1000)
    yield s
    s.close()


def test_order_rotation_and_deletion(spool: Spool) -> None:
    data = _payloads(100)  # ~63 bytes each: ~16 per 1000-byte segment
    assert spool.append(data[:40]) == 0
    assert spool.append(data[40:]) == 0
    assert len(_segments(spool.directory)) >= 6
    assert spool.pending_bytes == sum(len(p) + 1 for p in data)
    assert _drain(spool) == data
    assert _segments(spool.directory) == []  # fully replayed segments are deleted
    assert spool.pending_bytes == 0
    # Appending after a full replay starts a new segment and replays from it.
    assert spool.append(data[:3]) == 0
    assert _drain(spool) == data[:3]


def test_newline_in_payload_is_replaced(spool: Spool) -> None:
    spool.append([b'{\n"a": 1}', b'{"b":2}'])
    assert _drain(spool) == [b'{ "a": 1}', b'{"b":2}']


def test_bound_returns_not_written(tmp_path: Path) -> None:
    s = _open(tmp_path, max_bytes=1000, segment_bytes=300)
    data = _payloads(30)  # 63 bytes a line: 15 fit in 1000 bytes
    assert s.append(data) == 15
    assert s.disk_bytes <= 1000
    assert s.append(data[:1]) == 1
    assert not s.writable()
    # Replaying frees room again (a deleted segment).
    assert _drain(s) == data[:15]
    assert s.writable()
    assert s.append(data[15:]) == 0
    s.close()


def test_read_without_commit_returns_the_same_chunk(spool: Spool) -> None:
    data = _payloads(10)
    spool.append(data)
    first, _ = spool.read_chunk(4)
    again, token = spool.read_chunk(4)
    assert first == again == data[:4]
    spool.commit(token)
    assert spool.read_chunk(4)[0] == data[4:8]


def test_cursor_survives_restart(tmp_path: Path) -> None:
    s = _open(tmp_path, segment_bytes=500)
    data = _payloads(40)
    s.append(data)
    records, token = s.read_chunk(12)
    s.commit(token)
    # The commit is on disk at once, not only at close().
    assert (tmp_path / "cursor").read_text().split() == [str(n) for n in token]
    s.read_chunk(5)  # read (sent) but not acknowledged when the process stops
    s.close()
    s2 = _open(tmp_path, segment_bytes=500)
    # At most one chunk is sent again; nothing is lost.
    assert records + _drain(s2) == data
    s2.close()


def test_restart_never_appends_to_old_segments(tmp_path: Path) -> None:
    s = _open(tmp_path)
    s.append(_payloads(3))
    s.close()
    s2 = _open(tmp_path)
    s2.append(_payloads(2, start=3))
    assert len(_segments(tmp_path)) == 2
    assert _drain(s2) == _payloads(5)
    s2.close()


def test_torn_last_record_is_skipped_and_counted(tmp_path: Path) -> None:
    s = _open(tmp_path)
    s.append(_payloads(3))
    s.close()
    segment = tmp_path / _segments(tmp_path)[0]
    with segment.open("ab") as fh:
        fh.write(b'{"id":"torn","pa')  # a crash in the middle of a write
    s2 = _open(tmp_path)
    s2.append(_payloads(1, start=3))
    records, token = s2.read_chunk(100)
    assert records == _payloads(4)
    records_again, _ = s2.read_chunk(100)  # re-reading (a failed send) counts it once
    assert records_again == records
    s2.commit(token)
    assert s2.torn_records == 1
    assert not s2
    s2.close()


def test_second_opener_is_refused(tmp_path: Path) -> None:
    s = _open(tmp_path)
    with pytest.raises(SpoolLocked, match="in use"):
        _open(tmp_path)
    s.close()
    _open(tmp_path).close()  # released on close


def test_garbled_cursor_replays_from_the_start(tmp_path: Path) -> None:
    s = _open(tmp_path)
    s.append(_payloads(5))
    s.close()
    (tmp_path / "cursor").write_text("garbage")
    s2 = _open(tmp_path)
    assert _drain(s2) == _payloads(5)
    s2.close()


def test_closed_spool_writes_nothing(tmp_path: Path) -> None:
    s = _open(tmp_path)
    s.close()
    assert s.append(_payloads(2)) == 2
    assert not s.writable()


def test_a_spool_left_full_of_large_records_is_not_writable_after_restart(tmp_path: Path) -> None:
    """Free space under one record is no room: the longest record found at open
    counts, so a restarted process does not report itself ready to spool."""
    first = _open(tmp_path, max_bytes=4096, segment_bytes=1024)
    record = b"x" * 700
    assert first.append([record] * 10) > 0  # refused some: full
    assert not first.writable()
    first.close()
    second = _open(tmp_path, max_bytes=4096, segment_bytes=1024)
    assert 4096 - second.disk_bytes > 4096 // 8  # more free than the fixed margin ...
    assert not second.writable()  # ... but less than one record
    second.close()
