"""Footfall's collectors: consumer groups on the event stream (DESIGN.md 1, 3.2).

- ``settings``          the ``[collectors]`` config table → :class:`CollectorSettings`
- ``events``            stream entry → event v1 dict (or a dead-letter reason); dimensions
- ``runtime``           the consumer-group loop: read, claim, dead-letter, apply + ack
- ``runtime_metrics``   lag, pending, processed/failed/dead-lettered, trim-gap metrics
- ``analytics/``        the event store (ClickHouse dialect: chDB embedded, or a server):
    - ``config``        the ``[analytics]`` table → :class:`StoreSettings` (store URL, caps, TTL)
    - ``schema``        events table DDL, cluster variants, ``create_all``
    - ``engine``        the Engine protocol and chDB; ``clickhouse`` the server engine
    - ``rows``          event v1 ↔ events-table row (pure)
    - ``store``         the process's store: opened once, called from worker threads
    - ``loader``        the ``analytics`` group's sink: dedupe on id, insert, then XACK
    - ``export``        raw events out in pages; JSON lines, CSV, Parquet
    - ``importer``      ``footfall import``: JSON lines → the stream, paced by the loader
- ``performance``       Prometheus metrics from the stream (histograms, errors, Apdex)
- ``api``               ``/api/v2/*`` routes on the admin listener (export; the query API)
- ``service``           :class:`CollectorService` and :func:`serve` for the CLI
"""
