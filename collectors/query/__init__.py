"""The query API: Plausible-style Stats API v2 questions answered from the event store.

A query is data before it is SQL:

- :mod:`model` — the typed query (dataclasses);
- :mod:`parse` — request JSON → typed query; errors name the field (``filters[1][2]: …``);
- :mod:`dates` — date ranges and time buckets in the site's time zone;
- :mod:`dimensions` — dimension names → column expressions (event or session scope);
- :mod:`metrics` — metric definitions (the README's table is written from them);
- :mod:`goals` — configured goals and funnels → SQL conditions;
- :mod:`compile` — typed query → (SQL, bound parameters), in one place;
- :mod:`run` — executes compiled queries and shapes the response;
- :mod:`http` — the aiohttp handlers (``/api/v2/query``, ``/funnel``, ``/realtime``, ``/sites``);
- :mod:`sites` — ``[[collectors.sites]]`` settings (time zone, Apdex T).
"""
