"""collectors.analytics.keys: bucket covers and latency percentiles (pure)."""

from __future__ import annotations

import pytest

from collectors.analytics.keys import LATENCY_BOUNDS_MS, cover, latency_index, percentile, prefix_for

D = 86400 * 20000  # a day boundary
H = 3600


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (D, D + 120, [("m", D), ("m", D + 60)]),
        (D + 30, D + 61, [("m", D), ("m", D + 60)]),  # rounded out to minutes
        (D, D + H, [("h", D)]),
        (D, D + 86400, [("d", D)]),
        (D - 60, D + H + 60, [("m", D - 60), ("h", D), ("m", D + H)]),
        (D - H, D + 86400 + H, [("h", D - H), ("d", D), ("h", D + 86400)]),
    ],
)
def test_cover(start: int, end: int, expected: list[tuple[str, int]]) -> None:
    assert cover(start, end) == expected


def test_cover_falls_back_to_hours_for_expired_minutes() -> None:
    got = cover(D + 60, D + 2 * H + 120, oldest={"m": D + 2 * H, "h": 0})
    assert got == [("h", D), ("h", D + H), ("m", D + 2 * H), ("m", D + 2 * H + 60)]


def test_prefix() -> None:
    assert prefix_for("footfall:events") == "footfall:a:"
    assert prefix_for("shop:events") == "shop:a:"


@pytest.mark.parametrize("ms", [1.0, 7.3, 42.0, 250.0, 1234.5, 9000.0])
def test_percentile_of_one_value_is_within_bucket_error(ms: float) -> None:
    p = percentile({latency_index(ms): 1}, 0.5)
    assert p is not None
    assert abs(p - ms) / ms < 0.08


def test_percentiles_of_a_distribution() -> None:
    hist: dict[int, int] = {}
    for ms in range(1, 101):  # 1..100 ms uniformly
        i = latency_index(float(ms))
        hist[i] = hist.get(i, 0) + 1
    p50, p95 = percentile(hist, 0.5), percentile(hist, 0.95)
    assert p50 is not None and 46 <= p50 <= 54
    assert p95 is not None and 88 <= p95 <= 102
    assert percentile({}, 0.5) is None
    assert len(LATENCY_BOUNDS_MS) > 60
