"""Each field of a query wrong in turn → QueryError naming that field."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from collectors.query.model import Condition, Logic, Op
from collectors.query.parse import QueryError, parse
from tests.collectors.query import population

NOW = dt.datetime(2026, 3, 29, 12, 0, tzinfo=dt.UTC)
GOOD: dict[str, Any] = {"site_id": population.SITE, "metrics": ["visitors"], "date_range": "7d"}


def _parse(**changes: Any) -> Any:
    body = {**GOOD, **changes}
    return parse({k: v for k, v in body.items() if v is not ...}, population.settings(), NOW)


BAD: list[tuple[dict[str, Any], str]] = [
    ({"site_id": ...}, "site_id: is required"),
    ({"site_id": 7}, "site_id: must be a non-empty string"),
    ({"site_id": "x" * 300}, "site_id: longer than 253"),
    ({"metrics": ...}, "metrics: is required"),
    ({"metrics": "visitors"}, "metrics: must be a list"),
    ({"metrics": []}, "metrics: must name at least one"),
    ({"metrics": ["visitors", "nope"]}, "metrics[1]: unknown metric 'nope'"),
    ({"metrics": ["visitors", "visitors"]}, "metrics[1]: 'visitors' named twice"),
    ({"metrics": ["percentage"]}, "metrics[0]: percentage needs a dimension"),
    ({"metrics": ["conversion_rate"]}, "metrics[0]: conversion_rate needs an event:goal"),
    ({"date_range": ...}, "date_range: is required"),
    ({"date_range": "fortnight"}, "date_range: must be one of"),
    ({"date_range": ["2026-01-01"]}, "date_range: must be a name or a [from, to] pair"),
    ({"date_range": ["2026-01-01", "tomorrow"]}, "date_range[1]: not an ISO date"),
    ({"date_range": ["2026-01-05", "2026-01-01"]}, "date_range[1]: is before date_range[0]"),
    ({"date_range": ["2026-01-01", "2026-01-02T00:00:00+00:00"]}, "date_range[1]: must be the same kind"),
    ({"date_range": ["2026-01-01T00:00:00", "2026-01-02T00:00:00"]}, "date_range[0]: a datetime needs a UTC offset"),
    ({"date_range": ["1999-01-01", "2026-01-01"]}, "date_range: must lie after"),
    ({"dimensions": "event:page"}, "dimensions: must be a list"),
    ({"dimensions": ["event:page", "event:pages"]}, "dimensions[1]: unknown dimension 'event:pages'"),
    ({"dimensions": ["time:day", "time:hour"]}, "dimensions[1]: only one time dimension"),
    ({"dimensions": ["event:page", "event:page"]}, "dimensions[1]: 'event:page' named twice"),
    ({"filters": {"is": 1}}, "filters: must be a list"),
    ({"filters": [["is", "event:page", ["/"]], ["equals", "event:page", ["/"]]]}, "filters[1][0]: unknown operator"),
    ({"filters": [[]]}, "filters[0][0]: must be an operator"),
    ({"filters": [["is", "event:page"]]}, "filters[0]: must be [\"is\", dimension"),
    ({"filters": [["is", "event:nope", ["/"]]]}, "filters[0][1]: cannot filter by 'event:nope'"),
    ({"filters": [["is", "time:day", ["2026-01-01"]]]}, "filters[0][1]: cannot filter by 'time:day'"),
    ({"filters": [["is", "event:page", "/"]]}, "filters[0][2]: must be a list"),
    ({"filters": [["is", "event:page", []]]}, "filters[0][2]: must hold 1 to 100 values"),
    ({"filters": [["is", "event:page", ["/", None]]]}, "filters[0][2][1]: must be a non-empty string"),
    ({"filters": [["is", "event:page", ["/"], {"case_sensitive": "no"}]]}, "filters[0][3].case_sensitive: must be"),
    ({"filters": [["is", "event:page", ["/"], {"fuzzy": True}]]}, "filters[0][3].fuzzy: unknown modifier"),
    ({"filters": [["and", [["is", "event:page", ["/"]], ["is", "visit:bogus", ["x"]]]]]},
     "filters[0][1][1][1]: cannot filter by 'visit:bogus'"),
    ({"filters": [["and", []]]}, "filters[0][1]: must hold at least one filter"),
    ({"filters": [["not", ["is", "event:page", 3]]]}, "filters[0][1][2]: must be a list"),
    ({"order_by": [["pageviews", "desc"]]}, "order_by[0][0]: 'pageviews' is not a metric or dimension"),
    ({"order_by": [["visitors", "up"]]}, "order_by[0][1]: must be asc or desc"),
    ({"order_by": [["visitors"]]}, "order_by[0]: must be [metric or dimension, asc|desc]"),
    ({"include": {"comparisons": {"mode": "last_week"}}}, "include.comparisons: must be"),
    ({"include": {"time_labels": True}}, "include.time_labels: needs a time dimension"),
    ({"include": {"totals": True}}, "include.totals: unknown option"),
    ({"include": {"total_rows": 1}}, "include.total_rows: must be true or false"),
    ({"pagination": {"limit": 0}}, "pagination.limit: must be an integer from 1 to 10000"),
    ({"pagination": {"limit": 10, "offset": -1}}, "pagination.offset: must be an integer"),
    ({"pagination": {"page": 2}}, "pagination.page: unknown option"),
    ({"segment": 1}, "segment: unknown field"),
]  # fmt: skip


@pytest.mark.parametrize(("changes", "message"), BAD, ids=[m.split(":")[0] for _, m in BAD])
def test_each_bad_field_is_named(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(QueryError) as caught:
        _parse(**changes)
    assert str(caught.value).startswith(message), str(caught.value)


def test_a_good_query_becomes_typed_data() -> None:
    q = _parse(
        dimensions=["visit:source", "time:day"],
        filters=[["or", [["is", "event:page", ["/a", 7]], ["not", ["contains", "visit:country", ["d"],
                                                                       {"case_sensitive": False}]]]]],
        order_by=[["visitors", "asc"]],
        include={"comparisons": {"mode": "year_over_year"}, "total_rows": True},
        pagination={"limit": 5, "offset": 10},
    )  # fmt: skip
    assert q.timezone == population.TZ
    assert q.filters == (
        Logic("or", (
            Condition(Op.IS, "event:page", ("/a", "7"), True, "filters[0][1][0][2]"),
            Logic("not", (Condition(Op.CONTAINS, "visit:country", ("d",), False, "filters[0][1][1][1][2]"),)),
        )),
    )  # fmt: skip
    assert (q.limit, q.offset, q.include.comparisons) == (5, 10, "year_over_year")
    # 7d ends with today, in the site's zone (Berlin, CEST on 2026-03-29)
    assert q.period.start == dt.datetime(2026, 3, 22, 23, 0, tzinfo=dt.UTC)
    assert q.period.end == dt.datetime(2026, 3, 29, 22, 0, tzinfo=dt.UTC)


def test_goal_filters_need_goals() -> None:
    from collectors.settings import CollectorSettings

    with pytest.raises(QueryError, match=r"^filters: no goals"):
        parse({**GOOD, "filters": [["is", "event:goal", ["x"]]]}, CollectorSettings(), NOW)
