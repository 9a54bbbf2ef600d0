"""A short soak: five sessions through the scheduled handlers with small windows; once the
windows are full, the database file's size stays on a plateau."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from ocdlib import soak

WINDOWS = {
    "OCD_INTRADAY_RETENTION_DAYS": "1",
    "OCD_EOD_RETENTION_DAYS": "1",
    "OCD_BACKFILL_DAYS": "20",
    "OCD_COMPACT_FREE_FRACTION": "0.1",  # the file then stays within 11 % of what it holds
    "OCD_COMPACT_MIN_FREE_MB": "0",
}


def test_five_sessions_reach_a_plateau_by_size(tmp_path: Path) -> None:
    figures = soak.run(5, 90, ("SPY", "JPM"), data_dir=tmp_path, extra_env=WINDOWS,
                       last_session=date(2026, 11, 30))  # fmt: skip
    assert [f.runs for f in figures] == [6, 6, 6, 4, 6]  # the fourth is an early close
    # the windows hold one session of intraday snapshots besides the current one
    assert figures[0].hot_snapshots < figures[1].hot_snapshots
    assert all(f.sealed_files == 2 * (i + 1) for i, f in enumerate(figures))  # two per session
    assert sum(f.compactions for f in figures) >= 1
    plateau = soak.plateau(figures, 3)
    # once the windows are full (session 3) the file, and what it holds, stay within ±20 %
    assert plateau["db_bytes_max_deviation"] <= 0.2, [f.db_bytes for f in figures]
    assert plateau["db_used_bytes_max_deviation"] <= 0.2, [f.db_used_bytes for f in figures]
    # rows: current session + one intraday session + one closing chain per ticker at most
    assert max(f.hot_rows for f in figures[2:]) <= 1.1 * max(f.hot_rows for f in figures[:2])
