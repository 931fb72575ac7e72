"""The bundled script: web-vitals (vendored, Apache-2.0, see script/) then ours,
wrapped in one function so neither leaves a global behind but ``window.footfall``.

Served at ``PREFIX/<version>.js``, the version being a hash of the content: a
changed script gets a new URL, so the old one can be cached for a year.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path

import brotli

SCRIPT_DIR = Path(__file__).parent / "script"
WEB_VITALS = "web-vitals.iife.js"  # web-vitals 5.1.0, dist/web-vitals.iife.js from npm
OURS = "footfall.js"


@dataclass(frozen=True, slots=True)
class Bundle:
    body: bytes
    gzip: bytes
    br: bytes
    version: str

    @property
    def name(self) -> str:
        return f"{self.version}.js"


def compact(source: str) -> str:
    """Our script without its comment lines and indentation: a few hundred bytes off
    the wire, no build chain (the source keeps every line it needs for reading)."""
    lines = (line.strip() for line in source.splitlines())
    return "\n".join(line for line in lines if line and not line.startswith("//"))


@functools.cache
def bundle() -> Bundle:
    vitals = (SCRIPT_DIR / WEB_VITALS).read_text()
    ours = compact((SCRIPT_DIR / OURS).read_text())
    body = f"(function(){{\n{vitals}\n{ours}\n}})();\n".encode()
    version = hashlib.sha256(body).hexdigest()[:12]
    return Bundle(body, gzip.compress(body, 9, mtime=0), brotli.compress(body, quality=11), version)
