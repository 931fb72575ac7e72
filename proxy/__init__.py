"""Footfall's proxy package, grouped by the path data takes.

edge/      where a request goes: guard → forward → upstream client, watchdog, server
tracking/  where an event is made: identity (on the hot path), then pipeline, event,
           privacy, routes, cookieless and enrich/ in the publisher's flush task
stream/    how it leaves: publisher → rediswire / spool, the embedded Redis, tail
The app shell stays at the top: cli.py, runner.py (workers, signals), settings.py,
metrics.py, admin.py (/metrics, /healthz, /readyz), demo.py, tasks.py (named tasks).
"""
