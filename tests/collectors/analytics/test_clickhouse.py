"""collectors.analytics.clickhouse, by contract: no ClickHouse server can run here.

What is tested: the client settings built from a store URL, the parameter rendering
shared with chDB, and that a refused connection surfaces as an error at open.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from collectors.analytics.clickhouse import ClickHouseEngine, bound, client_kwargs
from collectors.analytics.config import StoreSettings, parse_store_url
from collectors.analytics.engine import ChdbEngine
from proxy.stream.embedded import free_port


def test_client_settings_from_the_url_and_caps() -> None:
    server = parse_store_url("clickhouses://ana:s%3Acret@ch.example:9443/stats")
    kwargs = client_kwargs(server, StoreSettings(max_threads=3).engine_settings())
    assert kwargs == {
        "host": "ch.example", "port": 9443, "username": "ana", "password": "s:cret",
        "interface": "https", "secure": True,
        "settings": {"max_threads": 3, "max_memory_usage": 1 << 30},
        "autogenerate_session_id": False,  # the loader and the API share the client from two threads
        "connect_timeout": 10, "send_receive_timeout": 300, "compress": False,
    }  # fmt: skip
    assert "database" not in kwargs  # created by create_all; statements name it in full


@pytest.mark.parametrize(
    ("params", "text"),
    [
        ({"s": "it's"}, {"s": "it's"}),
        ({"ids": ["a", "b'c"]}, {"ids": "['a','b\\'c']"}),
        ({"d": dt.datetime(2026, 3, 1, 12, 0, 0, 5000)}, {"d": "2026-03-01 12:00:00.005000"}),
        ({"n": 5, "f": True}, {"n": "5", "f": "true"}),
        (None, None),
    ],
)
def test_parameters_are_rendered_once_for_both_engines(params: Any, text: Any) -> None:
    assert bound(params) == text


def test_rendered_parameters_bind_on_the_clickhouse_engine(chdb_engines: tuple[ChdbEngine, ChdbEngine]) -> None:
    """The text :func:`bound` sends is what ClickHouse parses back into the typed values."""
    sql = "SELECT {ids:Array(String)}, {d:DateTime64(3, 'UTC')}, {s:String}"
    params = {"ids": ["a", "b'c"], "d": dt.datetime(2026, 3, 1, 12, 0, 0, 5000), "s": "x' OR 1=1 --"}
    assert chdb_engines[0].query(sql, params) == [(["a", "b'c"], "2026-03-01 12:00:00.005", "x' OR 1=1 --")]


def test_a_refused_connection_fails_at_open() -> None:
    server = parse_store_url(f"clickhouse://127.0.0.1:{free_port()}/footfall")
    with pytest.raises(Exception, match=r"(?i)connect|refused|error"):
        ClickHouseEngine(server)
