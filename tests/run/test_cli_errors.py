"""A command line that fails clearly: exit codes and messages, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def ocd(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("OCD_")}
    full.update({"OCD_LOG_LEVEL": "WARNING", "OCD_BACKFILL_DAYS": "5", "OCD_WATCHLIST": "JPM"})
    full.update(env)
    return subprocess.run([sys.executable, "scripts/ocd.py", *args], cwd=ROOT, env=full,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def _clean(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr and result.stdout == ""


@pytest.mark.parametrize("where", ["file", "under-a-file"])
def test_a_data_dir_that_cannot_be_written_is_exit_78_naming_it(tmp_path: Path, where: str):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    data = blocker if where == "file" else blocker / "data"
    result = ocd("cycle", OCD_DATA_DIR=str(data))
    assert result.returncode == 78
    assert "OCD_DATA_DIR" in result.stderr and str(data) in result.stderr
    _clean(result)


def test_an_unreadable_as_of_is_exit_64_with_the_format(tmp_path: Path):
    result = ocd("cycle", "--as-of", "garbage", OCD_DATA_DIR=str(tmp_path))
    assert result.returncode == 64
    assert "'garbage'" in result.stderr and "ISO 8601" in result.stderr
    _clean(result)
    assert not (tmp_path / "ocd.duckdb").exists()  # nothing ran


@pytest.mark.parametrize("every", ["-5", "0", "nan", "soon"])
def test_every_must_be_a_positive_number(every: str):
    result = ocd("run", "--every", every)
    assert result.returncode == 2 and "--every" in result.stderr


def test_a_non_ascii_ticker_is_rejected(tmp_path: Path):
    result = ocd("cycle", OCD_DATA_DIR=str(tmp_path), OCD_WATCHLIST="SPY,ß")
    assert result.returncode == 78
    assert "OCD_WATCHLIST" in result.stderr and "ß" in result.stderr
    _clean(result)


def test_unknown_variables_are_warned_about(tmp_path: Path):
    result = ocd("status", OCD_DATA_DIR=str(tmp_path), OCD_WATCHLST="SPY")
    assert "unknown variable OCD_WATCHLST (did you mean OCD_WATCHLIST?)" in result.stderr


def test_the_stale_threshold_follows_every() -> None:
    code = (
        "import sys; sys.path[:0] = ['scripts']\n"
        "import ocd, os\n"
        "ocd._every_sets_the_schedule(20)\n"
        "from chalicelib.config import load_read_settings\n"
        "print(load_read_settings().stale_after_seconds)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert result.stdout.strip() == "60", result.stderr
