"""HTTP routes of the collectors on the admin listener (``footfall run`` and ``collect``).

- ``GET /api/v2/export?site=S&from=DATE&to=DATE&format=rows|jsonl|csv`` — the site's
  raw events in time order, streamed page by page from the process's store (so
  ``footfall export`` works while this process holds the embedded store).
  ``rows``: one JSON object per line keyed by table column (``ts`` in Unix
  seconds; what the CLI turns into Parquet); ``jsonl``: events v1; ``csv``: the
  table's columns. A bad parameter → 400 ``{"error": "<param>: <why>"}``; no
  analytics store in this process → 503.
- ``POST /api/v2/query`` and ``/batch`` — the query API (collectors/query/, added there).

The v1 endpoints (``/api/v1/*`` on the Redis aggregates) and their ``/dashboard``
are gone with the aggregates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson
from aiohttp import web

from collectors.analytics import export

if TYPE_CHECKING:
    from collectors.service import CollectorService

SERVICE_KEY: web.AppKey[CollectorService] = web.AppKey("footfall_collectors")
EXPORT_FORMATS = ("rows", "jsonl", "csv")
_CONTENT_TYPES = {"rows": "application/x-ndjson", "jsonl": "application/x-ndjson", "csv": "text/csv"}


def _bad(message: str, status: int = 400) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def export_events(request: web.Request) -> web.StreamResponse:
    store = request.app[SERVICE_KEY].store
    if store is None:
        return _bad("no analytics store in this process (run footfall run or collect analytics)", 503)
    q = request.query
    site = q.get("site", "").strip().lower()
    if not site:
        return _bad("site: required")
    fmt = q.get("format", "rows")
    if fmt not in EXPORT_FORMATS:
        return _bad(f"format: must be one of {', '.join(EXPORT_FORMATS)}, not {fmt!r}")
    if "from" not in q or "to" not in q:
        return _bad(f"{'from' if 'from' not in q else 'to'}: required (YYYY-MM-DD)")
    try:
        lo, hi = export.window(q["from"], q["to"])
    except ValueError as exc:
        return _bad(str(exc))
    windows = await store.run(export.pages, store.engine, store.events, site, lo, hi)
    response = web.StreamResponse(headers={"Content-Type": _CONTENT_TYPES[fmt]})
    await response.prepare(request)
    if fmt == "csv":
        await response.write(export.csv_header())
    line = {"rows": lambda row: orjson.dumps(row) + b"\n", "jsonl": export.jsonl_line, "csv": export.csv_line}[fmt]
    for start, stop in windows:
        rows = await store.run(export.read_page, store.engine, store.events, site, start, stop)
        await response.write(b"".join(line(row) for row in rows))
    await response.write_eof()
    return response


def add_routes(app: web.Application, service: CollectorService) -> None:
    app[SERVICE_KEY] = service
    app.router.add_get("/api/v2/export", export_events)
