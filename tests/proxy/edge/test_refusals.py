"""Refusal counting and log throttling (pure: a fake clock, a real prometheus Counter)."""

from __future__ import annotations

import logging

import pytest
from aiohttp import http_exceptions
from prometheus_client import CollectorRegistry, Counter

from proxy.edge.refusals import Refusals, parse_error_reason


def test_every_refusal_counts_and_one_line_per_reason_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    counter = Counter("refused", "", ["reason"], registry=CollectorRegistry())
    refusals = Refusals(counter, interval=10.0, clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger="proxy.edge.refusals")
    for i in range(50):
        now[0] = i * 0.5  # 25 s of refusals, two reasons interleaved
        refusals("bad_header", "Invalid header token:\n\n  b'X'\n  ^", "192.0.2.1")
        refusals("unknown_host", "evil.example")
    lines = [r.getMessage() for r in caplog.records]
    assert counter.labels("bad_header")._value.get() == 50
    assert counter.labels("unknown_host")._value.get() == 50
    assert len(lines) == 6  # at 0, 10 and 20 s for each reason
    assert lines[0] == "refused bad_header from 192.0.2.1: Invalid header token: b'X' ^"
    assert lines[2].endswith("(and 19 more since the last such line)")


def test_attacker_text_stays_one_bounded_line(caplog: pytest.LogCaptureFixture) -> None:
    refusals = Refusals(Counter("refused", "", ["reason"], registry=CollectorRegistry()))
    caplog.set_level(logging.INFO, logger="proxy.edge.refusals")
    refusals("bad_request", "\x1b[31mred\r\nfake: line" + "x" * 10_000)
    (line,) = [r.getMessage() for r in caplog.records]
    assert "\n" not in line and "\r" not in line and "\x1b" not in line and len(line) < 250


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (http_exceptions.BadHttpMethod("G\x01T"), "bad_method"),
        (http_exceptions.BadStatusLine("HTTP/9"), "bad_request_line"),
        (http_exceptions.InvalidHeader("x"), "bad_header"),
        (http_exceptions.LineTooLong("x", 10), "line_too_long"),
        (http_exceptions.TransferEncodingError("0_2e"), "client_bad_body"),
        (http_exceptions.BadHttpMessage("?"), "bad_request"),
        (None, "bad_request"),
    ],
)
def test_parse_error_reasons_are_a_bounded_set(exc: BaseException | None, reason: str) -> None:
    assert parse_error_reason(exc) == reason
