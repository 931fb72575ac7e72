"""A lean raw Redis connection for the publisher's batched XADD, and nothing else.

redis-py packs every command in Python (~20 µs per event, PERF-NOTES). Here the
constant head of ``XADD key MAXLEN ~ n * event <payload>`` is RESP-encoded once
and each payload only adds its ``$len\\r\\n...\\r\\n`` framing; all commands of a
batch go out in one write and the replies are parsed by ``hiredis.Reader``.
Everything else (collectors, admin, cookieless sessions) keeps using redis-py.

Contract: any failure (refused connection, error reply, timeout, lost
connection, protocol error) raises a :class:`WireError` subclass and leaves the
connection closed; the caller reconnects. After a failed ``xadd_many`` some of
the entries may have been added: resending the batch is at-least-once, which is
the stream's contract (consumers dedupe on the event id).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import hiredis


class WireError(Exception):
    """Base of the publisher connection's failures. ``kind`` is a metric label."""

    kind = "connect"


class WireConnectError(WireError):
    """Could not connect, authenticate or select the database, or the connection was lost."""

    kind = "connect"


class WireTimeout(WireError):
    """Redis did not answer within the timeout."""

    kind = "timeout"


class WireReplyError(WireError):
    """Redis answered with an error reply (e.g. WRONGTYPE, OOM, NOAUTH)."""

    kind = "reply"


def xadd_head(key: str, maxlen: int, *, field: bytes = b"event") -> bytes:
    """RESP encoding of ``XADD key MAXLEN ~ maxlen * field`` as the start of an 8-element array.

    Appending ``$<len>\\r\\n<payload>\\r\\n`` completes one command; equal to
    ``hiredis.pack_command(("XADD", key, "MAXLEN", "~", maxlen, "*", field, payload))``.
    """
    parts = [b"XADD", key.encode(), b"MAXLEN", b"~", str(maxlen).encode(), b"*", field]
    return b"*8\r\n" + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)


def _parse_url(url: str) -> dict[str, Any]:
    """Split a redis://, rediss:// or unix:// URL into connection parameters.

    ``db``, ``username`` and ``password`` may also be given as query parameters
    (as redis-py accepts them); credentials in the URL are percent-decoded.
    """
    parts = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    params: dict[str, Any] = {
        "username": unquote(parts.username) if parts.username else query.get("username"),
        "password": unquote(parts.password) if parts.password else query.get("password"),
        "db": int(query.get("db", 0)),
    }
    if parts.scheme == "unix":
        if not parts.path:
            raise ValueError(f"unix:// URL without a socket path: {url!r}")
        params["path"] = parts.path
    elif parts.scheme in ("redis", "rediss"):
        params["host"] = parts.hostname or "localhost"
        params["port"] = parts.port or 6379
        params["tls"] = parts.scheme == "rediss"
        db_path = parts.path.lstrip("/")
        if db_path:
            params["db"] = int(db_path)
    else:
        raise ValueError(f"not a redis://, rediss:// or unix:// URL: {url!r}")
    return params


class RedisWire:
    """One raw connection. Not safe for concurrent use: one ``xadd_many`` at a time."""

    __slots__ = ("_closed", "_heads", "_reader", "_resp", "_writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._resp = hiredis.Reader()
        self._heads: dict[tuple[str, int], bytes] = {}
        self._closed = False

    @classmethod
    async def connect(cls, url: str, timeout: float) -> RedisWire:  # noqa: ASYNC109
        """Connect, AUTH and SELECT within ``timeout`` seconds; raise a :class:`WireError`."""
        params = _parse_url(url)
        try:
            async with asyncio.timeout(timeout):
                if "path" in params:
                    reader, writer = await asyncio.open_unix_connection(params["path"])
                else:
                    ctx = ssl.create_default_context() if params["tls"] else None
                    reader, writer = await asyncio.open_connection(
                        params["host"], params["port"], ssl=ctx
                    )
        except TimeoutError:
            raise WireTimeout(f"connect to {_safe(url)} timed out after {timeout} s") from None
        except (OSError, ssl.SSLError) as exc:
            raise WireConnectError(f"cannot connect to {_safe(url)}: {exc}") from exc
        wire = cls(reader, writer)
        handshake: list[tuple[Any, ...]] = []
        if params["password"] is not None:
            if params["username"]:
                handshake.append(("AUTH", params["username"], params["password"]))
            else:
                handshake.append(("AUTH", params["password"]))
        if params["db"]:
            handshake.append(("SELECT", params["db"]))
        if handshake:
            data = b"".join(hiredis.pack_command(cmd) for cmd in handshake)
            try:
                await wire._roundtrip(data, len(handshake), timeout)
            except WireReplyError as exc:
                raise WireConnectError(f"handshake with {_safe(url)} failed: {exc}") from None
        return wire

    @property
    def closed(self) -> bool:
        return self._closed

    async def xadd_many(
        self, key: str, maxlen: int, payloads: list[bytes], *, timeout: float = 2.0  # noqa: ASYNC109
    ) -> list[bytes]:
        """Append each payload as one entry ``{event: payload}``; return the stream ids in order.

        One write, then replies are read until all arrived or ``timeout`` seconds
        passed. Raises :class:`WireTimeout`, :class:`WireReplyError` or
        :class:`WireConnectError`; the connection is closed after any of them.
        """
        if not payloads:
            return []
        head = self._heads.get((key, maxlen))
        if head is None:
            head = self._heads[(key, maxlen)] = xadd_head(key, maxlen)
        # One join of [head, "$len\r\n", payload, "\r\n"] per entry: ~0.3 µs each.
        chunks: list[bytes] = []
        append = chunks.append
        for p in payloads:
            append(head)
            append(b"$%d\r\n" % len(p))
            append(p)
            append(b"\r\n")
        return await self._roundtrip(b"".join(chunks), len(payloads), timeout)

    async def pipeline(self, data: bytes, count: int, timeout: float) -> list[Any]:  # noqa: ASYNC109
        """Write ``count`` pre-packed commands, return their replies, error replies included.

        For the cluster publisher, which must see each command's MOVED/ASK. Error
        replies leave the connection open (every reply was read); any other
        failure raises a :class:`WireError` and closes it.
        """
        return await self._roundtrip(data, count, timeout, raise_replies=False)

    # The timeout is a parameter (ASYNC109) because expiry must also close the
    # connection: half-read replies would corrupt the next batch's.
    async def _roundtrip(
        self, data: bytes, count: int, timeout: float, *, raise_replies: bool = True  # noqa: ASYNC109
    ) -> list[Any]:
        if self._closed:
            raise WireConnectError("connection is closed")
        replies: list[Any] = []
        error: Any = None
        try:
            async with asyncio.timeout(timeout):
                self._writer.write(data)
                await self._writer.drain()
                resp = self._resp
                while True:
                    reply = resp.gets()
                    while reply is not False:
                        if isinstance(reply, hiredis.ReplyError) and error is None:
                            error = reply
                        replies.append(reply)
                        reply = resp.gets()
                    if len(replies) >= count:
                        break
                    chunk = await self._reader.read(65536)
                    if not chunk:
                        raise WireConnectError("connection closed by Redis")
                    resp.feed(chunk)
        except TimeoutError:
            self.close()
            raise WireTimeout(f"no reply from Redis within {timeout} s") from None
        except WireError:
            self.close()
            raise
        except (OSError, hiredis.ProtocolError) as exc:
            self.close()
            raise WireConnectError(f"connection to Redis failed: {exc}") from exc
        if error is not None and raise_replies:
            self.close()  # the contract: unusable after any failure
            raise WireReplyError(str(error))
        return replies

    def close(self) -> None:
        """Close the socket (idempotent, never raises)."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self._writer.close()


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()
