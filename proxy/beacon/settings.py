"""``[beacon]`` settings (validated with the rest in :mod:`proxy.settings`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BeaconSettings:
    """The first-party script and its endpoint.

    ``enabled`` is the default for every site; ``sites_on``/``sites_off`` override it
    per site (the site's host as in ``upstreams``; ``*.suffix`` for subdomains).
    Everything under ``prefix`` on a site with the beacon on is answered by the
    proxy and never forwarded.
    """

    enabled: bool = False
    sites_on: tuple[str, ...] = ()
    sites_off: tuple[str, ...] = ()
    prefix: str = "/_ff/"
    max_scan_bytes: int = 64 * 1024  # decoded HTML held while looking for <head>
    max_body_bytes: int = 16 * 1024  # POST PREFIX/e bodies beyond this: 413
    max_items: int = 50  # items per POST; the rest are rejected (too_many)
    rate_per_second: float = 5.0  # POSTs per client (anonymised IP + visitor) ...
    rate_burst: int = 30  # ... with this many in a burst; beyond: 429
    rate_clients: int = 100_000  # token buckets kept (least recently used go first)

    def on_for(self, site: str) -> bool:
        """Whether the beacon is on for ``site`` (lower-case host, no port)."""
        if _matches(site, self.sites_off):
            return False
        return self.enabled or _matches(site, self.sites_on)


def _matches(site: str, patterns: tuple[str, ...]) -> bool:
    return any(p == site or (p.startswith("*.") and site.endswith(p[1:])) for p in patterns)


def check(s: BeaconSettings, errors: list[str]) -> None:
    """Cross-field checks; messages name the key path."""
    if not (s.prefix.startswith("/") and s.prefix.endswith("/") and len(s.prefix) > 2):
        errors.append(f"beacon.prefix: must start and end with '/', like '/_ff/', not {s.prefix!r}")
    elif any(c in s.prefix for c in "?#%\"'<> "):
        errors.append(f"beacon.prefix: only path characters allowed, not {s.prefix!r}")
    for path, value in (
        ("beacon.max_scan_bytes", s.max_scan_bytes),
        ("beacon.max_body_bytes", s.max_body_bytes),
        ("beacon.max_items", s.max_items),
        ("beacon.rate_per_second", s.rate_per_second),
        ("beacon.rate_burst", s.rate_burst),
        ("beacon.rate_clients", s.rate_clients),
    ):
        if value <= 0:
            errors.append(f"{path}: must be greater than 0")
    for path, sites in (("beacon.sites_on", s.sites_on), ("beacon.sites_off", s.sites_off)):
        for i, site in enumerate(sites):
            if site != site.lower() or "/" in site or ":" in site:
                errors.append(f"{path}[{i}]: not a lower-case host name or *.suffix: {site!r}")
