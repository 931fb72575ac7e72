"""The benchmark's upstream site: nginx when it is installed, else a fast Python server.

Both serve the same four resources (see :data:`PAYLOADS`):

- ``GET /small``      200-byte text body
- ``GET /page.html``  15 KB HTML page
- ``GET /download``   1 MB binary download
- ``POST /upload``    accepts a body (the benchmark sends 64 KB) and answers ``ok``

The Python fallback is a bare asyncio protocol on uvloop (keep-alive, pipelining,
Content-Length and chunked request bodies): an upstream that costs as little CPU
as possible, because on a 2-core machine it shares its core with the load
generator and Redis. Run it alone with ``python -m load_tests.upstream --port N``.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import cast

SMALL_BODY = b"x" * 199 + b"\n"
_PARAGRAPH = (
    "<p>Footfall benchmark page: a paragraph of ordinary shop copy, with a "
    '<a href="/products/42">link</a> or two, as a real HTML page would carry.</p>\n'
)
_HTML_HEAD = "<!doctype html>\n<html><head><title>Bench</title></head><body>\n"
_HTML_TAIL = "</body></html>\n"


def _html_page(size: int = 15 * 1024) -> bytes:
    body = _HTML_HEAD
    while len(body) + len(_PARAGRAPH) + len(_HTML_TAIL) <= size:
        body += _PARAGRAPH
    body += " " * (size - len(body) - len(_HTML_TAIL)) + _HTML_TAIL
    return body.encode()


HTML_BODY = _html_page()
DOWNLOAD_BODY = bytes(range(256)) * (1024 * 1024 // 256)
UPLOAD_REPLY = b"ok\n"


@dataclass(frozen=True)
class Payload:
    """One benchmarked request shape."""

    name: str
    method: str
    path: str
    response_bytes: int
    request_body_bytes: int = 0
    html: bool = False


PAYLOADS: dict[str, Payload] = {
    "200B": Payload("200B", "GET", "/small", len(SMALL_BODY)),
    "15KB": Payload("15KB", "GET", "/page.html", len(HTML_BODY), html=True),
    "1MB": Payload("1MB", "GET", "/download", len(DOWNLOAD_BODY)),
    "post64KB": Payload("post64KB", "POST", "/upload", len(UPLOAD_REPLY), 64 * 1024),
}


def _response(body: bytes, content_type: str) -> bytes:
    head = (
        f"HTTP/1.1 200 OK\r\nServer: bench-upstream\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


_ROUTES: dict[tuple[bytes, bytes], bytes] = {
    (b"GET", b"/small"): _response(SMALL_BODY, "text/plain"),
    (b"GET", b"/page.html"): _response(HTML_BODY, "text/html; charset=utf-8"),
    (b"GET", b"/download"): _response(DOWNLOAD_BODY, "application/octet-stream"),
    (b"POST", b"/upload"): _response(UPLOAD_REPLY, "text/plain"),
}
_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
_BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class UpstreamProtocol(asyncio.Protocol):
    """HTTP/1.1 server for the fixed routes: keep-alive, pipelining, request bodies.

    Bodies are counted and discarded. Responses are prebuilt bytes, so a request
    costs one header parse and one ``write``.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.body_left = 0  # Content-Length bytes still to discard
        self.chunked = False  # discarding a chunked body
        self.pending: bytes | None = None  # the response owed once the body is read
        self.close_after = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while self._step():
            pass

    def _step(self) -> bool:
        """Make progress on the buffer; False when more bytes are needed."""
        if self.body_left:
            n = min(self.body_left, len(self.buf))
            del self.buf[:n]
            self.body_left -= n
            if self.body_left:
                return False
            return self._respond()
        if self.chunked:
            return self._discard_chunk()
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self.buf[:end])
        del self.buf[: end + 4]
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3:
            return self._fail()
        method, target = parts[0], parts[1].partition(b"?")[0]
        self.pending = _ROUTES.get((method, target), _NOT_FOUND)
        self.close_after = parts[2] == b"HTTP/1.0"
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                try:
                    self.body_left = int(value)
                except ValueError:
                    return self._fail()
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                self.chunked = True
            elif name == b"connection":
                self.close_after = value.strip().lower() == b"close"
        if self.body_left or self.chunked:
            return True
        return self._respond()

    def _discard_chunk(self) -> bool:
        end = self.buf.find(b"\r\n")
        if end < 0:
            return False
        try:
            size = int(bytes(self.buf[:end]).split(b";")[0], 16)
        except ValueError:
            return self._fail()
        if size == 0:  # last chunk; no trailers are sent by the clients we meet
            if len(self.buf) < end + 4:
                return False
            del self.buf[: end + 4]
            self.chunked = False
            return self._respond()
        if len(self.buf) < end + 2 + size + 2:
            return False
        del self.buf[: end + 2 + size + 2]
        return True

    def _respond(self) -> bool:
        assert self.transport is not None
        assert self.pending is not None
        self.transport.write(self.pending)
        self.pending = None
        if self.close_after:
            self.transport.close()
            return False
        return True

    def _fail(self) -> bool:
        assert self.transport is not None
        self.transport.write(_BAD_REQUEST)
        self.transport.close()
        self.buf.clear()
        return False


async def serve_python(host: str, port: int) -> asyncio.Server:
    """Start the Python upstream on ``host:port`` in the running loop."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(UpstreamProtocol, host, port, reuse_address=True, backlog=4096)


# --- nginx ---------------------------------------------------------------------------

NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
user root;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
worker_rlimit_nofile 20000;
events {{ worker_connections 16384; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    sendfile on;
    tcp_nopush on;
    open_file_cache max=16;
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        root {dir}/www;
        location = /small {{ default_type text/plain; }}
        location = /page.html {{ default_type "text/html; charset=utf-8"; }}
        location = /download {{ default_type application/octet-stream; }}
        location = /upload {{
            client_max_body_size 4m;
            client_body_buffer_size 128k;
            default_type text/plain;
            return 200 "ok\\n";
        }}
    }}
}}
"""


def nginx_available() -> bool:
    return shutil.which("nginx") is not None


def write_nginx_site(directory: Path, port: int) -> Path:
    """Write the static files and an nginx.conf serving them on 127.0.0.1:port."""
    www = directory / "www"
    www.mkdir(parents=True, exist_ok=True)
    (www / "small").write_bytes(SMALL_BODY)
    (www / "page.html").write_bytes(HTML_BODY)
    (www / "download").write_bytes(DOWNLOAD_BODY)
    conf = directory / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=directory, port=port))
    return conf


def nginx_command(conf: Path) -> list[str]:
    """The command that runs nginx in the foreground with ``conf``."""
    return ["nginx", "-c", str(conf), "-p", str(conf.parent), "-e", str(conf.parent / "error.log")]


def wait_http(url: str, timeout: float = 10.0) -> bool:
    """Poll ``url`` until it answers any HTTP status; False on timeout."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                r.read()
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            time.sleep(0.05)
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--nginx", action="store_true", help="run nginx instead (foreground)")
    args = parser.parse_args()
    if args.nginx:
        with tempfile.TemporaryDirectory(prefix="bench-nginx-") as tmp:
            conf = write_nginx_site(Path(tmp), args.port)
            subprocess.run(nginx_command(conf), check=False)
        return

    import uvloop

    async def run() -> None:
        server = await serve_python(args.host, args.port)
        async with server:
            await server.serve_forever()

    uvloop.run(run())


if __name__ == "__main__":
    main()
