"""`ocd.py cycle` exits non-zero (69) when its export failed, saying what readers still get."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_failed_export_is_exit_69(tmp_path: Path) -> None:
    blocked = tmp_path / "exports"
    blocked.write_text("a file where the export root should be")
    env = {**os.environ, "OCD_DATA_DIR": str(tmp_path), "OCD_WATCHLIST": "JPM",
           "OCD_BACKFILL_DAYS": "5", "OCD_LOG_LEVEL": "WARNING"}  # fmt: skip
    env.pop("OCD_STORAGE", None)
    result = subprocess.run(
        [sys.executable, "scripts/ocd.py", "cycle", "--as-of", "2026-11-24T17:00:00Z"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 69, result.stderr
    summary = json.loads(result.stdout)
    assert summary["collect"]["status"] == "completed" and summary["export"]["ok"] is False
    assert "the export failed" in result.stderr and "Traceback" not in result.stderr
