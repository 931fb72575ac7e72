"""Redirects that point at the upstream itself are turned back to the proxy.

An upstream that builds absolute URLs from its own address (``Location:
http://127.0.0.1:8765/tutorial/``) would send the browser around the proxy, and
the rest of the visit would go untracked (and often fail: the upstream is not
reachable from outside). Like nginx's default ``proxy_redirect``, ``Location``,
``Content-Location`` and the URL of ``Refresh: 5; url=...`` are rewritten when
they start with the upstream's URL (scheme, host, port; the default port may be
written or not; case-insensitive): that prefix becomes the client-facing origin
(the scheme the client used, the Host it sent). Anything else (a relative URL,
another host) passes unchanged. Setting: ``rewrite_redirects`` (default true).

Pure: values in, values out; :func:`rewrite_headers` is the one call the
forwarder makes on a response head.
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping

from yarl import URL

HEADERS = ("Location", "Content-Location")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_REFRESH_URL = re.compile(r"""^(\s*\d*\.?\d*\s*[;,]\s*url\s*=\s*)(['"]?)(.*?)\2(\s*)$""", re.IGNORECASE | re.DOTALL)


def upstream_prefixes(upstream_url: str) -> tuple[str, ...]:
    """The lower-cased spellings of an upstream URL a redirect may start with.

    ``http://a`` and ``http://a:80`` are the same origin, so both are listed; a
    path in the upstream URL is part of the prefix (nginx's rule).
    """
    url = URL(upstream_url)
    scheme, host = url.scheme.lower(), (url.raw_host or "").lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    path = url.raw_path.rstrip("/")
    port = url.explicit_port
    default = _DEFAULT_PORTS.get(scheme)
    spellings = [f"{scheme}://{host}:{port}"] if port is not None and port != default else []
    if port is None or port == default:
        spellings = [f"{scheme}://{host}", f"{scheme}://{host}:{default}"]
    return tuple(s + path for s in spellings)


def rewrite_url(value: str, prefixes: tuple[str, ...], client_origin: str) -> str | None:
    """``value`` with an upstream prefix replaced by ``client_origin``; None if it has none.

    ``client_origin`` is ``scheme://host[:port]`` as the client addressed the proxy,
    or ``""`` to leave a path-only (relative) reference.
    """
    low = value[:256].lower()
    for prefix in prefixes:
        if low.startswith(prefix):
            rest = value[len(prefix) :]
            if rest == "" or rest[0] in "/?#":
                return client_origin + (rest if rest.startswith("/") else "/" + rest)
    return None


def rewrite_refresh(value: str, prefixes: tuple[str, ...], client_origin: str) -> str | None:
    """The ``Refresh`` header (``5; url=http://...``) with its URL rewritten; None if unchanged."""
    m = _REFRESH_URL.match(value)
    if m is None:
        return None
    new = rewrite_url(m.group(3), prefixes, client_origin)
    if new is None:
        return None
    return f"{m.group(1)}{m.group(2)}{new}{m.group(2)}{m.group(4)}"


def client_origin(scheme: str, host: str | None) -> str:
    """The origin the client used; ``""`` (relative references) when it sent no Host."""
    return f"{scheme}://{host}" if host else ""


def rewrite_headers(headers: MutableMapping[str, str], prefixes: tuple[str, ...], origin: str) -> None:
    """Rewrite ``Location``, ``Content-Location`` and ``Refresh`` of a response head in place."""
    for name in HEADERS:
        value = headers.get(name)
        if value is not None:
            new = rewrite_url(value, prefixes, origin)
            if new is not None:
                headers[name] = new
    refresh = headers.get("Refresh")
    if refresh is not None:
        new = rewrite_refresh(refresh, prefixes, origin)
        if new is not None:
            headers["Refresh"] = new
