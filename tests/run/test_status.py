"""`ocd.py status`: the published manifest and data age, or a non-zero exit when there is none."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def ocd(*args: str, data: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OCD_DATA_DIR": str(data), "OCD_WATCHLIST": "JPM",
           "OCD_BACKFILL_DAYS": "10", "OCD_LOG_LEVEL": "WARNING", **extra}  # fmt: skip
    env.pop("OCD_STORAGE", None)
    return subprocess.run([sys.executable, "scripts/ocd.py", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_status_before_and_after_a_cycle(tmp_path: Path):
    empty = ocd("status", "--json", data=tmp_path)
    assert empty.returncode == 1
    assert json.loads(empty.stdout)["status"] == "empty"

    cycle = ocd("cycle", "--as-of", "2026-11-27T18:00:00Z", data=tmp_path)
    assert cycle.returncode == 0, cycle.stderr
    generation = json.loads(cycle.stdout)["export"]["generation"]

    status = ocd("status", "--json", data=tmp_path)
    assert status.returncode == 0
    report = json.loads(status.stdout)
    assert report["generation"] == generation
    assert report["status"] == "ok" and report["tickers"] == 1
    assert report["age_seconds"] >= 0


def test_status_is_not_stopped_by_a_bad_writer_setting(tmp_path: Path):
    cycle = ocd("cycle", "--as-of", "2026-11-27T18:00:00Z", data=tmp_path)
    assert cycle.returncode == 0, cycle.stderr
    bad = {"OCD_ANALYTICS": '{"low_iv_percentile": '}
    assert ocd("cycle", data=tmp_path, **bad).returncode == 78  # the writer refuses to run
    status = ocd("status", "--json", data=tmp_path, **bad)
    assert status.returncode == 0, status.stderr
    assert (
        json.loads(status.stdout)["generation"] == json.loads(cycle.stdout)["export"]["generation"]
    )


def test_status_prints_a_short_summary(tmp_path: Path):
    cycle = ocd("cycle", "--as-of", "2026-11-27T18:00:00Z", data=tmp_path)
    assert cycle.returncode == 0, cycle.stderr
    text = ocd("status", data=tmp_path)
    assert text.returncode == 0
    lines = text.stdout.splitlines()
    assert lines[0].startswith(("OK", "STALE", "DEGRADED")) and len(lines) <= 6
    assert any(line.startswith("export      generation") for line in lines)
    assert any("provider synthetic" in line for line in lines)
