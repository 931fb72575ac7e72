"""The :class:`~collectors.analytics.engine.Engine` on a ClickHouse server or cluster.

Through clickhouse-connect over HTTP(S). The same SQL as on chDB: values stay
``{name:Type}`` placeholders and travel as server-side query parameters (the
server parses them as data, so nothing is spliced into the SQL text); results
are read in ``JSONCompactEachRow`` like :class:`~collectors.analytics.engine.ChdbEngine`,
so callers see the same JSON types from both engines.

Tested by contract only (no server can be installed where CI runs): the URL →
client settings mapping is pure and tested; the calls are the documented
clickhouse-connect ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from collectors.analytics.config import ServerUrl
from collectors.analytics.engine import param_text

CONNECT_TIMEOUT = 10
SEND_RECEIVE_TIMEOUT = 300


def client_kwargs(server: ServerUrl, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments of ``clickhouse_connect.get_client`` for ``server``.

    No ``database``: the store's database may not exist yet (``create_all`` makes
    it) and every statement names its tables in full. No session id: the loader
    and the API share one client from two threads, and a ClickHouse HTTP session
    admits one query at a time.
    """
    return {
        "host": server.host,
        "port": server.port,
        "username": server.username,
        "password": server.password,
        "interface": server.interface,
        "secure": server.interface == "https",
        "settings": dict(settings),
        "autogenerate_session_id": False,
        "connect_timeout": CONNECT_TIMEOUT,
        "send_receive_timeout": SEND_RECEIVE_TIMEOUT,
        "compress": False,  # JSON bodies on a LAN; lz4 would need the server's blessing per format
    }


def bound(params: Mapping[str, Any] | None) -> dict[str, str] | None:
    """Parameters in ClickHouse's text form, as chDB receives them (one rendering for both)."""
    return {k: param_text(v) for k, v in params.items()} if params else None


class ClickHouseEngine:
    """One clickhouse-connect client; thread-safe for concurrent calls (no session)."""

    def __init__(self, server: ServerUrl, *, settings: Mapping[str, Any] | None = None) -> None:
        import clickhouse_connect  # only when a server store is configured

        self.server = server
        self._client = clickhouse_connect.get_client(**client_kwargs(server, settings or {}))

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        out = self._client.raw_query(sql, parameters=bound(params), fmt="JSONCompactEachRow")
        return [tuple(orjson.loads(line)) for line in out.splitlines() if line]

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._client.command(sql, parameters=bound(params))

    def insert_json(self, table: str, rows: Sequence[bytes]) -> None:
        if rows:
            self._client.raw_insert(table, insert_block=b"\n".join(rows), fmt="JSONEachRow")

    def close(self) -> None:
        self._client.close()
