"""Host-based routing to the configured upstreams. Pure.

The upstream is always chosen from this map, never from the request: a Host
that matches no rule (and no catch-all exists) is refused, so Footfall is never
an open proxy.
"""

from __future__ import annotations

from collections.abc import Iterable

from proxy.settings import Upstream


class UpstreamMap:
    """Exact hosts first, then ``*.suffix`` rules (longest suffix wins), then the catch-all."""

    __slots__ = ("_cache", "_catch_all", "_exact", "_wildcards")

    def __init__(self, upstreams: Iterable[Upstream]) -> None:
        self._exact: dict[str, Upstream] = {}
        wildcards: list[tuple[str, Upstream]] = []
        self._catch_all: Upstream | None = None
        for up in upstreams:
            if not up.host:
                self._catch_all = up
            elif up.host.startswith("*."):
                wildcards.append((up.host[1:], up))  # ".example"
            else:
                self._exact[up.host] = up
        self._wildcards = tuple(sorted(wildcards, key=lambda w: -len(w[0])))
        self._cache: dict[str, Upstream | None] = {}

    def match(self, site: str) -> Upstream | None:
        """The upstream for a lower-cased host without port, or None to refuse."""
        try:
            return self._cache[site]
        except KeyError:
            pass
        found = self._exact.get(site)
        if found is None:
            for suffix, up in self._wildcards:
                if site.endswith(suffix) and len(site) > len(suffix):
                    found = up
                    break
            else:
                found = self._catch_all
        # Only configured hosts are cached unboundedly; others share a bounded budget.
        if (found is not None and found is not self._catch_all) or len(self._cache) < 10_000:
            self._cache[site] = found
        return found
