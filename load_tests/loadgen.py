"""Load generators: a built-in asyncio one, and a driver for ``wrk``.

Built-in generator (raw HTTP/1.1 over keep-alive connections, uvloop):

- **closed loop** (:func:`closed_loop`): each connection sends its next request as
  soon as the previous answer ends; measures maximum throughput.
- **open loop** (:func:`open_loop`): requests are due at fixed times
  ``t0 + i / rate`` whether or not the server kept up (wrk2 style). Latency is
  counted from the *scheduled* time, so a stalled server is charged for every
  request it delayed (no coordinated omission). The service time (from the
  actual send) is reported beside it; the gap between the two shows queueing and
  the event loop's ~1 ms timer granularity.
- **idle connections** (:func:`hold_idle`): open many keep-alive connections, make
  one request on each, and hold them while the caller measures memory.

Every run is bounded by a request count and a deadline and ends by itself.

Requests look like a browser's (:func:`request_mix`): a cycle of ten variants in
which the first carries no cookie (a new visitor) and the other nine carry the
visitor and session cookies (returning visitors), three of ten a Referer.

Run alone: ``python -m load_tests.loadgen --url http://127.0.0.1:8080 --payload 200B
--connections 50 --duration 5 [--rate 2000]``; prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from load_tests.upstream import PAYLOADS, Payload

USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
)
ACCEPT_HTML = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
COOKIE = "ff_vid=0190a4b2c3d47e5f8a9b0c1d2e3f4a5b; ff_sid=0190a4b2c3d47e5f8a9b0c1d2e3f4a5c; _pk_id=1a2b3c; theme=dark"
REFERERS = ("https://www.google.com/", "https://news.example.org/article/12", "")
MIX_SIZE = 10


# The cookie-signing secret the benchmark gives Footfall (FOOTFALL_COOKIE_SECRET), so
# the sessions minted here verify there, as a returning visitor's would.
BENCH_COOKIE_SECRET = "footfall-benchmark-cookie-secret"


def returning_visitor_cookie() -> str:
    """A Cookie header Footfall accepts as a live session (minted now with
    :data:`BENCH_COOKIE_SECRET`, valid for the session idle time), plus two foreign cookies.

    Falls back to :data:`COOKIE` (well-formed but unverifiable) when
    ``proxy.tracking.identity`` cannot be imported.
    """
    try:
        from proxy.settings import IdentitySettings
        from proxy.tracking.identity import CookieIdentity
    except ImportError:
        return COOKIE
    identity = CookieIdentity(IdentitySettings(cookie_secret=BENCH_COOKIE_SECRET))
    ident = identity.resolve(None, now=time.time(), pageview=True, secure=False, denied=False)
    own = "; ".join(c.split(";", 1)[0] for c in ident.set_cookies)
    return f"{own}; _pk_id=1a2b3c; theme=dark"


def request_mix(payload: Payload, host: str, cookie: str = COOKIE) -> list[bytes]:
    """The ten raw requests a connection cycles through for ``payload``.

    Variant 0 has no cookie; 1-9 carry ``cookie``; variants 2, 5 and 8 a Referer.
    """
    accept = ACCEPT_HTML if payload.html else "*/*"
    body = b"x" * payload.request_body_bytes
    out = []
    for i in range(MIX_SIZE):
        lines = [
            f"{payload.method} {payload.path} HTTP/1.1",
            f"Host: {host}",
            f"User-Agent: {USER_AGENT}",
            f"Accept: {accept}",
            "Accept-Language: en-GB,en;q=0.9",
            "Accept-Encoding: gzip, deflate, br",
        ]
        if i:
            lines.append(f"Cookie: {cookie}")
        if i % 3 == 2:
            lines.append(f"Referer: {REFERERS[i % 2]}")
        if body:
            lines += ["Content-Type: application/octet-stream", f"Content-Length: {len(body)}"]
        out.append(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    return out


# --- statistics ----------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of an ascending sequence (``p`` in 0-100); nan if empty."""
    if not sorted_values:
        return math.nan
    rank = math.ceil(p / 100 * len(sorted_values))
    return sorted_values[min(len(sorted_values), max(rank, 1)) - 1]


def summarize_us(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/p99.9/max/mean of latencies given in seconds, in microseconds."""
    s = sorted(seconds)
    out = {f"p{k}": percentile(s, p) * 1e6 for k, p in (("50", 50), ("90", 90), ("99", 99))}
    out["p999"] = percentile(s, 99.9) * 1e6
    out["max"] = s[-1] * 1e6 if s else math.nan
    out["mean"] = sum(s) / len(s) * 1e6 if s else math.nan
    return out


@dataclass
class Stats:
    """What one run observed. ``latency`` is from the scheduled (open loop) or the
    actual (closed loop) send time; ``service`` always from the actual send."""

    ok: int = 0  # 1xx-3xx answers
    bad_status: int = 0
    errors: int = 0  # connection failures, resets, unparsable answers, timeouts
    unsent: int = 0  # open loop: due requests not sent before the deadline
    bytes_in: int = 0
    latency: list[float] = field(default_factory=list)
    service: list[float] = field(default_factory=list)

    def to_dict(self, elapsed: float) -> dict[str, Any]:
        done = self.ok + self.bad_status
        return {
            "requests": done,
            "ok": self.ok,
            "bad_status": self.bad_status,
            "errors": self.errors,
            "unsent": self.unsent,
            "bytes_in": self.bytes_in,
            "elapsed_s": elapsed,
            "rps": done / elapsed if elapsed > 0 else 0.0,
            "latency_us": summarize_us(self.latency),
            "service_us": summarize_us(self.service),
        }


# --- one client connection -----------------------------------------------------------

_HEAD, _LENGTH, _CHUNKED, _TO_CLOSE = range(4)


class ClientConnection(asyncio.Protocol):
    """A keep-alive HTTP/1.1 client connection with one request in flight.

    Bodies are counted, never kept. Understands Content-Length, chunked and
    read-until-close responses.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._buf = bytearray()
        self._state = _HEAD
        self._left = 0
        self._status = 0
        self._close_after = False
        self._head_request = False
        self._bytes = 0
        self._waiter: asyncio.Future[tuple[int, int]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._state == _TO_CLOSE:
            self._finish()
        elif self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError("connection closed mid-response"))

    async def request(self, raw: bytes) -> tuple[int, int]:
        """Send ``raw``; return (status, body bytes) once the whole answer is read."""
        if self.closed or self.transport is None:
            raise ConnectionError("connection closed")
        self._waiter = asyncio.get_running_loop().create_future()
        self._head_request = raw.startswith(b"HEAD ")
        self.transport.write(raw)
        return await self._waiter

    def data_received(self, data: bytes) -> None:
        if self._state == _LENGTH and not self._buf:  # fast path: body bytes, not kept
            n = min(len(data), self._left)
            self._left -= n
            self._bytes += n
            if self._left == 0:
                self._finish()
            if n == len(data):
                return
            data = data[n:]
        self._buf += data
        try:
            while self._step():
                pass
        except ValueError as exc:
            self._fail(exc)

    def _step(self) -> bool:
        if self._state == _HEAD:
            return self._parse_head()
        if self._state == _LENGTH:
            n = min(len(self._buf), self._left)
            del self._buf[:n]
            self._left -= n
            self._bytes += n
            if self._left:
                return False
            self._finish()
            return bool(self._buf)
        if self._state == _CHUNKED:
            return self._parse_chunk()
        self._bytes += len(self._buf)  # _TO_CLOSE
        self._buf.clear()
        return False

    def _parse_head(self) -> bool:
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            return False
        lines = bytes(self._buf[:end]).split(b"\r\n")
        del self._buf[: end + 4]
        self._status = int(lines[0][9:12])
        self._bytes = 0
        length, chunked = None, False
        self._close_after = lines[0].startswith(b"HTTP/1.0")
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                self._close_after = value.strip().lower() == b"close"
        if self._head_request or self._status in (204, 304) or 100 <= self._status < 200:
            self._finish()
        elif chunked:
            self._state = _CHUNKED
        elif length is not None:
            self._state, self._left = _LENGTH, length
            if length == 0:
                self._finish()
        else:
            self._state = _TO_CLOSE
        return bool(self._buf) and self._state != _TO_CLOSE

    def _parse_chunk(self) -> bool:
        end = self._buf.find(b"\r\n")
        if end < 0:
            return False
        size = int(bytes(self._buf[:end]).split(b";")[0], 16)
        if size == 0:
            trailer_end = self._buf.find(b"\r\n\r\n", end)
            if trailer_end == end:  # no trailers: "0\r\n\r\n"
                del self._buf[: end + 4]
            elif trailer_end > 0:
                del self._buf[: trailer_end + 4]
            else:
                return False
            self._finish()
            return bool(self._buf)
        if len(self._buf) < end + 2 + size + 2:
            return False
        del self._buf[: end + 2 + size + 2]
        self._bytes += size
        return True

    def _finish(self) -> None:
        self._state = _HEAD
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((self._status, self._bytes))
        if self._close_after and self.transport is not None:
            self.transport.close()
            self.closed = True

    def _fail(self, exc: Exception) -> None:
        self._buf.clear()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError(f"bad response: {exc}"))
        if self.transport is not None:
            self.transport.close()
        self.closed = True


async def connect(host: str, port: int) -> ClientConnection:
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(ClientConnection, host, port)
    return conn


# --- the runs ------------------------------------------------------------------------


class _Budget:
    """A shared request budget: at most ``limit`` takes succeed."""

    def __init__(self, limit: int | None) -> None:
        self._left = limit

    def take(self) -> bool:
        if self._left is None:
            return True
        if self._left <= 0:
            return False
        self._left -= 1
        return True


async def _exchange(
    conn: ClientConnection | None, host: str, port: int, raw: bytes, stats: Stats
) -> tuple[ClientConnection | None, bool]:
    """One request on ``conn`` (reconnecting if needed); records status and bytes.

    Returns the connection to use next and whether an answer arrived.
    """
    try:
        if conn is None or conn.closed:
            conn = await connect(host, port)
        status, nbytes = await conn.request(raw)
    except (OSError, ConnectionError):
        stats.errors += 1
        return None, False
    stats.bytes_in += nbytes
    if status < 400:
        stats.ok += 1
    else:
        stats.bad_status += 1
    return conn, True


async def closed_loop(
    host: str,
    port: int,
    requests: Sequence[bytes],
    *,
    connections: int,
    duration: float,
    max_requests: int | None = None,
) -> dict[str, Any]:
    """Run ``connections`` back-to-back request loops for ``duration`` seconds (or until
    ``max_requests`` are sent). Returns :meth:`Stats.to_dict`."""
    stats, budget = Stats(), _Budget(max_requests)
    clock = time.perf_counter
    deadline = clock() + duration

    async def worker() -> None:
        conn: ClientConnection | None = None
        for i in itertools.count():
            if clock() >= deadline or not budget.take():
                break
            start = clock()
            conn, answered = await _exchange(conn, host, port, requests[i % len(requests)], stats)
            if answered:
                took = clock() - start
                stats.latency.append(took)
                stats.service.append(took)
            else:
                await asyncio.sleep(0.01)  # do not spin on a refused connection
        if conn is not None and conn.transport is not None:
            conn.transport.close()

    t0 = clock()
    await _run_bounded([worker() for _ in range(connections)], duration + 10, stats)
    return stats.to_dict(min(clock(), deadline) - t0 if max_requests is None else clock() - t0)


async def open_loop(
    host: str,
    port: int,
    requests: Sequence[bytes],
    *,
    connections: int,
    rate: float,
    duration: float,
) -> dict[str, Any]:
    """Send ``rate * duration`` requests due at ``t0 + i / rate`` over at most
    ``connections`` connections. Latency counts from the due time. Requests still
    unsent ``duration + 5`` s after the start are counted as ``unsent``."""
    stats = Stats()
    total = int(rate * duration)
    schedule = itertools.count()
    clock = time.perf_counter
    t0 = clock() + 0.05
    send_deadline = t0 + duration + 5

    async def worker() -> None:
        conn: ClientConnection | None = None
        sent = 0
        while (i := next(schedule)) < total:
            due = t0 + i / rate
            if (delay := due - clock()) > 0:
                await asyncio.sleep(delay)
            if clock() > send_deadline:
                stats.unsent += 1
                continue
            start = clock()
            raw = requests[sent % len(requests)]
            sent += 1
            conn, answered = await _exchange(conn, host, port, raw, stats)
            if answered:
                end = clock()
                stats.latency.append(end - due)
                stats.service.append(end - start)
        if conn is not None and conn.transport is not None:
            conn.transport.close()

    await _run_bounded([worker() for _ in range(connections)], duration + 15, stats)
    result = stats.to_dict(clock() - t0)
    result["target_rate"] = rate
    return result


async def _run_bounded(coros: list[Awaitable[None]], limit_s: float, stats: Stats) -> None:
    """Run the workers; cancel any still running after ``limit_s`` (counted as errors)."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    _, pending = await asyncio.wait(tasks, timeout=limit_s)
    for task in pending:
        task.cancel()
        stats.errors += 1
    if pending:
        await asyncio.wait(pending)


async def hold_idle(
    host: str,
    port: int,
    raw: bytes,
    count: int,
    while_held: Callable[[int], Awaitable[Any] | Any],
    *,
    limit_s: float = 60.0,
) -> tuple[int, Any]:
    """Open ``count`` connections, make one request on each, then call
    ``while_held(number_open)`` while all are held idle; close them all.

    Returns (connections that completed their request, ``while_held``'s result).
    """
    gate = asyncio.Semaphore(200)
    conns: list[ClientConnection] = []

    async def one() -> None:
        async with gate:
            try:
                conn = await connect(host, port)
                conns.append(conn)
                await conn.request(raw)
            except (OSError, ConnectionError):
                pass

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(one() for _ in range(count))), limit_s)
    open_now = sum(1 for c in conns if not c.closed)
    result = while_held(open_now)
    if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
        result = await result
    for conn in conns:
        if conn.transport is not None:
            conn.transport.close()
    await asyncio.sleep(0.1)
    return open_now, result


# --- wrk -----------------------------------------------------------------------------

WRK_MARK = "WRK_JSON "
_WRK_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
    '"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d,"mean":%f}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
"""


def _lua_string(data: bytes) -> str:
    """``data`` as a Lua double-quoted string literal."""
    out = []
    for b in data:
        c = chr(b)
        if c in '"\\':
            out.append("\\" + c)
        elif 32 <= b < 127:
            out.append(c)
        else:
            out.append(f"\\{b:03d}")
    return '"' + "".join(out) + '"'


def wrk_script(payload: Payload, host: str, cookie: str = COOKIE) -> str:
    """A wrk Lua script cycling through :func:`request_mix` and printing JSON at the end."""
    heads = [r[: len(r) - payload.request_body_bytes] for r in request_mix(payload, host, cookie)]
    body = f'string.rep("x", {payload.request_body_bytes})'
    items = ",\n  ".join(f"{_lua_string(h)} .. {body}" for h in heads)
    return (
        f"local reqs = {{\n  {items}\n}}\nlocal n = 0\n"
        "request = function()\n  n = n + 1\n  return reqs[(n - 1) % #reqs + 1]\nend\n" + _WRK_DONE
    )


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def parse_wrk(stdout: str) -> dict[str, Any]:
    """The JSON line of :data:`_WRK_DONE`, converted to the built-in generator's shape."""
    for line in stdout.splitlines():
        if line.startswith(WRK_MARK):
            w = json.loads(line[len(WRK_MARK) :])
            break
    else:
        raise ValueError(f"no {WRK_MARK.strip()} line in wrk output: {stdout[-500:]!r}")
    elapsed = w["duration_us"] / 1e6
    lat = {k: float(w[k]) for k in ("p50", "p90", "p99", "p999", "max", "mean")}
    errors = w["connect"] + w["read"] + w["write"] + w["timeout"]
    return {
        "requests": w["requests"],
        "ok": w["requests"] - w["status"],
        "bad_status": w["status"],
        "errors": errors,
        "unsent": 0,
        "bytes_in": w["bytes"],
        "elapsed_s": elapsed,
        "rps": w["requests"] / elapsed if elapsed > 0 else 0.0,
        "latency_us": lat,
        "service_us": lat,
    }


def wrk_command(script: str, url: str, connections: int, duration: float) -> list[str]:
    """wrk argv: one thread (it shares a core with the upstream), ``connections`` open."""
    threads = max(1, min(2, connections))
    return [
        "wrk",
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        f"{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "-s",
        script,
        url,
    ]


def run_wrk(
    script_path: str, url: str, connections: int, duration: float, prefix: Sequence[str] = ()
) -> dict[str, Any]:
    """Run wrk (optionally under ``prefix``, e.g. taskset) and parse its result."""
    cmd = [*prefix, *wrk_command(script_path, url, connections, duration)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr[-500:]}")
    return parse_wrk(proc.stdout)


# --- command line --------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description="built-in HTTP load generator (JSON out)")
    parser.add_argument("--url", required=True, help="http://HOST:PORT (path from --payload)")
    parser.add_argument("--payload", choices=sorted(PAYLOADS), default="200B")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rate", type=float, help="open loop at this many requests/s")
    parser.add_argument("--max-requests", type=int, help="closed loop: stop after this many")
    parser.add_argument("--cookie", default=COOKIE, help="Cookie header of returning visitors")
    args = parser.parse_args()
    hostport = args.url.split("://", 1)[-1].split("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    mix = request_mix(PAYLOADS[args.payload], hostport, args.cookie)

    import uvloop

    if args.rate:
        coro = open_loop(host, int(port), mix, connections=args.connections, rate=args.rate, duration=args.duration)
    else:
        coro = closed_loop(
            host, int(port), mix, connections=args.connections, duration=args.duration, max_requests=args.max_requests
        )
    result = uvloop.run(coro)
    result["generator"] = "builtin"
    print(json.dumps(result))


if __name__ == "__main__":
    main()
