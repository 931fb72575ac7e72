"""`footfall import` and `footfall export` as a user runs them: real processes, real Redis,
the real embedded store held by a running `footfall run`."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest
import redis.asyncio as aioredis

from collectors.analytics.rows import from_row, to_row
from collectors.analytics.schema import EVENT_COLUMN_NAMES
from proxy.stream.embedded import EmbeddedRedis, free_port
from tests.collectors.conftest import drained
from tests.collectors.factory import event, full_event
from tests.proxy.processes import stop, wait_ready

SITE = "shop.example"
BAD = {3: "not valid JSON", 5: "not an event v1", 7: "missing or invalid id, ts or site",
       9: "older than the store's retention"}  # fmt: skip


def footfall(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "proxy.cli", *args], capture_output=True, timeout=50, input=stdin)


def events(n: int) -> list[dict[str, Any]]:
    """Every v1 field on some, the minimal event on others; recent, distinct ids."""
    base = dt.datetime.now(dt.UTC).timestamp() - 600
    out = []
    for i in range(n):
        make = full_event if i % 2 else event
        out.append(make(id=f"{i:032x}", ts=round(base + i * 0.5, 3), visitor=f"v{i % 7}"))
    return out


def import_file(tmp_path: Path, evs: list[dict[str, Any]]) -> Path:
    lines = [orjson.dumps(e) for e in evs]
    for number in sorted(BAD):  # bad lines at these line numbers (1-based)
        bad = {3: b"{not json", 5: b'{"v": 2, "id": "x"}', 7: b'{"v": 1, "id": "x", "site": "s"}',
               9: orjson.dumps(event(ts=1_000_000_000.0))}[number]  # fmt: skip
        lines.insert(number - 1, bad)
    lines.insert(11, b"")  # blank lines are skipped silently
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def window() -> tuple[str, str]:
    today = dt.datetime.now(dt.UTC).date()
    return str(today - dt.timedelta(days=1)), str(today)


def expected(evs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [from_row(to_row(e)) for e in sorted(evs, key=lambda e: (e["ts"], e["id"]))]


@pytest.fixture
async def running(tmp_path: Path, redis_server: EmbeddedRedis) -> Any:
    """`footfall run` holding the embedded store in tmp_path/data; yields (admin port, common args)."""
    admin = free_port()
    common = ["--redis-url", redis_server.url, "--data-dir", str(tmp_path / "data")]
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxy.cli", "run", "--upstream", "http://127.0.0.1:9", "--listen",
         f"127.0.0.1:{free_port()}", "--admin-listen", f"127.0.0.1:{admin}", *common],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await wait_ready(admin, proc, timeout=40)
        yield admin, common, proc
    finally:
        if proc.poll() is None:
            await stop(proc)


@pytest.mark.timeout(150)  # five CLI processes and a `footfall run` on a shared 2-core box
async def test_import_twice_then_export_every_format_while_run_holds_the_store(
    running: Any, tmp_path: Path, redis_client: aioredis.Redis
) -> None:
    admin, common, proc = running
    evs = events(120)
    path = import_file(tmp_path, evs)
    for _ in range(2):  # the second import changes nothing
        result = await asyncio.to_thread(footfall, "import", str(path), *common)
        err = result.stderr.decode()
        assert result.returncode == 1, err  # bad lines make the exit status non-zero ...
        assert "120 events published to footfall:events, 4 bad lines skipped" in err  # ... the good still go in
        for number, reason in BAD.items():
            assert f"{path}:{number}: {reason}" in err
        await drained(redis_client, ("analytics",), timeout=30)

    start, end = window()
    url = ["--admin-url", f"http://127.0.0.1:{admin}"]
    out = {}
    for fmt in ("jsonl", "csv", "parquet"):
        target = tmp_path / f"out.{fmt}"
        result = await asyncio.to_thread(footfall, "export", "--site", SITE, "--from", start, "--to", end,
                                         "--format", fmt, "-o", str(target), *url, *common)  # fmt: skip
        assert result.returncode == 0, result.stderr.decode()
        assert f"footfall export: 120 events of {SITE}" in result.stderr.decode()
        out[fmt] = target.read_bytes()

    want = expected(evs)
    assert [orjson.loads(line) for line in out["jsonl"].splitlines()] == want
    table = [to_row(e) for e in want]
    got_csv = list(csv.DictReader(io.StringIO(out["csv"].decode())))
    assert list(got_csv[0]) == list(EVENT_COLUMN_NAMES)
    for got, row in zip(got_csv, table, strict=True):
        assert dt.datetime.fromisoformat(got.pop("ts")).timestamp() == row["ts"]
        assert orjson.loads(got.pop("query")) == row["query"] and orjson.loads(got.pop("props")) == row["props"]
        assert got == {k: csv_text(row[k]) for k in got}
    got_parquet = pq.read_table(io.BytesIO(out["parquet"])).to_pylist()
    for got, row in zip(got_parquet, table, strict=True):
        assert got.pop("ts").timestamp() == row["ts"]
        assert dict(got.pop("query")) == row["query"] and dict(got.pop("props")) == row["props"]
        assert got == {k: row[k] for k in got}

    # the store is held: without its admin API, export says so instead of waiting or crashing
    closed = ["--admin-url", f"http://127.0.0.1:{free_port()}"]
    result = await asyncio.to_thread(footfall, "export", "--site", SITE, "--from", start, "--to", end,
                                     *closed, *common)  # fmt: skip
    assert result.returncode == 3
    assert "held by another process" in result.stderr.decode()
    # ... and so does a second loader on the same data dir, without a traceback
    result = await asyncio.to_thread(footfall, "collect", "analytics", "--admin-listen", f"127.0.0.1:{free_port()}",
                                     *common)  # fmt: skip
    assert result.returncode == 3
    assert "held by another process; stop that process or use another --data-dir" in result.stderr.decode()
    assert "Traceback" not in result.stderr.decode()

    # once `run` is gone, export opens the store itself
    assert await stop(proc) == 0
    result = await asyncio.to_thread(footfall, "export", "--site", SITE, "--from", start, "--to", end,
                                     *closed, *common)  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    assert [orjson.loads(line) for line in result.stdout.splitlines()] == want


def csv_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value)


def test_import_from_stdin_reports_bad_lines(redis_server: EmbeddedRedis, tmp_path: Path) -> None:
    good = orjson.dumps(events(1)[0])
    result = footfall("import", "-", "--redis-url", redis_server.url, "--data-dir", str(tmp_path),
                      stdin=good + b"\n[1, 2]\n")  # fmt: skip
    err = result.stderr.decode()
    assert result.returncode == 1
    assert "-:2: not an event v1" in err
    assert "1 events published to footfall:events, 1 bad lines skipped" in err


def test_export_rejects_a_bad_date(tmp_path: Path) -> None:
    result = footfall("export", "--site", SITE, "--from", "yesterday", "--to", "2026-01-01", "--data-dir",
                      str(tmp_path))  # fmt: skip
    assert result.returncode == 1
    assert "from: not a date (YYYY-MM-DD) or ISO 8601 time: 'yesterday'" in result.stderr.decode()
