"""The on-disk spool: events waiting for Redis, kept in order across restarts.

Layout of the spool directory:

- ``seg-000000000001.ndjson`` … append-only segments, one payload per line.
  Payloads are JSON (orjson never emits a raw newline); a newline inside a
  payload could only be insignificant JSON whitespace and is replaced by a space.
  Empty lines are skipped. ``cat`` shows what is waiting.
- ``cursor``: ``"<segment number> <byte offset>"``, the first record not yet
  acknowledged by Redis. Rewritten (atomically, by rename) after each replayed
  chunk, so a crash mid-replay re-sends at most one chunk (at-least-once).
- ``spool.lock``: held with ``flock`` while open; a second opener gets
  :class:`SpoolLocked`.

Segments are rotated at ``segment_bytes``; segments on disk never exceed
``max_bytes`` in total: :meth:`Spool.append` writes what fits and returns how
many payloads it did NOT write, for the caller to count as dropped. A process
never appends to a segment left by an earlier run; the last record of such a
segment may be torn by a crash: it is skipped with a warning and counted in
``torn_records``. A fully replayed segment is deleted.

Writes go to the OS on every append (unbuffered ``os.write``), so a crash of the
process loses nothing; ``close()`` fsyncs. All I/O is synchronous: appends are
small and the single owner is the publisher's flush task. Not thread-safe.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

_SEGMENT = re.compile(r"^seg-(\d{12})\.ndjson$")


class SpoolLocked(RuntimeError):
    """Another process (or another open Spool) holds this spool directory."""


def _segment_name(number: int) -> str:
    return f"seg-{number:012d}.ndjson"


class Spool:
    """An ordered on-disk queue of payloads. Open with :meth:`open`, always :meth:`close`."""

    def __init__(self, directory: Path, *, max_bytes: int, segment_bytes: int) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.torn_records = 0  # torn last lines skipped since open (lost events)
        self._lock_fh: IO[bytes] | None = None
        self._sizes: dict[int, int] = {}  # segment number -> bytes on disk, oldest first
        self._next = 1  # number of the next segment to create
        self._active: int | None = None  # segment this process appends to
        self._active_fd: int | None = None
        self._read_seg = 1  # cursor: segment and offset of the first unacknowledged record
        self._read_off = 0
        self._reader: IO[bytes] | None = None
        self._reader_seg: int | None = None
        self._torn_seen: set[int] = set()
        self._full = False  # an append hit max_bytes; cleared when replay frees room
        self._largest = 0  # longest record seen (written, or found at open): the room a batch needs
        # The last write or segment creation failed (disk full, I/O error, directory
        # gone); cleared by the next successful write. Logged once per episode.
        self.failing = False

    # -- lifecycle -----------------------------------------------------------------

    def open(self) -> Spool:
        """Lock the directory, find the segments and the cursor. Raises :class:`SpoolLocked`."""
        self.directory.mkdir(parents=True, exist_ok=True)
        lock = open(self.directory / "spool.lock", "ab")  # noqa: SIM115 - held until close()
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise SpoolLocked(
                f"spool directory {self.directory} is in use by another Footfall process"
            ) from None
        self._lock_fh = lock
        for entry in sorted(os.scandir(self.directory), key=lambda e: e.name):
            m = _SEGMENT.match(entry.name)
            if m:
                self._sizes[int(m.group(1))] = entry.stat().st_size
        self._next = max(self._sizes, default=0) + 1
        seg, off = self._load_cursor()
        # Segments before the cursor were replayed; a crash came before their deletion.
        for number in [n for n in self._sizes if n < seg]:
            self._delete(number)
        if seg not in self._sizes or off > self._sizes[seg]:
            seg, off = min(self._sizes, default=self._next), 0
        self._read_seg, self._read_off = seg, off
        if self._sizes:
            self._largest = self._longest_line(max(self._sizes))
            log.info("spool %s: %d bytes waiting in %d segment(s)",
                     self.directory, self.pending_bytes, len(self._sizes))  # fmt: skip
        return self

    def _longest_line(self, number: int) -> int:
        """The longest record of one segment (bounded by ``segment_bytes`` to read)."""
        try:
            with open(self.directory / _segment_name(number), "rb") as fh:
                return max((len(line) for line in fh), default=0)
        except OSError:
            return 0

    def close(self) -> None:
        """fsync what was written, save the cursor, release the lock. Idempotent."""
        if self._lock_fh is None:
            return
        if self._active_fd is not None:
            with contextlib.suppress(OSError):
                os.fsync(self._active_fd)
            os.close(self._active_fd)
            self._active_fd = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        with contextlib.suppress(OSError):
            self._save_cursor()
        with contextlib.suppress(OSError):
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        self._lock_fh.close()  # closing the file releases the flock
        self._lock_fh = None

    # -- state -----------------------------------------------------------------------

    @property
    def pending_bytes(self) -> int:
        """Bytes waiting to be replayed (for the ``footfall_spool_bytes`` gauge)."""
        return sum(self._sizes.values()) - (self._read_off if self._read_seg in self._sizes else 0)

    @property
    def disk_bytes(self) -> int:
        """Bytes of all segments on disk, the quantity bounded by ``max_bytes``."""
        return sum(self._sizes.values())

    @property
    def cursor(self) -> tuple[int, int]:
        """(segment number, byte offset) of the first record not yet committed."""
        return self._read_seg, self._read_off

    def __bool__(self) -> bool:
        return self.pending_bytes > 0

    def writable(self) -> bool:
        """Open, with room for a batch (not refused a record for lack of room since
        the last replay, and at least ``min(4 KiB, max_bytes / 8)`` or the longest
        record seen free: a spool left full by an earlier run counts as full at
        once), and its last write did not fail."""
        if self._lock_fh is None or self._full or self.failing:
            return False
        return self.max_bytes - self.disk_bytes >= max(min(4096, self.max_bytes // 8), self._largest)

    def _write_failed(self, what: str, exc: OSError) -> None:
        if not self.failing:
            log.warning("spool %s: %s failed (%s); events that cannot be spooled are dropped "
                        "as spool_error until a write succeeds", self.directory, what, exc)  # fmt: skip
        self.failing = True

    def _write_worked(self) -> None:
        if self.failing:
            log.info("spool %s: writes work again", self.directory)
        self.failing = False

    # -- writing ---------------------------------------------------------------------

    def append(self, payloads: list[bytes]) -> int:
        """Append in order what fits under ``max_bytes``; return how many were NOT written.

        A write error (disk full, I/O error) truncates the segment back to its last
        whole record and reports the rest of the batch as not written; :attr:`failing`
        then tells the caller it was an error, not a lack of room.
        """
        if self._lock_fh is None:
            return len(payloads)
        total = self.disk_bytes
        i = 0
        while i < len(payloads):
            if total + len(payloads[i]) + 1 > self.max_bytes:
                self._full = True
                break
            if self._active is None or self._sizes[self._active] >= self.segment_bytes:
                try:
                    self._rotate()
                except OSError as exc:
                    self._write_failed("creating a segment", exc)
                    break
            assert self._active is not None
            assert self._active_fd is not None
            room = self.segment_bytes - self._sizes[self._active]
            lines: list[bytes] = []
            size = 0
            while i < len(payloads):
                p = payloads[i]
                if b"\n" in p:
                    p = p.replace(b"\n", b" ")
                n = len(p) + 1
                if total + size + n > self.max_bytes:
                    self._full = True
                    break
                if lines and size + n > room:
                    break  # rotate; a single record larger than a segment gets its own
                lines.append(p)
                size += n
                if n > self._largest:
                    self._largest = n
                i += 1
            if not lines:
                break
            data = b"\n".join(lines) + b"\n"
            if not self._write(self._active_fd, self._active, data):
                return len(payloads) - i + len(lines)
            total += size
        return len(payloads) - i

    def _write(self, fd: int, number: int, data: bytes) -> bool:
        start = self._sizes[number]
        view = memoryview(data)
        try:
            while view:
                written = os.write(fd, view)
                view = view[written:]
        except OSError as exc:
            self._write_failed(f"writing {len(view)} bytes", exc)
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
            return False
        self._sizes[number] = start + len(data)
        self._write_worked()
        return True

    def _rotate(self) -> None:
        if self._active_fd is not None:
            os.close(self._active_fd)  # no fsync here: close() and the OS do that
            # Forget it before the open below can fail: never write to a closed fd.
            self._active_fd, self._active = None, None
        number = self._next
        self._next += 1
        path = self.directory / _segment_name(number)
        self._active_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._active = number
        self._sizes[number] = 0
        if not self:  # nothing waiting: the cursor moves to the new segment
            self._read_seg, self._read_off = number, 0

    # -- replay ----------------------------------------------------------------------

    def read_chunk(self, max_records: int) -> tuple[list[bytes], tuple[int, int]]:
        """Up to ``max_records`` payloads from the cursor on, oldest first, and a token.

        Nothing moves until :meth:`commit` is called with the token (after Redis
        acknowledged the chunk); reading again without committing returns the same
        records. Returns an empty list when nothing is waiting.
        """
        records: list[bytes] = []
        seg, off = self._read_seg, self._read_off
        while len(records) < max_records and seg in self._sizes:
            reader = self._reader_at(seg, off)
            while len(records) < max_records:
                line = reader.readline()
                if not line:
                    break
                if not line.endswith(b"\n"):
                    if seg == self._active:
                        break  # cannot happen with whole-line writes; leave it for later
                    if seg not in self._torn_seen:  # re-reads after a failed send count once
                        self._torn_seen.add(seg)
                        self.torn_records += 1
                    log.warning("spool segment %s: torn last record (%d bytes) skipped",
                                _segment_name(seg), len(line))  # fmt: skip
                    off += len(line)
                    break
                off += len(line)
                if len(line) > 1:
                    records.append(line[:-1])
            if off < self._sizes[seg] or seg == self._active:
                break
            # Segment exhausted: the token moves on; commit() deletes it.
            later = [n for n in self._sizes if n > seg]
            if not later:
                break
            seg, off = min(later), 0
        return records, (seg, off)

    def _reader_at(self, seg: int, off: int) -> IO[bytes]:
        if self._reader_seg != seg or self._reader is None:
            if self._reader is not None:
                self._reader.close()
            self._reader = open(self.directory / _segment_name(seg), "rb")  # noqa: SIM115
            self._reader_seg = seg
        if self._reader.tell() != off:
            self._reader.seek(off)
        return self._reader

    def commit(self, token: tuple[int, int]) -> None:
        """Mark everything before ``token`` as delivered; delete finished segments."""
        seg, off = token
        for number in [n for n in self._sizes if n < seg]:
            self._delete(number)
        self._read_seg, self._read_off = seg, off
        if seg in self._sizes and off >= self._sizes[seg]:
            # Fully replayed: delete it, even the active one (the next append rotates).
            self._delete(seg)
            self._read_seg, self._read_off = min(self._sizes, default=self._next), 0
        self._save_cursor()

    def _delete(self, number: int) -> None:
        self._full = False
        if number == self._active and self._active_fd is not None:
            os.close(self._active_fd)
            self._active_fd = None
            self._active = None
        if number == self._reader_seg and self._reader is not None:
            self._reader.close()
            self._reader, self._reader_seg = None, None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.directory / _segment_name(number))
        del self._sizes[number]

    # -- cursor ----------------------------------------------------------------------

    def _load_cursor(self) -> tuple[int, int]:
        try:
            seg, off = (self.directory / "cursor").read_text().split()
            return int(seg), int(off)
        except (OSError, ValueError):
            return 0, 0  # none or garbled: replay from the oldest segment (duplicates, no loss)

    def _save_cursor(self) -> None:
        tmp = self.directory / "cursor.tmp"
        tmp.write_text(f"{self._read_seg} {self._read_off}\n")
        os.replace(tmp, self.directory / "cursor")
