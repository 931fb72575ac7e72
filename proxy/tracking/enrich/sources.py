"""Referrer sources: one host → source index, compiled at start from two data files.

- ``config/matomo/matomo.json``: Matomo's maintained, CC0-licensed lists of search engines
  (with the query parameters that carry the search term), social networks and AI
  assistants, vendored at a pinned commit (``python -m proxy.tracking.enrich.update_data``).
- ``config/referrers.json``: what those lists lack — webmail providers, ad networks, app
  package ids of ``android-app://`` referrers, ``utm_source`` aliases. An entry whose
  name is a Matomo source's extends that source; its hosts win over the lists' hosts.

List entries are ``host[/path]``. ``{}`` (Matomo) or ``*`` (ours) stands for any one
label — a country code, ``de.bing.com`` — and in the last place for a top-level domain,
also a two-part one (``google.{}`` matches ``google.de``, ``google.co.uk``, ``google.com.au``).
A leading ``www.`` is ignored on both sides. A path rule matches its path and anything
below it (``google.{}/imgres`` → Google Images).

A host in more than one of Matomo's lists is an AI assistant before a social network
before a search engine. Precedence, for the referring host and then each parent domain in turn: a path rule,
then a host rule; at one level the exact host beats a ``{}`` form. So ``mail.google.com``
(Gmail) beats ``google.{}`` (Google), and ``google.de/imgres`` is Google Images.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

# Compile order: a host in several lists keeps the first list's medium (ChatGPT and
# You.com are also in the search list, facebook.com too, for its search page).
MATOMO_MEDIUMS = ("chatbot", "social", "search")
_MEDIUMS = frozenset({*MATOMO_MEDIUMS, "email", "paid"})

Term = str | re.Pattern[str]  # a query parameter name, or a regex over the referring URL


@dataclass(frozen=True, slots=True)
class Source:
    name: str  # shown to analysts: "Google Images", "GMX"
    medium: str  # search | social | chatbot | email | paid
    params: tuple[Term, ...] = ()  # where the search term is, first found wins


Rules = tuple[tuple[str, Source], ...]  # (path prefix or "" for any path, source), in precedence order


def entry_key(entry: str) -> tuple[str, str]:
    """A list entry -> ``(host key, path)``: ``"www.google.{}/imgres/"`` -> ``("google.*", "/imgres")``.

    ``android-app//PACKAGE/rest`` (Matomo's spelling of an app referrer) keys the package id,
    which is what :func:`proxy.tracking.enrich.referrer.split_referer` gives as the host.
    """
    text = entry.strip().lower().removeprefix("android-app//")
    host, slash, path = text.partition("/")
    host = host.replace("{}", "*").removeprefix("www.")
    return host, ("/" + path).rstrip("/") if slash else ""


def term_param(value: str) -> Term:
    """Matomo writes a regex as ``/…/`` (PCRE); group 1 is the term."""
    if len(value) > 2 and value.startswith("/") and value.endswith("/"):
        return re.compile(value[1:-1])
    return value


def host_forms(labels: list[str]) -> Iterator[str]:
    """The keys a host (as labels, ``www.`` removed) can match, exact form first."""
    n = len(labels)
    yield ".".join(labels)
    if n >= 2:
        yield ".".join(labels[:-1]) + ".*"
        if n >= 3 and len(labels[-1]) == 2 and len(labels[-2]) <= 3:  # co.uk, com.au
            yield ".".join(labels[:-2]) + ".*"
    for j in range(n - 1):
        yield ".".join([*labels[:j], "*", *labels[j + 1 :]])


class SourceIndex:
    """Host (+ path) and ``utm_source`` look-ups. Pure after init; uncached (callers cache)."""

    def __init__(self, matomo: Mapping[str, Any], footfall: Mapping[str, Any]) -> None:
        self._rules: dict[str, list[tuple[str, Source]]] = {}
        self._seen: set[tuple[str, str]] = set()
        self._names: dict[str, Source] = {}
        self.all_sources: list[Source] = []  # one per Matomo configuration and our entry
        by_name: dict[str, Source] = {}
        matomo_rules: list[tuple[str, Source]] = []
        for medium in MATOMO_MEDIUMS:
            for name, configs in matomo[medium].items():
                for urls, params in _configs(medium, configs):
                    source = Source(str(name), medium, tuple(term_param(str(p)) for p in params))
                    by_name.setdefault(source.name, source)
                    self.all_sources.append(source)
                    matomo_rules.extend((str(url), source) for url in urls)
        for i, entry in enumerate(footfall["sources"]):
            upstream = by_name.get(entry["name"])
            if upstream is None:
                terms = tuple(term_param(p) for p in entry.get("params", ()))
                source = Source(entry["name"], entry["medium"], terms)
                if source.medium not in _MEDIUMS:
                    raise ValueError(f"referrers.json sources[{i}].medium: unknown medium {source.medium!r}")
                by_name[source.name] = source
                self.all_sources.append(source)
            elif entry.get("medium", upstream.medium) != upstream.medium:
                what = f"{upstream.name!r} is a {upstream.medium} source upstream"
                raise ValueError(f"referrers.json sources[{i}]: {what}")
            else:
                source = upstream
            for alias in entry.get("aliases", ()):
                self._names.setdefault(alias.lower(), source)
            for host in entry.get("hosts", ()):
                self._add(host, source)  # ours first: first rule for a key wins
        for url, source in matomo_rules:
            self._add(url, source)
        for source in by_name.values():
            self._names.setdefault(source.name.lower(), source)
        for rules in self._rules.values():
            rules.sort(key=lambda rule: -len(rule[0]))  # longest path first, "" (any path) last
        self.sources = by_name

    def _add(self, entry: str, source: Source) -> None:
        key, path = entry_key(entry)
        if (key, path) in self._seen:
            return
        self._seen.add((key, path))
        self._rules.setdefault(key, []).append((path, source))
        if not path and "*" not in key:
            self._names.setdefault(key, source)

    def rules_for(self, host: str) -> Rules:
        """Every rule that can apply to ``host``, in precedence order, ending at the first
        rule for any path. Depends on the host only: cache it per host."""
        labels = host.removeprefix("www.").split(".")
        out: list[tuple[str, Source]] = []
        for i in range(len(labels)):
            fallback = None
            for key in host_forms(labels[i:]):
                for path, source in self._rules.get(key, ()):
                    if path:
                        out.append((path, source))
                    elif fallback is None:
                        fallback = source
            if fallback is not None:
                out.append(("", fallback))
                break
        return tuple(out)

    def by_host(self, host: str, path: str = "/") -> Source | None:
        return match_rules(self.rules_for(host), path)

    def by_name(self, name: str) -> Source | None:
        """A utm_source value (lower-case) -> its source: ``fb``, ``google``, ``t.co``."""
        return self._names.get(name) or self.by_host(name.removeprefix("www."))

    def keys(self) -> dict[tuple[str, str], Source]:
        """Every compiled ``(host key, path) -> source`` rule (for tests and tools)."""
        return {(key, path): source for key, rules in self._rules.items() for path, source in rules}


def match_rules(rules: Rules, path: str) -> Source | None:
    lowered = path.lower()
    for prefix, source in rules:
        if not prefix or lowered == prefix or lowered.startswith(prefix + "/"):
            return source
    return None


def _configs(medium: str, configs: Any) -> Iterator[tuple[list[Any], list[Any]]]:
    """``(urls, params)`` per configuration: search engines have a list of
    ``{urls, params, …}``; socials and assistants a plain list of urls."""
    if medium == "search":
        for config in configs:
            yield config["urls"], config.get("params") or []
    else:
        yield configs, []
