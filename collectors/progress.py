"""A one-line progress bar on stderr, drawn only when stderr is a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """``update(done)`` redraws at most 10 times a second; ``close()`` ends the line."""

    def __init__(self, label: str, total: int | None = None, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.label = label
        self.total = total
        self.done = 0
        self.note = ""
        self._drawn = 0.0
        self._started = time.monotonic()

    def update(self, done: int, note: str = "", *, force: bool = False) -> None:
        self.done, self.note = done, note
        now = time.monotonic()
        if self.enabled and (force or now - self._drawn >= 0.1):
            self._drawn = now
            self.stream.write("\r\033[K" + self.line(now - self._started))
            self.stream.flush()

    def line(self, elapsed: float) -> str:
        rate = f"{self.done / elapsed:,.0f}/s" if elapsed > 0 else ""
        if self.total:
            frac = min(self.done / self.total, 1.0)
            bar = "#" * int(frac * 30)
            head = f"{self.label} [{bar:<30}] {frac:4.0%}"
        else:
            head = self.label
        return " ".join(p for p in (head, f"{self.done:,}", rate, self.note) if p)

    def close(self) -> None:
        if self.enabled:
            self.update(self.done, self.note, force=True)
            self.stream.write("\n")
            self.stream.flush()
