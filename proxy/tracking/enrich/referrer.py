"""Referrer: split the Referer header and classify its host.

Pure functions plus :class:`ReferrerClassifier`, which caches by the Referer string
(pages link to each other over and over) and the host's rules of
:class:`proxy.tracking.enrich.sources.SourceIndex` by host. The returned ``url`` keeps
scheme, host, port and path only: the query (where PII such as e-mail addresses and
tokens lives) is dropped, except a search term from a known search engine's
parameter, which is re-encoded alone.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote_plus, unquote_plus

from proxy.tracking.enrich.sources import Rules, SourceIndex, Term, match_rules

DIRECT: dict[str, Any] = {"medium": "direct"}


@dataclass(frozen=True, slots=True)
class SplitUrl:
    scheme: str
    host: str  # lower-case, no port, no userinfo, no trailing dot
    authority: str  # host[:port] as it goes into the kept url
    path: str
    query: str


def split_referer(referer: str) -> SplitUrl | None:
    """Split by hand (urlsplit costs ~5 µs); ``None`` when there is no ``scheme://host``."""
    scheme, sep, rest = referer.strip().partition("://")
    if not sep or not scheme.isascii() or not scheme.replace("-", "").isalnum():
        return None
    end = len(rest)
    for ch in "/?#":
        i = rest.find(ch)
        if i != -1 and i < end:
            end = i
    authority = rest[:end].rpartition("@")[2].lower()
    if authority.startswith("[") and "]" in authority:  # IPv6 literal
        host = authority[1 : authority.index("]")]
    else:
        name, colon, port = authority.partition(":")
        host = name.rstrip(".")
        authority = host + colon + port
    if not host:
        return None
    tail = rest[end:].partition("#")[0]
    path, _, query = tail.partition("?")
    return SplitUrl(scheme.lower(), host, authority, path or "/", query)


def search_term(query: str, params: tuple[Term, ...], base: str = "", url: str = "") -> tuple[str | None, str] | None:
    """``(param, term)`` for the first non-empty term: a query parameter by name, or group 1
    of a regex over the referring URL without its query (``base``), else over all of it
    (``url``); then ``param`` is ``None``: the term sits in the path, which is kept anyway.
    A URL value is no term (``google.com/url?q=https://...`` carries the destination)."""
    if not params:
        return None
    values: dict[str, str] | None = None
    for param in params:
        if isinstance(param, str):
            if values is None:
                values = dict(parse_qsl(query, keep_blank_values=False)) if query else {}
            name: str | None = param
            term = values.get(param, "").strip()
        else:
            found = param.search(base) or param.search(url)
            if found is None or not found.groups():
                continue
            name, term = None, unquote_plus(found.group(1)).strip()
        if term and not term.startswith(("http://", "https://", "www.")):
            return name, term
    return None


def is_internal(host: str, site: str, own_domains: tuple[str, ...]) -> bool:
    """Same site (``www.`` ignored) or a configured own domain or one of its subdomains."""
    if host == site or host.removeprefix("www.") == site.removeprefix("www."):
        return True
    return any(host == d or host.endswith("." + d) for d in own_domains)


class ReferrerClassifier:
    """Referer header -> event ``referrer`` object. Returned dicts are cached and
    shared: callers copy before changing them."""

    def __init__(self, index: SourceIndex, own_domains: Iterable[str], cache_size: int) -> None:
        self._own = tuple(d.lower().lstrip("*").strip(".") for d in own_domains if d.strip("*."))
        self._rules = functools.lru_cache(maxsize=cache_size)(index.rules_for)
        self.classify_cached = functools.lru_cache(maxsize=cache_size)(self._classify)

    def classify(self, referer: str | None, site: str) -> dict[str, Any]:
        if not referer:
            return DIRECT
        return self.classify_cached(referer, site)

    def _classify(self, referer: str, site: str) -> dict[str, Any]:
        parts = split_referer(referer)
        if parts is None:  # "about:blank", garbage: a referrer we cannot place
            return {"url": None, "host": None, "medium": "unknown", "source": None}
        base = f"{parts.scheme}://{parts.authority}{parts.path}"
        result: dict[str, Any] = {"url": base, "host": parts.host}
        if is_internal(parts.host, site, self._own):
            result.update(medium="internal", source=parts.host)
            return result
        rules: Rules = self._rules(parts.host)
        source = match_rules(rules, parts.path) if rules else None
        if source is None:
            result.update(medium="unknown", source=parts.host.removeprefix("www."))
            return result
        result.update(medium=source.medium, source=source.name)
        term = search_term(parts.query, source.params, base, referer)
        if term is not None:
            if term[0] is not None:
                result["url"] = f"{base}?{term[0]}={quote_plus(term[1])}"
            result["term"] = term[1]
        return result
