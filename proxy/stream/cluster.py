"""The publisher's connection to a sharded stream: Redis Cluster, or shards on one node.

:func:`connect_stream` picks the wire once from the URL and the shard keys:

- ``redis://`` (or ``rediss://``, ``unix://``) with one shard key: the plain
  :class:`~proxy.stream.rediswire.RedisWire`, exactly as before sharding;
- ``redis://`` with N shard keys: a :class:`ClusterWire` whose one node owns
  every slot (no cluster commands are sent);
- ``redis-cluster://[user:pass@]h1:p1,h2:p2,...`` (any reachable node is enough
  to start): a :class:`ClusterWire` that learns the slot map with
  ``CLUSTER SLOTS`` and keeps one raw connection per master.

A batch is split by shard (:class:`proxy.stream.shards.Router`), grouped by the
master that owns each shard key's slot, and sent as one pre-packed pipelined
write per master, all masters at once. ``MOVED`` (a slot migrated, or a replica
was promoted) updates that slot and re-sends the refused entries to the new
owner, and the whole map is read again before the next batch; ``ASK`` (a slot
being migrated) re-sends them once with ``ASKING``. A node that cannot be
reached, a timeout, ``CLUSTERDOWN`` or too many redirects raise a
:class:`~proxy.stream.rediswire.WireError`: the publisher spools the batch,
closes this wire and connects again with backoff, which reads a fresh slot map
from whichever seed answers, so a failover is ridden out by the spool. Entries
of that batch already added are added again on replay (at-least-once; the
consumers dedupe on the event id).

Redis replicates asynchronously: entries a master acknowledged in its last
milliseconds before dying may never reach the replica that replaces it. With
``wait_replicas`` = k > 0 each master's pipeline ends with ``WAIT k timeout``
(k capped at the master's healthy replicas in the slot map) and a batch counts
as published only when they have it; otherwise it is spooled and sent again, so
a failover loses nothing (at the cost of one replication round trip per batch,
off the request path).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol
from urllib.parse import parse_qs, quote

import hiredis
from redis.crc import key_slot

from proxy.stream.rediswire import (
    RedisWire,
    WireConnectError,
    WireError,
    WireReplyError,
    xadd_head,
)
from proxy.stream.shards import SLOTS, Router

log = logging.getLogger(__name__)

CLUSTER_SCHEME = "redis-cluster"
MAX_REDIRECTS = 3
Addr = tuple[str, int]


class StreamWire(Protocol):
    """What the publisher needs from its connection (RedisWire or ClusterWire)."""

    async def xadd_many(
        self, key: str, maxlen: int, payloads: list[bytes], *, timeout: float = 2.0  # noqa: ASYNC109
    ) -> Any: ...

    def close(self) -> None: ...


def _pack(*command: Any) -> bytes:
    args: tuple[Any, ...] = command
    packed: bytes = hiredis.pack_command(args)
    return packed


def is_cluster_url(url: str) -> bool:
    return url.startswith(f"{CLUSTER_SCHEME}://")


def parse_cluster_url(url: str) -> tuple[list[Addr], str]:
    """Seed nodes of ``redis-cluster://[user:pass@]h1:p1,h2:p2[?password=...]``, and the
    credentials part (``user:pass@``, URL-quoted, or empty) for each node's own URL."""
    if not is_cluster_url(url):
        raise ValueError(f"not a {CLUSTER_SCHEME}:// URL: {url!r}")
    rest = url[len(CLUSTER_SCHEME) + 3 :]
    rest, _, query = rest.partition("?")
    rest = rest.rstrip("/")
    userinfo, at, hosts = rest.rpartition("@")
    params = {k: v[-1] for k, v in parse_qs(query).items()}
    if not at and params.get("password"):
        user = quote(params.get("username", ""), safe="")
        userinfo, at = f"{user}:{quote(params['password'], safe='')}", "@"
    seeds: list[Addr] = []
    for item in hosts.split(","):
        host, sep, port = item.strip().rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"{CLUSTER_SCHEME} URL: not HOST:PORT: {item!r}")
        seeds.append((host, int(port)))
    if not seeds:
        raise ValueError(f"{CLUSTER_SCHEME} URL without nodes: {url!r}")
    return seeds, (userinfo + at if at else "")


def parse_slots(reply: list[Any], default_host: str) -> list[tuple[int, int, Addr, int]]:
    """``CLUSTER SLOTS`` → ``[(first slot, last slot, master address, healthy replicas)]``.

    A node that does not know its own address reports an empty host: that is
    the host it was reached on (``default_host``).
    """
    ranges = []
    for entry in reply:
        first, last, master = int(entry[0]), int(entry[1]), entry[2]
        host = master[0].decode() if isinstance(master[0], bytes) else str(master[0])
        ranges.append((first, last, (host or default_host, int(master[1])), len(entry) - 3))
    return ranges


def parse_redirect(message: str) -> tuple[str, int, Addr] | None:
    """``MOVED 3999 127.0.0.1:6381`` / ``ASK ...`` → (kind, slot, address); else None."""
    parts = message.split()
    if len(parts) != 3 or parts[0] not in ("MOVED", "ASK"):
        return None
    host, _, port = parts[2].rpartition(":")
    return parts[0], int(parts[1]), (host.strip("[]"), int(port))


class ClusterWire:
    """Raw pipelined XADD to the masters owning each shard. One call at a time."""

    def __init__(
        self, router: Router, credentials: str, seeds: list[Addr], *, wait_replicas: int = 0
    ) -> None:
        self._router = router
        self._wait = wait_replicas
        self._credentials = credentials
        self._scheme = "redis"
        self._seeds = seeds
        self._owner: list[Addr] = [seeds[0]] * SLOTS
        self._wires: dict[Addr, RedisWire] = {}
        self._slot_of: dict[str, int] = {}
        self._heads: dict[tuple[str, int], bytes] = {}
        self._stale = False
        self._replicas: dict[Addr, int] = {}  # healthy replicas per master (CLUSTER SLOTS)
        self._single_url: str | None = None
        self.closed = False

    @classmethod
    async def connect(
        cls, url: str, keys: list[str], timeout: float, wait_replicas: int = 0  # noqa: ASYNC109
    ) -> ClusterWire:
        """Read the slot map from the first seed that answers; raise :class:`WireError`."""
        seeds, credentials = parse_cluster_url(url)
        wire = cls(Router(keys), credentials, seeds, wait_replicas=wait_replicas)
        await wire.refresh(timeout)
        return wire

    @classmethod
    async def single(cls, url: str, keys: list[str], timeout: float) -> ClusterWire:  # noqa: ASYNC109
        """All shard keys on one plain Redis (any URL RedisWire takes)."""
        wire = cls(Router(keys), "", [("", 0)])
        wire._single_url = url
        wire._wires[("", 0)] = await RedisWire.connect(url, timeout)
        return wire

    # -- slot map ---------------------------------------------------------------------

    async def refresh(self, timeout: float) -> None:  # noqa: ASYNC109
        """Ask known masters, then the seeds, for ``CLUSTER SLOTS``; first answer wins."""
        if self._single_url is not None:
            return
        candidates = list(dict.fromkeys([*self._wires, *self._seeds]))
        last: WireError | None = None
        for addr in candidates:
            try:
                node = await self._node(addr, timeout)
                reply = await node.pipeline(_pack("CLUSTER", "SLOTS"), 1, timeout)
            except WireError as exc:
                last = exc
                continue
            if isinstance(reply[0], hiredis.ReplyError):
                last = WireReplyError(f"CLUSTER SLOTS on {addr[0]}:{addr[1]}: {reply[0]}")
                continue
            ranges = parse_slots(reply[0], addr[0])
            covered = sum(last_ - first + 1 for first, last_, _, _ in ranges)
            if covered < SLOTS:
                last = WireReplyError(f"cluster covers {covered} of {SLOTS} slots")
                continue
            for first, last_, owner, replicas in ranges:
                self._owner[first : last_ + 1] = [owner] * (last_ - first + 1)
                self._replicas[owner] = replicas
            masters = {owner for _, _, owner, _ in ranges}
            for gone in [a for a in self._wires if a not in masters]:
                self._wires.pop(gone).close()
            self._stale = False
            log.debug("cluster slot map: %d masters", len(masters))
            return
        raise last or WireConnectError("no cluster node answered")

    def _slot(self, key: str) -> int:
        slot = self._slot_of.get(key)
        if slot is None:
            slot = self._slot_of[key] = key_slot(key.encode())
        return slot

    async def _node(self, addr: Addr, timeout: float) -> RedisWire:  # noqa: ASYNC109
        wire = self._wires.get(addr)
        if wire is None or wire.closed:
            url = self._single_url or f"{self._scheme}://{self._credentials}{addr[0]}:{addr[1]}"
            wire = self._wires[addr] = await RedisWire.connect(url, timeout)
        return wire

    # -- sending ----------------------------------------------------------------------

    async def xadd_many(
        self, key: str, maxlen: int, payloads: list[bytes], *, timeout: float = 2.0  # noqa: ASYNC109
    ) -> None:
        """Add ``payloads`` of the logical stream ``key`` to their shard keys (see module doc).

        Raises :class:`WireError` when any entry could not be added.
        """
        if self._stale:
            await self.refresh(timeout)
        # (shard key, payloads, ASK target or None)
        todo: list[tuple[str, list[bytes], Addr | None]] = [
            (k, p, None) for k, p in self._router.split(payloads).items()
        ]
        for _ in range(MAX_REDIRECTS + 1):
            by_node: dict[Addr, list[tuple[str, list[bytes], bool]]] = {}
            for k, p, ask in todo:
                addr = ask or self._owner[self._slot(k)]
                by_node.setdefault(addr, []).append((k, p, ask is not None))
            # Every node's outcome is awaited before raising: none is left running.
            sent = await asyncio.gather(
                *(self._send_node(addr, items, maxlen, timeout) for addr, items in by_node.items()),
                return_exceptions=True,
            )
            todo = []
            for outcome in sent:
                if isinstance(outcome, BaseException):
                    self._stale = True
                    raise outcome
                todo.extend(outcome)
            if not todo:
                return
        self._stale = True
        raise WireReplyError(f"still redirected after {MAX_REDIRECTS} tries")

    async def _send_node(
        self, addr: Addr, items: list[tuple[str, list[bytes], bool]], maxlen: int, timeout: float  # noqa: ASYNC109
    ) -> list[tuple[str, list[bytes], Addr | None]]:
        """One pipelined write to one master; returns the entries redirected elsewhere."""
        node = await self._node(addr, timeout)
        chunks: list[bytes] = []
        append = chunks.append
        count = 0
        asking = _pack("ASKING")
        for k, payloads, ask in items:
            head = self._heads.get((k, maxlen))
            if head is None:
                head = self._heads[(k, maxlen)] = xadd_head(k, maxlen)
            for p in payloads:
                if ask:
                    append(asking)
                    count += 1
                append(head)
                append(b"$%d\r\n" % len(p))
                append(p)
                append(b"\r\n")
                count += 1
        # A master with fewer healthy replicas (one just promoted) waits for those it has.
        wait = min(self._wait, self._replicas.get(addr, 0))
        if wait:
            append(_pack("WAIT", wait, max(1, int(timeout * 500))))
            count += 1
        replies = await node.pipeline(b"".join(chunks), count, timeout)
        if wait:
            acked = replies.pop()
            if not isinstance(acked, int) or acked < wait:
                self._stale = True  # a replica may have failed: count them again
                raise WireReplyError(f"{addr[0]}:{addr[1]}: {acked} of {wait} replicas acknowledged")
        retries: list[tuple[str, list[bytes], Addr | None]] = []
        error = hiredis.ReplyError
        if not any([type(r) is error for r in replies]):
            return retries  # the common case: every entry added
        it = iter(replies)
        for k, payloads, ask in items:
            refused: list[bytes] = []
            target: Addr | None = None
            for p in payloads:
                if ask:
                    next(it)  # ASKING's +OK
                reply = next(it)
                if not isinstance(reply, hiredis.ReplyError):
                    continue
                redirect = parse_redirect(str(reply))
                if redirect is None:
                    node.close()
                    raise WireReplyError(f"{addr[0]}:{addr[1]}: {reply}")
                kind, slot, where = redirect
                if kind == "MOVED":
                    self._owner[slot] = where
                    self._stale = True  # a failover or resharding: read the whole map next time
                    target = None
                else:
                    target = where
                refused.append(p)
            if refused:
                retries.append((k, refused, target))
        return retries

    def close(self) -> None:
        """Close every node connection (idempotent, never raises)."""
        self.closed = True
        for wire in self._wires.values():
            wire.close()
        self._wires.clear()


async def connect_stream(
    url: str, keys: list[str], timeout: float, wait_replicas: int = 0  # noqa: ASYNC109
) -> StreamWire:
    """The publisher's wire for ``url`` and the stream's shard ``keys`` (module doc)."""
    if is_cluster_url(url):
        return await ClusterWire.connect(url, keys, timeout, wait_replicas)
    if len(keys) == 1:
        return await RedisWire.connect(url, timeout)
    return await ClusterWire.single(url, keys, timeout)


def node_url(url: str) -> str:
    """A plain ``redis://`` URL of the first seed of a cluster URL (for tools that need one node)."""
    seeds, credentials = parse_cluster_url(url)
    return f"redis://{credentials}{seeds[0][0]}:{seeds[0][1]}"
