"""Request JSON → :class:`~collectors.query.model.Query`; each error names its field.

Errors are :class:`QueryError` with a path in the request, e.g. ``filters[1][2]: …``
or ``order_by[0][0]: …``; the HTTP layer answers them with 400. Nothing here reaches
SQL as text: names are checked against fixed tables and values are kept as data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from collectors.query import dates
from collectors.query.dimensions import DIMENSIONS, TIME
from collectors.query.metrics import METRICS
from collectors.query.model import Condition, Filter, Include, Logic, Op, Period, Query
from collectors.settings import CollectorSettings

MAX_LIMIT = 10_000
MAX_VALUES = 100
MAX_VALUE_LENGTH = 2_000
MAX_DEPTH = 8
_TOP = frozenset({"site_id", "metrics", "date_range", "dimensions", "filters", "order_by", "include", "pagination"})
_MODES = ("previous_period", "year_over_year")


class QueryError(ValueError):
    """A bad query: ``path`` is the offending field (``filters[0][1]``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


def _list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise QueryError(path, f"must be a list, not {type(value).__name__}")
    return value


def _str(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise QueryError(path, "must be a non-empty string")
    if len(value) > MAX_VALUE_LENGTH:
        raise QueryError(path, f"longer than {MAX_VALUE_LENGTH} characters")
    return value


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise QueryError(path, "must be true or false")
    return value


def _int(value: Any, path: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise QueryError(path, f"must be an integer from {low} to {high}")
    return value


def _metrics(value: Any) -> tuple[str, ...]:
    items = _list(value, "metrics")
    if not items:
        raise QueryError("metrics", "must name at least one metric")
    out: list[str] = []
    for i, item in enumerate(items):
        name = _str(item, f"metrics[{i}]")
        if name not in METRICS:
            raise QueryError(f"metrics[{i}]", f"unknown metric {name!r}; known: {', '.join(METRICS)}")
        if name in out:
            raise QueryError(f"metrics[{i}]", f"{name!r} named twice")
        out.append(name)
    return tuple(out)


def _dimensions(value: Any) -> tuple[str, ...]:
    out: list[str] = []
    for i, item in enumerate(_list(value, "dimensions")):
        name = _str(item, f"dimensions[{i}]")
        if name not in DIMENSIONS:
            raise QueryError(f"dimensions[{i}]", f"unknown dimension {name!r}")
        if name in out:
            raise QueryError(f"dimensions[{i}]", f"{name!r} named twice")
        if name in TIME and any(d in TIME for d in out):
            raise QueryError(f"dimensions[{i}]", "only one time dimension per query")
        out.append(name)
    return tuple(out)


def _date(text: str, path: str) -> dt.date | dt.datetime:
    try:
        if len(text) == 10:
            return dt.date.fromisoformat(text)
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise QueryError(path, f"not an ISO date or datetime: {text!r}") from None
    if moment.tzinfo is None:
        raise QueryError(path, "a datetime needs a UTC offset, e.g. 2026-03-01T10:00:00+01:00")
    return moment


def _period(value: Any, tz: str, now: dt.datetime) -> Period:
    if isinstance(value, str):
        try:
            return dates.named(value, now, tz)
        except ValueError as exc:
            raise QueryError("date_range", str(exc)) from None
    items = _list(value, "date_range")
    if len(items) != 2:
        raise QueryError("date_range", "must be a name or a [from, to] pair")
    first, last = (_date(_str(v, f"date_range[{i}]"), f"date_range[{i}]") for i, v in enumerate(items))
    if isinstance(first, dt.datetime) != isinstance(last, dt.datetime):
        raise QueryError("date_range[1]", "must be the same kind (date or datetime) as date_range[0]")
    if last < first:
        raise QueryError("date_range[1]", "is before date_range[0]")
    if isinstance(first, dt.datetime) and isinstance(last, dt.datetime):
        return dates.instants(first, last)
    assert not isinstance(first, dt.datetime) and not isinstance(last, dt.datetime)
    if first < dates.ALL_START or (last - first).days > 3660:
        raise QueryError("date_range", f"must lie after {dates.ALL_START} and span at most 10 years")
    return dates.dates(first, last, tz)


def _filter(value: Any, path: str, depth: int) -> Filter:
    if depth > MAX_DEPTH:
        raise QueryError(path, f"filters nest deeper than {MAX_DEPTH}")
    items = _list(value, path)
    if not items or not isinstance(items[0], str):
        raise QueryError(f"{path}[0]", "must be an operator: is, is_not, contains, contains_not, matches, "
                         "matches_not, and, or, not")  # fmt: skip
    op = items[0]
    if op in ("and", "or"):
        if len(items) != 2:
            raise QueryError(path, f'must be ["{op}", [filter, …]]')
        children = _list(items[1], f"{path}[1]")
        if not children:
            raise QueryError(f"{path}[1]", "must hold at least one filter")
        return Logic(op, tuple(_filter(c, f"{path}[1][{i}]", depth + 1) for i, c in enumerate(children)))
    if op == "not":
        if len(items) != 2:
            raise QueryError(path, 'must be ["not", filter]')
        return Logic("not", (_filter(items[1], f"{path}[1]", depth + 1),))
    try:
        operator = Op(op)
    except ValueError:
        raise QueryError(f"{path}[0]", f"unknown operator {op!r}") from None
    if len(items) not in (3, 4):
        raise QueryError(path, f'must be ["{op}", dimension, [values…]] with optional modifiers')
    dimension = _str(items[1], f"{path}[1]")
    if dimension not in DIMENSIONS or dimension in TIME:
        raise QueryError(f"{path}[1]", f"cannot filter by {dimension!r}")
    raw = _list(items[2], f"{path}[2]")
    if not raw or len(raw) > MAX_VALUES:
        raise QueryError(f"{path}[2]", f"must hold 1 to {MAX_VALUES} values")
    values = []
    for i, v in enumerate(raw):
        if isinstance(v, int | float) and not isinstance(v, bool):
            v = str(v)
        values.append(_str(v, f"{path}[2][{i}]"))
    case_sensitive = True
    if len(items) == 4:
        mods = items[3]
        if not isinstance(mods, Mapping):
            raise QueryError(f"{path}[3]", 'must be {"case_sensitive": false}')
        for key in mods:
            if key != "case_sensitive":
                raise QueryError(f"{path}[3].{key}", "unknown modifier")
        case_sensitive = _bool(mods.get("case_sensitive", True), f"{path}[3].case_sensitive")
    return Condition(operator, dimension, tuple(values), case_sensitive, f"{path}[2]")


def _include(value: Any, dims: tuple[str, ...]) -> Include:
    if not isinstance(value, Mapping):
        raise QueryError("include", "must be an object")
    out: dict[str, Any] = {}
    for key, item in value.items():
        path = f"include.{key}"
        if key in ("time_labels", "total_rows"):
            out[key] = _bool(item, path)
        elif key == "comparisons":
            if item is None:
                continue
            if not isinstance(item, Mapping) or item.get("mode") not in _MODES or len(item) != 1:
                raise QueryError(path, 'must be {"mode": "previous_period"} or {"mode": "year_over_year"}')
            out[key] = item["mode"]
        else:
            raise QueryError(path, "unknown option")
    if out.get("time_labels") and not any(d in TIME for d in dims):
        raise QueryError("include.time_labels", "needs a time dimension")
    return Include(**out)


def _order_by(value: Any, metrics: tuple[str, ...], dims: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    out = []
    for i, item in enumerate(_list(value, "order_by")):
        pair = _list(item, f"order_by[{i}]")
        if len(pair) != 2:
            raise QueryError(f"order_by[{i}]", "must be [metric or dimension, asc|desc]")
        name = _str(pair[0], f"order_by[{i}][0]")
        if name not in metrics and name not in dims:
            raise QueryError(f"order_by[{i}][0]", f"{name!r} is not a metric or dimension of this query")
        if name == "conversion_rate":
            raise QueryError(f"order_by[{i}][0]", "conversion_rate cannot be sorted on; sort by visitors")
        if pair[1] not in ("asc", "desc"):
            raise QueryError(f"order_by[{i}][1]", "must be asc or desc")
        out.append((name, str(pair[1])))
    return tuple(out)


def parse(body: Any, settings: CollectorSettings, now: dt.datetime | None = None) -> Query:
    """The typed query of a request body; :class:`QueryError` naming the first bad field."""
    if not isinstance(body, Mapping):
        raise QueryError("query", "must be a JSON object")
    for key in body:
        if key not in _TOP:
            raise QueryError(str(key)[:100], "unknown field")
    for key in ("site_id", "metrics", "date_range"):
        if key not in body:
            raise QueryError(key, "is required")
    site = _str(body["site_id"], "site_id")
    if len(site) > 253:
        raise QueryError("site_id", "longer than 253 characters")
    tz = settings.site(site).timezone
    metrics = _metrics(body["metrics"])
    period = _period(body["date_range"], tz, now or dt.datetime.now(dt.UTC))
    dims = _dimensions(body.get("dimensions", []))
    filters = tuple(_filter(f, f"filters[{i}]", 0) for i, f in enumerate(_list(body.get("filters", []), "filters")))
    include = _include(body.get("include", {}), dims)
    order_by = _order_by(body.get("order_by", []), metrics, dims)
    pagination = body.get("pagination", {})
    if not isinstance(pagination, Mapping):
        raise QueryError("pagination", "must be an object")
    for key in pagination:
        if key not in ("limit", "offset"):
            raise QueryError(f"pagination.{key}", "unknown option")
    limit = _int(pagination.get("limit", MAX_LIMIT), "pagination.limit", 1, MAX_LIMIT)
    offset = _int(pagination.get("offset", 0), "pagination.offset", 0, 10_000_000)
    query = Query(site, metrics, period, body["date_range"] if isinstance(body["date_range"], str)
                  else tuple(body["date_range"]), tz, dims, filters, order_by, include, limit, offset)  # fmt: skip
    goal_used = "event:goal" in dims or "event:goal" in query.filter_dimensions()
    if "conversion_rate" in metrics and not goal_used:
        raise QueryError(f"metrics[{metrics.index('conversion_rate')}]", "conversion_rate needs an event:goal "
                         "filter or dimension")  # fmt: skip
    if "percentage" in metrics and not dims:
        raise QueryError(f"metrics[{metrics.index('percentage')}]", "percentage needs a dimension")
    if goal_used and not settings.goals:
        raise QueryError("dimensions" if "event:goal" in dims else "filters", "no goals are configured")
    return query
