"""A clock that only moves forward: `ocd.py cycle` refuses a past or future as-of (exit 64),
writes nothing and publishes nothing."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIRST = "2026-11-24T17:00:00Z"  # a Tuesday, mid-session


def ocd(*args: str, data: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "OCD_DATA_DIR": str(data), "OCD_WATCHLIST": "JPM",
            "OCD_BACKFILL_DAYS": "10", "OCD_LOG_LEVEL": "WARNING", **env}  # fmt: skip
    full.pop("OCD_STORAGE", None)
    return subprocess.run([sys.executable, "scripts/ocd.py", *args], cwd=ROOT, env=full,
                          capture_output=True, text=True, timeout=180)  # fmt: skip


def _fingerprint(data: Path) -> dict[str, str]:
    """What a refused run must not change: the database and every published object."""
    out = {}
    for path in sorted(data.rglob("*")):
        if path.is_file() and not path.name.endswith((".lock", ".sync.json")):
            out[str(path.relative_to(data))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture
def cycled(tmp_path: Path) -> Path:
    first = ocd("cycle", "--as-of", FIRST, data=tmp_path)
    assert first.returncode == 0, first.stderr
    return tmp_path


def test_an_as_of_before_the_newest_snapshot_is_refused(cycled: Path) -> None:
    before = _fingerprint(cycled)
    result = ocd("cycle", "--as-of", "2026-11-24T16:00:00Z", data=cycled)
    assert result.returncode == 64
    assert result.stdout == "" and "Traceback" not in result.stderr
    assert "2026-11-24T16:00:00Z" in result.stderr and "2026-11-24T17:00:00Z" in result.stderr
    assert "OCD_DATA_DIR" not in result.stderr  # the replay hint is for the file provider
    assert _fingerprint(cycled) == before


def test_an_as_of_in_the_future_is_refused(cycled: Path) -> None:
    before = _fingerprint(cycled)
    ahead = (datetime.now(UTC) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = ocd("cycle", "--as-of", ahead, data=cycled)
    assert result.returncode == 64
    assert ahead in result.stderr and "ahead of the wall clock" in result.stderr
    assert _fingerprint(cycled) == before


def test_the_same_or_a_later_as_of_is_accepted(cycled: Path) -> None:
    again = ocd("cycle", "--as-of", FIRST, data=cycled)  # markets close; schedules don't
    assert again.returncode == 0, again.stderr
    later = ocd("cycle", "--as-of", "2026-11-24T17:10:00Z", data=cycled)
    assert later.returncode == 0, later.stderr
    assert json.loads(later.stdout)["collect"]["chains_collected"] == 1


def test_a_replay_is_told_to_use_its_own_data_dir(cycled: Path) -> None:
    result = ocd("cycle", "--as-of", "2026-11-20T16:00:00Z", data=cycled, OCD_PROVIDER="file")
    assert result.returncode == 64
    assert "OCD_DATA_DIR" in result.stderr
