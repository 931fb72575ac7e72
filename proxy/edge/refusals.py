"""Refusals: every request the proxy turns away is counted, and logged briefly.

A refusal is traffic, not a bug: malformed requests, unknown hosts, slow or
broken bodies come from whoever can reach the listener. Each is counted in
``footfall_http_refused_total{reason}`` and logged as one short line, at most
one line per reason per ``interval`` seconds; the next line says how many were
left out, so an attacker cannot turn requests into log volume.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

# aiohttp's parse errors, by class name, as bounded ``reason`` label values.
_PARSE_REASONS = {
    "BadHttpMethod": "bad_method",
    "BadStatusLine": "bad_request_line",
    "InvalidURLError": "bad_target",
    "LineTooLong": "line_too_long",
    "InvalidHeader": "bad_header",
    "TransferEncodingError": "client_bad_body",
    "ContentLengthError": "client_bad_body",
    "ContentEncodingError": "client_bad_body",
}


def parse_error_reason(exc: BaseException | None) -> str:
    """The refusal reason for a request aiohttp could not parse."""
    return _PARSE_REASONS.get(type(exc).__name__, "bad_request")


def _printable(text: str, limit: int = 160) -> str:
    """Attacker-controlled text made safe for one log line (no newlines, bounded)."""
    text = " ".join(text[: limit * 2].split())[:limit]
    return text if text.isprintable() else repr(text)


class Refusals:
    """``refusals(reason, detail, peer)``: count one refusal, log it unless throttled.

    ``counter`` is a labelled prometheus Counter (label ``reason``); reasons are a
    fixed set in the code, so the label stays bounded.
    """

    def __init__(
        self, counter: Any, *, interval: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._counter = counter
        self._interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def __call__(self, reason: str, detail: str = "", peer: str | None = None) -> None:
        self._counter.labels(reason).inc()
        now = self._clock()
        last = self._last.get(reason)
        if last is not None and now - last < self._interval:
            self._suppressed[reason] = self._suppressed.get(reason, 0) + 1
            return
        self._last[reason] = now
        suppressed = self._suppressed.pop(reason, 0)
        if suppressed:
            log.warning(
                "refused %s from %s: %s (and %d more since the last such line)",
                reason, peer or "-", _printable(detail), suppressed,
            )  # fmt: skip
        else:
            log.warning("refused %s from %s: %s", reason, peer or "-", _printable(detail))
