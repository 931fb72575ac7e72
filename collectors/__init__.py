"""Footfall's collectors: consumer groups on the event stream (DESIGN.md 1, 3.2).

- ``settings``          the ``[collectors]`` config table → :class:`CollectorSettings`
- ``events``            stream entry → event v1 dict (or a dead-letter reason); dimensions
- ``runtime``           the consumer-group loop: read, claim, dead-letter, apply + ack
- ``runtime_metrics``   lag, pending, processed/failed/dead-lettered, trim-gap metrics
- ``analytics/``        marketing aggregates in Redis:
    - ``keys``          key layout, time buckets, range covers (pure)
    - ``matcher``       goal and funnel-step matching (pure)
    - ``aggregate``     batch → compact delta (pure)
    - ``apply.lua``     the one atomic script: dedupe, sessions, deltas, XACK
    - ``store``         the analytics sink (runs the script)
    - ``query``         reading the aggregates
- ``performance``       Prometheus metrics from the stream (histograms, errors, Apdex)
- ``api``               ``/api/v1/*`` query API and ``/dashboard`` (``dashboard.html``)
- ``service``           :class:`CollectorService` and :func:`serve` for the CLI
"""
