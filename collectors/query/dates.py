"""Date ranges and time buckets in the site's time zone. Pure: ``now`` is passed in.

A date range resolves to a half-open UTC interval whose ends are local midnights
(or exact instants for datetime ranges and ``realtime``), so a day in
Europe/Berlin is 23 hours long at the end of March and 25 at the end of October.
"""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

from collectors.query.model import Period

UTC = dt.UTC
REALTIME_SECONDS = 300
ALL_START = dt.date(2000, 1, 1)
_DAYS = re.compile(r"^(\d{1,3})d$")
NAMED = ("day", "7d", "28d", "30d", "91d", "month", "6mo", "12mo", "year", "all", "realtime")
GRANULARITIES = ("minute", "hour", "day", "week", "month")


def midnight(day: dt.date, tz: str) -> dt.datetime:
    """Local midnight of ``day`` as a UTC datetime."""
    return dt.datetime.combine(day, dt.time(0), tzinfo=ZoneInfo(tz)).astimezone(UTC)


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def _granularity(days: int) -> str:
    return "hour" if days <= 1 else "day" if days <= 93 else "month"


def _days(first: dt.date, stop: dt.date, tz: str, granularity: str | None = None) -> Period:
    """Local dates ``first`` ≤ d < ``stop``."""
    n = (stop - first).days
    return Period(midnight(first, tz), midnight(stop, tz), "day", n, granularity or _granularity(n))


def named(name: str, now: dt.datetime, tz: str) -> Period:
    """A named range (``day``, ``7d``, ``month``, …); ValueError if unknown.

    ``Nd`` ends with today (today and the N-1 days before); ``month``/``year`` are the
    calendar month/year containing today; ``6mo``/``12mo`` this month and the 5/11 before.
    """
    today = now.astimezone(ZoneInfo(tz)).date()
    tomorrow = today + dt.timedelta(days=1)
    if name == "realtime":
        return Period(now - dt.timedelta(seconds=REALTIME_SECONDS), now, "second", REALTIME_SECONDS, "minute")
    if name == "day":
        return _days(today, tomorrow, tz)
    m = _DAYS.match(name)
    if m and 1 <= int(m.group(1)) <= 366:
        return _days(tomorrow - dt.timedelta(days=int(m.group(1))), tomorrow, tz)
    first_of_month = today.replace(day=1)
    if name == "month":
        return _days(first_of_month, _add_months(first_of_month, 1), tz, "day")
    if name in ("6mo", "12mo"):
        back = 5 if name == "6mo" else 11
        return _days(_add_months(first_of_month, -back), _add_months(first_of_month, 1), tz, "month")
    if name == "year":
        return _days(dt.date(today.year, 1, 1), dt.date(today.year + 1, 1, 1), tz, "month")
    if name == "all":
        return _days(ALL_START, tomorrow, tz, "month")
    raise ValueError(f"must be one of {', '.join(NAMED)} or a [from, to] pair")


def dates(first: dt.date, last: dt.date, tz: str) -> Period:
    """``[first, last]``, both local dates inclusive."""
    return _days(first, last + dt.timedelta(days=1), tz)


def instants(first: dt.datetime, last: dt.datetime) -> Period:
    """``[first, last]`` inclusive to the millisecond (ISO datetimes with offsets)."""
    end = last.astimezone(UTC) + dt.timedelta(milliseconds=1)
    start = first.astimezone(UTC)
    seconds = max(1, int((end - start).total_seconds()))
    return Period(start, end, "second", seconds, _granularity(-(-seconds // 86400)))


def previous(period: Period, tz: str) -> Period:
    """The period of the same length just before (local calendar days, or seconds)."""
    if period.unit == "day":
        first = period.start.astimezone(ZoneInfo(tz)).date()
        return _days(first - dt.timedelta(days=period.length), first, tz, period.granularity)
    delta = period.end - period.start
    return Period(period.start - delta, period.start, "second", period.length, period.granularity)


def _year_back(day: dt.date) -> dt.date:
    if day.month == 2 and day.day == 29:
        return dt.date(day.year - 1, 2, 28)
    return day.replace(year=day.year - 1)


def year_before(period: Period, tz: str) -> Period:
    """The same local dates (or local times) one year earlier."""
    zone = ZoneInfo(tz)
    if period.unit == "day":
        first, stop = (t.astimezone(zone).date() for t in (period.start, period.end))
        return _days(_year_back(first), _year_back(stop), tz, period.granularity)
    start, end = (t.astimezone(zone) for t in (period.start, period.end))
    back = [t.replace(year=t.year - 1, day=min(t.day, 28) if t.month == 2 else t.day) for t in (start, end)]
    return Period(back[0].astimezone(UTC), back[1].astimezone(UTC), "second", period.length, period.granularity)


def label(moment: dt.datetime, granularity: str) -> str:
    """The bucket label of a local datetime, as the SQL bucket expressions print it."""
    if granularity == "minute":
        return moment.strftime("%Y-%m-%d %H:%M:00")
    if granularity == "hour":
        return moment.strftime("%Y-%m-%d %H:00:00")
    if granularity == "day":
        return moment.date().isoformat()
    if granularity == "week":
        return (moment.date() - dt.timedelta(days=moment.weekday())).isoformat()
    return moment.date().replace(day=1).isoformat()


def time_labels(period: Period, granularity: str, tz: str) -> list[str]:
    """Every bucket label of ``period`` in order (the ones with no data too)."""
    zone = ZoneInfo(tz)
    step = {"minute": 60, "hour": 3600}.get(granularity)
    out: list[str] = []
    if step:  # walk in UTC: a local hour that repeats at the DST change is one label
        t = period.start.replace(second=0, microsecond=0)
        if granularity == "hour":
            t = t.replace(minute=0)
        while t < period.end:
            text = label(t.astimezone(zone), granularity)
            if not out or out[-1] != text:
                out.append(text)
            t += dt.timedelta(seconds=step)
        return out
    day = period.start.astimezone(zone).date()
    last = (period.end - dt.timedelta(microseconds=1)).astimezone(zone).date()
    while day <= last:
        text = label(dt.datetime.combine(day, dt.time(0)), granularity)
        if not out or out[-1] != text:
            out.append(text)
        day += dt.timedelta(days=1)
    return out
