"""Load tests and the hot-path benchmark (issue #5).

- ``bench.py``            the runner: command line, workloads, interleaved rounds of
                          closed- and open-loop cells, the sustained and idle extras
- ``services.py``         the processes it starts (upstream, Redis, proxies): readiness,
                          RSS and CPU time, stop
- ``machine.py``          CPU pinning (taskset), wrk/nginx installation, machine description
- ``report.py``           medians, ratios, the issue's targets; the table and the JSON
- ``reference_proxy.py``  minimal aiohttp passthrough proxy: the ceiling for this stack
- ``upstream.py``         the upstream site: nginx config generation, or a fast Python server
- ``loadgen.py``          built-in async load generator (closed loop, open loop without
                          coordinated omission, idle connections) and the wrk driver
- ``bench_tracking.py``   micro-benchmark of the per-request tracking CPU budget
- ``bench_enrich.py``, ``bench_publish.py``, ``bench_collectors.py``: focused
                          micro-benchmarks of enrichment, publishing and collectors
- ``results/``            JSON output (git-ignored)
"""
