"""collectors.analytics.rows: event v1 → row → event v1 (pure), and through the real store."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
import pytest

from collectors.analytics import export, loader
from collectors.analytics.rows import from_row, to_row
from collectors.analytics.store import Store
from tests.collectors.factory import event, full_event

# Inputs and what comes back: the store's normal forms (rows.py docstring).
NORMAL_FORMS = [
    ({"referrer": None}, {"referrer": {"medium": "direct"}}),
    ({"referrer": {"medium": "direct"}}, {"referrer": {"medium": "direct"}}),
    ({"utm": None}, {"utm": {}}),
    ({"route": ""}, {"route": None}),
    ({"visitor": None, "session": None, "consent": "denied"}, {"visitor": None, "session": None, "consent": "denied"}),
    ({"query": {"tag": ["a", "b"]}}, {"query": {"tag": "a,b"}}),
    ({"upstream_ms": None}, {"upstream_ms": None}),
]


def test_every_v1_field_round_trips_through_a_row() -> None:
    e = full_event()
    assert from_row(to_row(e)) == e


@pytest.mark.parametrize(("given", "back"), NORMAL_FORMS)
def test_normal_forms(given: dict[str, Any], back: dict[str, Any]) -> None:
    got = from_row(to_row(event(**given)))
    assert {k: got[k] for k in back} == back


def test_optional_fields_stay_absent() -> None:
    got = from_row(to_row(event()))
    for key in ("vitals", "engaged_ms", "scroll_depth", "name", "props", "bot_score"):
        assert key not in got


async def test_every_v1_field_round_trips_through_the_store(store: Store) -> None:
    """Event → loader insert → export query → event: equal, field by field."""
    events = [full_event(), full_event(id="f" * 32, vitals={"cls": 0.0}, bot=False, bot_name=None,
                                       error=None, props={}, name=None, engaged_ms=None)]  # fmt: skip
    rows, _ = loader.prepare([(str(i), e) for i, e in enumerate(events)], events[0]["ts"] + 1, 730)
    assert await store.run_writer(loader.insert_new, store, rows) == 2
    day = dt.datetime.fromtimestamp(events[0]["ts"], dt.UTC).date().isoformat()
    lo, hi = export.window(day, day)
    out = [orjson.loads(export.jsonl_line(r)) for r in export.read_rows(store.engine, store.events,
                                                                         "shop.example", lo, hi)]  # fmt: skip
    expected = [from_row(to_row(e)) for e in events]
    assert sorted(out, key=lambda e: e["id"]) == sorted(expected, key=lambda e: e["id"])
    assert out[0] == events[0] or out[1] == events[0]  # the full event comes back exactly
