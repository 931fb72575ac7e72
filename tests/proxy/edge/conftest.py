"""Fixtures of the edge tests: both of aiohttp's HTTP parsers."""

from __future__ import annotations

import pytest
from aiohttp import http_parser, web_protocol


@pytest.fixture(params=["c", "py"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test with aiohttp's C parser (llhttp) and its pure-Python one.

    ``AIOHTTP_NO_EXTENSIONS=1`` selects the pure-Python parser for a whole process
    (``make test-pyparser``); this fixture selects it for one test, so the two are
    compared in every run. Without the C extension both params use the Python one.
    """
    if request.param == "py":
        monkeypatch.setattr(web_protocol, "HttpRequestParser", http_parser.HttpRequestParserPy)
    return str(request.param)
