"""Load tests and the hot-path benchmark (issue #5).

- ``bench.py``            the runner: starts upstream, Redis and proxies; interleaved
                          rounds of closed- and open-loop cells; table + JSON results
- ``reference_proxy.py``  minimal aiohttp passthrough proxy: the ceiling for this stack
- ``upstream.py``         the upstream site: nginx config generation, or a fast Python server
- ``loadgen.py``          built-in async load generator (closed loop, open loop without
                          coordinated omission, idle connections) and the wrk driver
- ``bench_tracking.py``   micro-benchmark of the per-request tracking CPU budget
- ``bench_enrich.py``, ``bench_publish.py``, ``bench_collectors.py``: focused
                          micro-benchmarks of enrichment, publishing and collectors
- ``results/``            JSON output (git-ignored)
"""
