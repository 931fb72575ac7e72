"""The ingest benchmark runs end to end (in a child: chDB opens one store path per process)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_stage_is_measured_and_the_ceiling_follows(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "load_tests" / "bench_ingest.py"), "--events", "3000", "--batch", "1000",
         "--rounds", "1", "--out", str(tmp_path)],  # fmt: skip
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    (saved,) = tmp_path.glob("bench_ingest-*.json")
    doc = json.loads(saved.read_text())
    costs = doc["median_cpu_us"]
    assert set(costs) == {"python", "parse", "flatten", "full", "check"}
    assert all(v > 0 for v in costs.values()), costs
    assert costs["full"] > costs["parse"]  # the full insert parses and then writes two tables
    expected = doc["cores"] / (costs["python"] + costs["full"] + costs["check"]) * 1e6
    assert abs(doc["ceiling_events_per_s"] - expected) < 1e-6 * expected
    assert f"{doc['ceiling_events_per_s']:,.0f}" in out.stdout
