"""Raw events out of the store: rows in pages, written as JSON lines, CSV or Parquet.

:func:`read_rows` pages through one site's events between two instants in time
order, a day at a time (an hour at a time on days with more than
:data:`PAGE_ROWS` events), so memory stays bounded whatever the range; each id
once, even before the ``ReplacingMergeTree`` merged a duplicate away.

Rows are dicts keyed by column (schema.EVENT_COLUMNS) with ``ts`` in Unix
seconds. Writers: ``jsonl`` — events v1 rebuilt by ``rows.from_row`` (what
``footfall tail`` prints, so ``footfall import`` takes it back); ``csv`` — one
column per table column, maps as JSON objects, ``ts`` as ISO 8601 UTC;
``parquet`` — the table's columns with their types (pyarrow).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

import orjson

from collectors.analytics.engine import Engine
from collectors.analytics.rows import from_row
from collectors.analytics.schema import EVENT_COLUMN_NAMES, EVENT_COLUMNS

FORMATS = ("jsonl", "csv", "parquet")
PAGE_ROWS = 200_000
_SELECT = ", ".join(
    "toUnixTimestamp64Milli(ts)" if name == "ts" else "toString(bytes_out)" if name == "bytes_out" else name
    for name in EVENT_COLUMN_NAMES
)
_DAYS = """SELECT toString(toDate(ts)), count() FROM {table}
WHERE site = {{site:String}} AND ts >= {{lo:DateTime64(3, 'UTC')}} AND ts < {{hi:DateTime64(3, 'UTC')}}
GROUP BY 1 ORDER BY 1"""
_PAGE = """SELECT {select} FROM {table}
WHERE site = {{site:String}} AND ts >= {{lo:DateTime64(3, 'UTC')}} AND ts < {{hi:DateTime64(3, 'UTC')}}
ORDER BY ts, id LIMIT 1 BY id"""


def utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).replace(tzinfo=None)


def parse_day(text: str, name: str) -> dt.datetime:
    """``YYYY-MM-DD`` or an ISO 8601 instant (naive means UTC) → naive UTC datetime."""
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{name}: not a date (YYYY-MM-DD) or ISO 8601 time: {text!r}") from None
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def window(start: str, end: str) -> tuple[dt.datetime, dt.datetime]:
    """``--from``/``--to`` → [lo, hi): a bare ``--to`` date includes that whole day."""
    lo, hi = parse_day(start, "from"), parse_day(end, "to")
    if len(end) == 10:
        hi += dt.timedelta(days=1)
    if hi <= lo:
        raise ValueError("to: must not be before from")
    return lo, hi


def _row(values: tuple[Any, ...]) -> dict[str, Any]:
    row = dict(zip(EVENT_COLUMN_NAMES, values, strict=True))
    row["ts"] = row["ts"] / 1000
    row["bytes_out"] = int(row["bytes_out"])
    return row


Window = tuple[dt.datetime, dt.datetime]


def pages(engine: Engine, table: str, site: str, lo: dt.datetime, hi: dt.datetime) -> list[Window]:
    """The [lo, hi) windows :func:`read_page` reads, in order (blocking)."""
    out = []
    for day, count in engine.query(_DAYS.format(table=table), {"site": site, "lo": lo, "hi": hi}):
        start = max(lo, dt.datetime.fromisoformat(day))
        stop = min(hi, dt.datetime.fromisoformat(day) + dt.timedelta(days=1))
        step = dt.timedelta(hours=1) if int(count) > PAGE_ROWS else stop - start
        while start < stop:
            out.append((start, min(stop, start + step)))
            start += step
    return out


def read_page(engine: Engine, table: str, site: str, lo: dt.datetime, hi: dt.datetime) -> list[dict[str, Any]]:
    """The site's rows with ``lo <= ts < hi`` in (ts, id) order, each id once (blocking)."""
    sql = _PAGE.format(select=_SELECT, table=table)
    return [_row(values) for values in engine.query(sql, {"site": site, "lo": lo, "hi": hi})]


def read_rows(engine: Engine, table: str, site: str, lo: dt.datetime, hi: dt.datetime) -> Iterator[dict[str, Any]]:
    """Every page of :func:`pages` in turn (blocking)."""
    for start, stop in pages(engine, table, site, lo, hi):
        yield from read_page(engine, table, site, start, stop)


def jsonl_line(row: dict[str, Any]) -> bytes:
    return orjson.dumps(from_row(row)) + b"\n"


def _csv_value(name: str, value: Any) -> Any:
    if name == "ts":
        return utc(value).isoformat(timespec="milliseconds") + "Z"
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else value


def csv_header() -> bytes:
    return (",".join(EVENT_COLUMN_NAMES) + "\r\n").encode()


def csv_line(row: dict[str, Any]) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerow([_csv_value(name, row[name]) for name in EVENT_COLUMN_NAMES])
    return out.getvalue().encode()


def _arrow_type(kind: str) -> Any:
    import pyarrow as pa

    base = kind.split(" CODEC")[0]
    if base.startswith("Nullable("):
        base = base[len("Nullable(") : -1]
    if base.startswith("LowCardinality("):
        base = base[len("LowCardinality(") : -1]
    simple = {"String": pa.string(), "Bool": pa.bool_(), "UInt8": pa.uint8(), "UInt16": pa.uint16(),
              "UInt32": pa.uint32(), "UInt64": pa.uint64(), "Float32": pa.float32()}  # fmt: skip
    if base in simple:
        return simple[base]
    if base.startswith("DateTime64"):
        return pa.timestamp("ms", tz="UTC")
    if base.startswith("Map("):
        return pa.map_(pa.string(), pa.string())
    raise ValueError(f"no Arrow type for {kind}")


def write_parquet(rows: Iterable[dict[str, Any]], out: IO[bytes], on_row: Callable[[], None] | None = None) -> int:
    """Write ``rows`` as one Parquet file (row groups of 50,000); return the count."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([(name, _arrow_type(kind)) for name, kind in EVENT_COLUMNS])
    n = 0
    with pq.ParquetWriter(out, schema, compression="zstd") as writer:
        chunk: list[dict[str, Any]] = []

        def flush() -> None:
            columns = {name: [r[name] for r in chunk] for name in EVENT_COLUMN_NAMES}
            columns["ts"] = [round(t * 1000) for t in columns["ts"]]
            columns["query"] = [list(m.items()) for m in columns["query"]]
            columns["props"] = [list(m.items()) for m in columns["props"]]
            writer.write_table(pa.table(columns, schema=schema))
            chunk.clear()

        for row in rows:
            chunk.append(row)
            n += 1
            if on_row is not None:
                on_row()
            if len(chunk) >= 50_000:
                flush()
        if chunk or n == 0:
            flush()
    return n
