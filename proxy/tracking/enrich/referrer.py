"""Referrer: split the Referer header and classify its host.

Pure functions plus :class:`ReferrerClassifier`, which caches by the Referer string
(pages link to each other over and over) and by host. The returned ``url`` keeps
scheme, host, port and path only: the query (where PII such as e-mail addresses and
tokens lives) is dropped, except a search term from a known search engine's
parameter, which is re-encoded alone.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote_plus

DIRECT: dict[str, Any] = {"medium": "direct"}


@dataclass(frozen=True, slots=True)
class Source:
    """One entry of ``config/referrers.json``."""

    name: str
    medium: str  # search | social | email | chatbot
    params: tuple[str, ...] = ()  # query parameters carrying a search term


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


def _tld_bases(host: str) -> Iterable[str]:
    """``host`` without a TLD-looking suffix: ``google.co.uk`` -> ``google.co``, ``google``."""
    labels = host.split(".")
    if len(labels) >= 2:
        yield ".".join(labels[:-1])
    if len(labels) >= 3 and len(labels[-2]) <= 3 and len(labels[-1]) == 2:
        yield ".".join(labels[:-2])


class SourceIndex:
    """Host and utm_source look-ups over ``config/referrers.json`` (pure, uncached)."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._exact: dict[str, Source] = {}
        self._wildcard: dict[str, Source] = {}  # "google" for "google.*"
        self._names: dict[str, Source] = {}
        for entry in data["sources"]:
            source = Source(entry["name"], entry["medium"], tuple(entry.get("params", ())))
            for host in entry["hosts"]:
                if host.endswith(".*"):
                    self._wildcard.setdefault(host[:-2], source)
                else:
                    self._exact.setdefault(host, source)
                    self._names.setdefault(host, source)
            for alias in (entry["name"], *entry.get("aliases", ())):
                self._names.setdefault(alias.lower(), source)

    def by_host(self, host: str) -> Source | None:
        """Most specific match: ``host`` itself, then each parent domain in turn."""
        labels = host.split(".")
        for i in range(len(labels)):
            candidate = ".".join(labels[i:])
            found = self._exact.get(candidate)
            if found is not None:
                return found
            for base in _tld_bases(candidate):
                found = self._wildcard.get(base)
                if found is not None:
                    return found
        return None

    def by_name(self, name: str) -> Source | None:
        """A utm_source value (lower-case) -> its source: ``fb``, ``google``, ``t.co``."""
        return self._names.get(name) or self.by_host(name.removeprefix("www."))


def search_term(query: str, params: tuple[str, ...]) -> tuple[str, str] | None:
    """``(param, term)`` for the first non-empty term param; a URL value is no term
    (``google.com/url?q=https://...`` carries the destination, not a search)."""
    if not query or not params:
        return None
    values = dict(parse_qsl(query, keep_blank_values=False))
    for param in params:
        term = values.get(param, "").strip()
        if term and not term.startswith(("http://", "https://", "www.")):
            return param, term
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
        self._host = functools.lru_cache(maxsize=cache_size)(index.by_host)
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
        source = self._host(parts.host)
        if source is None:
            result.update(medium="unknown", source=parts.host.removeprefix("www."))
            return result
        result.update(medium=source.medium, source=source.name)
        term = search_term(parts.query, source.params)
        if term is not None:
            result["url"] = f"{base}?{term[0]}={quote_plus(term[1])}"
            result["term"] = term[1]
        return result
