"""RedisWire against real redis-server processes: TCP, unix socket, AUTH + SELECT, failures."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import hiredis
import pytest
import redis.asyncio as aioredis

from proxy.stream.embedded import EmbeddedRedis, free_port, redis_executable
from proxy.stream.rediswire import (
    RedisWire,
    WireConnectError,
    WireReplyError,
    WireTimeout,
    _parse_url,
    xadd_head,
)


def test_head_matches_hiredis_pack_command() -> None:
    payload = b'{"id":"a"}'
    ours = xadd_head("footfall:events", 1000) + b"$%d\r\n%s\r\n" % (len(payload), payload)
    # hiredis's stub types the argument as a 1-tuple.
    command: tuple[Any, ...] = ("XADD", "footfall:events", "MAXLEN", "~", 1000, "*", "event", payload)
    packed = hiredis.pack_command(command)
    assert ours == packed


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://h:7000/3", {"host": "h", "port": 7000, "db": 3, "tls": False, "password": None}),
        (
            "rediss://u:p%40ss@h",
            {"host": "h", "port": 6379, "tls": True, "username": "u", "password": "p@ss"},
        ),
        ("unix:///run/r.sock?db=2&password=x", {"path": "/run/r.sock", "db": 2, "password": "x"}),
        ("redis://:secret@localhost", {"username": None, "password": "secret", "db": 0}),
    ],
)
def test_parse_url(url: str, expected: dict[str, object]) -> None:
    params = _parse_url(url)
    assert {k: params[k] for k in expected} == expected


def test_parse_url_rejects_other_schemes() -> None:
    with pytest.raises(ValueError, match="not a redis"):
        _parse_url("http://localhost:6379")


async def test_xadd_many_over_tcp(
    redis_server: EmbeddedRedis, redis_client: aioredis.Redis
) -> None:
    wire = await RedisWire.connect(redis_server.url, 2.0)
    payloads = [b'{"id":"%d"}' % i for i in range(500)]
    ids = await wire.xadd_many("s", 100_000, payloads)
    wire.close()
    assert len(ids) == 500
    entries = cast(list[tuple[bytes, dict[bytes, bytes]]], await redis_client.xrange("s"))
    assert [e[0] for e in entries] == ids
    assert [e[1] for e in entries] == [{b"event": p} for p in payloads]


async def test_maxlen_approximate_trim(
    redis_server: EmbeddedRedis, redis_client: aioredis.Redis
) -> None:
    wire = await RedisWire.connect(redis_server.url, 2.0)
    for _ in range(10):
        await wire.xadd_many("s", 100, [b"{}"] * 200)
    wire.close()
    length = await redis_client.xlen("s")
    assert 100 <= length < 2000  # "~": trimmed by whole macro nodes, never below maxlen


async def test_unix_socket(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "r").start()
    try:
        assert server.url.startswith("unix://")
        wire = await RedisWire.connect(server.url, 2.0)
        ids = await wire.xadd_many("s", 10, [b'{"id":"x"}'])
        wire.close()
        client = aioredis.Redis.from_url(server.url)
        entries = cast(list[tuple[bytes, dict[bytes, bytes]]], await client.xrange("s"))
        assert entries[0][0] == ids[0]
        await client.aclose()
    finally:
        server.kill()


@pytest.fixture
def password_redis(tmp_path: Path) -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen(
        [redis_executable(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path), "--requirepass", "s3cret"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(250):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.02)
        yield port
    finally:
        proc.kill()
        proc.wait()


async def test_auth_and_select(password_redis: int) -> None:
    port = password_redis
    wire = await RedisWire.connect(f"redis://:s3cret@127.0.0.1:{port}/5", 2.0)
    await wire.xadd_many("s", 10, [b"{}"])
    wire.close()
    client = aioredis.Redis(port=port, password="s3cret", db=5)
    assert await client.xlen("s") == 1
    await client.aclose()
    with pytest.raises(WireConnectError, match="handshake"):
        await RedisWire.connect(f"redis://:wrong@127.0.0.1:{port}", 2.0)


async def test_missing_auth_is_a_reply_error(password_redis: int) -> None:
    wire = await RedisWire.connect(f"redis://127.0.0.1:{password_redis}", 2.0)
    with pytest.raises(WireReplyError, match="NOAUTH"):
        await wire.xadd_many("s", 10, [b"{}"])
    assert wire.closed


async def test_error_reply_raises_and_closes(
    redis_server: EmbeddedRedis, redis_client: aioredis.Redis
) -> None:
    await redis_client.set("notastream", "x")
    wire = await RedisWire.connect(redis_server.url, 2.0)
    with pytest.raises(WireReplyError, match="WRONGTYPE"):
        await wire.xadd_many("notastream", 10, [b"{}", b"{}"])
    assert wire.closed
    with pytest.raises(WireConnectError):
        await wire.xadd_many("s", 10, [b"{}"])


async def test_connect_refused() -> None:
    with pytest.raises(WireConnectError, match="cannot connect"):
        await RedisWire.connect(f"redis://127.0.0.1:{free_port()}", 1.0)


async def test_timeout_when_redis_does_not_answer() -> None:
    # A listener that accepts and never replies: a hung Redis.
    writers: list[asyncio.StreamWriter] = []
    server = await asyncio.start_server(lambda r, w: writers.append(w), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        wire = await RedisWire.connect(f"redis://127.0.0.1:{port}", 1.0)
        with pytest.raises(WireTimeout):
            await wire.xadd_many("s", 10, [b"{}"], timeout=0.05)
        assert wire.closed
    finally:
        for w in writers:
            w.close()
        server.close()
        await server.wait_closed()


async def test_connection_lost_is_a_connect_error(redis_server: EmbeddedRedis) -> None:
    wire = await RedisWire.connect(redis_server.url, 2.0)
    redis_server.kill()
    with pytest.raises((WireConnectError, WireTimeout)):
        await wire.xadd_many("s", 10, [b"{}"], timeout=1.0)
    assert wire.closed
