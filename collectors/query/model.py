"""The typed query: what :mod:`parse` produces and :mod:`compile` consumes. Plain data."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum


class Op(StrEnum):
    IS = "is"
    IS_NOT = "is_not"
    CONTAINS = "contains"
    CONTAINS_NOT = "contains_not"
    MATCHES = "matches"
    MATCHES_NOT = "matches_not"

    @property
    def negated(self) -> bool:
        return self.value.endswith("_not")


@dataclass(frozen=True, slots=True)
class Condition:
    """``[op, dimension, values, {case_sensitive}]``: true when any value matches (ORed)."""

    op: Op
    dimension: str
    values: tuple[str, ...]
    case_sensitive: bool = True
    path: str = ""  # the field path of this filter in the request, for error messages


@dataclass(frozen=True, slots=True)
class Logic:
    """``["and"|"or", [filters…]]`` or ``["not", filter]`` (one child)."""

    op: str
    children: tuple[Filter, ...]


Filter = Condition | Logic


@dataclass(frozen=True, slots=True)
class Period:
    """A half-open UTC interval ``[start, end)`` plus how it was asked for.

    ``unit``/``length`` say how to shift it for ``previous_period``: calendar days in
    the site's time zone for date ranges (so a DST change keeps local midnight), or
    seconds for datetime ranges and realtime.
    """

    start: dt.datetime
    end: dt.datetime
    unit: str  # "day" | "second"
    length: int  # days or seconds
    granularity: str  # what dimension "time" means here: "hour" | "day" | "month" | "minute"


@dataclass(frozen=True, slots=True)
class Include:
    time_labels: bool = False
    total_rows: bool = False
    comparisons: str | None = None  # "previous_period" | "year_over_year"


@dataclass(frozen=True, slots=True)
class Query:
    site: str
    metrics: tuple[str, ...]
    period: Period
    date_range: str | tuple[str, str]  # as asked, echoed in the response
    timezone: str = "UTC"
    dimensions: tuple[str, ...] = ()
    filters: tuple[Filter, ...] = ()
    order_by: tuple[tuple[str, str], ...] = ()  # (metric or dimension, "asc"|"desc")
    include: Include = field(default_factory=Include)
    limit: int = 10_000
    offset: int = 0

    def filter_dimensions(self) -> set[str]:
        return set(_dims(self.filters))


def _dims(filters: tuple[Filter, ...]) -> list[str]:
    out: list[str] = []
    for f in filters:
        out.extend([f.dimension] if isinstance(f, Condition) else _dims(f.children))
    return out
