"""collectors.analytics.rows: event v1 → row → event v1 (pure), and through the real store."""

from __future__ import annotations

import datetime as dt
import time
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


# Events the engine flattens itself (loader fast path) and odd ones it cannot read,
# which the loader stores through to_row: both must end as to_row would store them.
FAST = [
    {}, {"referrer": None}, {"referrer": {"medium": "direct"}}, {"utm": None}, {"route": ""}, {"via": None},
    {"visitor": None, "session": None, "consent": "denied"}, {"upstream_ms": None}, {"status": 70000},
    {"bytes_out": -5}, {"bot_score": 150}, {"bot_score": 42}, {"engaged_ms": 2**33}, {"scroll_depth": 101},
    {"scroll_depth": 55, "engaged_ms": 900}, {"vitals": {"lcp": 1200.5, "cls": 0.0}}, {"vitals": None},
    {"unknown_new_field": {"a": [1]}, "ua": {"browser": "Firefox", "engine": "Gecko"}}, {"name": "signup"},
]  # fmt: skip
ODD = [
    {"query": {"tag": ["a", "b"]}}, {"route": 5}, {"status": 200.5}, {"props": {"n": 3}}, {"referrer": "x"},
    {"bot": "yes", "new_visitor": 1}, {"vitals": {"lcp": "fast"}},
]  # fmt: skip


async def stored_as(store: Store, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows, _ = loader.prepare([(str(i), e) for i, e in enumerate(events)], time.time(), 730)
    assert await store.run_writer(loader.insert_new, store, rows) == len(events)
    day = dt.datetime.fromtimestamp(events[0]["ts"], dt.UTC).date().isoformat()
    lo, hi = export.window(day, day)
    got = [orjson.loads(export.jsonl_line(r)) for r in export.read_rows(store.engine, store.events,
                                                                        "shop.example", lo, hi)]  # fmt: skip
    return sorted(got, key=lambda e: e["id"])


def numbered(overrides: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [event(id=f"{i:032x}", **o) for i, o in enumerate(overrides)]


def with_traces(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first event's trace started at the proxy (trace id = event id), the second has none."""
    events[0]["trace_id"] = events[0]["id"]
    events[1]["trace_id"] = ""
    return events


async def test_the_engine_flattens_events_as_to_row_does(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    events = with_traces(numbered(FAST))
    got = await stored_as(store, events)
    assert "field by field" not in caplog.text  # the fast path took them all
    assert got == [from_row(to_row(e)) for e in events]
    stored = store.engine.query(f"SELECT trace_id FROM {store.events} ORDER BY id LIMIT 3")
    assert stored == [("",), ("-",), (events[2]["trace_id"],)]  # rows.store_trace


@pytest.mark.parametrize("odd", ODD)
async def test_a_batch_the_engine_cannot_read_is_stored_through_to_row(
    store: Store, caplog: pytest.LogCaptureFixture, odd: dict[str, Any]
) -> None:
    events = with_traces(numbered([{}, odd, {"path": "/after"}]))
    got = await stored_as(store, events)
    assert "field by field" in caplog.text
    assert got == [from_row(to_row(e)) for e in events]
    stored = store.engine.query(f"SELECT trace_id FROM {store.events} ORDER BY id LIMIT 2")
    assert stored == [("",), ("-",)]
