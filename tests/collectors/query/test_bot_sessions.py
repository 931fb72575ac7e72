"""Likely-automated sessions are excluded as a whole, on the real chDB engine: a session
whose later event is scored low loses its earlier events too; a human session and
consent-denied hits (no session: the per-event rule) are kept."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest

from collectors.analytics.engine import Engine
from collectors.query.parse import parse
from collectors.query.run import execute
from tests.collectors.query import population
from tests.collectors.query.conftest import TestStore, make_store
from tests.collectors.query.helpers import context, insert

T0 = population.START.timestamp() + 2 * 86400  # 2026-03-27 22:00 UTC
RANGE = ["2026-03-26", "2026-04-01"]


def events() -> list[dict[str, Any]]:
    rng = random.Random(7)
    rows: list[tuple[float, str, str | None, str | None, int]] = [
        # human: unscored first page, then human scores
        (T0, "/h1", "vh", "vh-s", 0), (T0 + 60, "/h2", "vh", "vh-s", 75),
        # looked human at first; its third page gave it away (score 12 ≤ 30)
        (T0, "/b1", "vb", "vb-s", 60), (T0 + 30, "/b2", "vb", "vb-s", 45), (T0 + 40, "/b3", "vb", "vb-s", 12),
        # consent denied: no visitor, no session, judged per event
        (T0 + 5, "/d-bot", None, None, 10), (T0 + 6, "/d1", None, None, 0), (T0 + 7, "/d2", None, None, 70),
        # another site's automated session with the same id must not matter here
        (T0, "/o1", "vh", "vh-s", 5),
    ]  # fmt: skip
    out = []
    for n, (ts, path, visitor, session, score) in enumerate(rows):
        site = population.OTHER if path.startswith("/o") else population.SITE
        consent = "granted" if visitor else "denied"
        out.append(population._event(rng, 1000 + n, ts, path=path, visitor=visitor, session=session,
                                     consent=consent, bot_score=score, site=site))  # fmt: skip
    return out


@pytest.fixture(scope="module")
def store(query_engine: Engine) -> Iterator[TestStore]:
    s = make_store(query_engine)
    insert(query_engine, s.db, events())
    yield s
    query_engine.command(f"DROP DATABASE IF EXISTS {s.db}")


def run(store: TestStore, **body: Any) -> list[tuple[list[str], list[Any]]]:
    settings = population.settings()
    q = parse({"site_id": population.SITE, "date_range": RANGE, **body}, settings)
    got = execute(store.engine, q, context(settings, store.db, q.site))
    return [(r["dimensions"], r["metrics"]) for r in got["results"]]


def test_totals_leave_out_the_automated_session_whole(store: TestStore) -> None:
    # visitors and visits: vh and vh-s only (denied hits have neither); pageviews: /h1 /h2 /d1 /d2
    assert run(store, metrics=["visitors", "visits", "pageviews"]) == [([], [1, 1, 4])]


def test_pages_of_the_automated_session_are_gone_from_breakdowns(store: TestStore) -> None:
    pages = {d[0] for d, _ in run(store, metrics=["pageviews"], dimensions=["event:page"])}
    assert pages == {"/h1", "/h2", "/d1", "/d2"}
    entries = {d[0] for d, _ in run(store, metrics=["visits"], dimensions=["visit:entry_page"])}
    assert entries == {"/h1", "/d1", "/d2"}


def test_filtering_on_bot_shows_everything(store: TestStore) -> None:
    both = run(store, metrics=["pageviews"], filters=[["is", "event:bot", ["true", "false"]]])
    assert both == [([], [8])]
    flagged = {d[0] for d, _ in run(store, metrics=["pageviews"], dimensions=["event:page"],
                                    filters=[["is", "event:bot", ["true"]]])}  # fmt: skip
    assert flagged == {"/b3", "/d-bot"}  # the dimension stays per event
