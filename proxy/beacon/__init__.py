"""The first-party beacon: a small script injected into HTML pages, and the
endpoint it reports to, both answered by the proxy on the site's own origin.

- :mod:`~proxy.beacon.settings`: ``[beacon]`` settings (imported by proxy.settings).
- :mod:`~proxy.beacon.injector`: per response, eligible or skipped (and why); header edits.
- :mod:`~proxy.beacon.csp`: whether the site's Content-Security-Policy allows the script.
- :mod:`~proxy.beacon.inject`: the streaming body transform (scan, decode, insert, re-encode).
- :mod:`~proxy.beacon.scan`, :mod:`~proxy.beacon.codecs`: its two pure halves.
- :mod:`~proxy.beacon.endpoint`: ``GET PREFIX/<version>.js`` and ``POST PREFIX/e``.
- :mod:`~proxy.beacon.items`: validation of what the script sends (hostile input).
- :mod:`~proxy.beacon.ratelimit`: token buckets per client.
- :mod:`~proxy.beacon.script`: the bundled JavaScript (``script/``: ours and web-vitals).
- :mod:`~proxy.beacon.metrics`: Prometheus counters of the proxy side.

This package is imported by proxy.settings; keep this file free of imports.
"""
