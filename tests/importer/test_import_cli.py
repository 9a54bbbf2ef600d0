"""``python scripts/ocd.py import``, run as a subprocess: summary, exit codes, progress bar."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from importkit import DAYS, chains, optionsdx_txt, vendor_csv, write

from chalicelib.config import Settings
from chalicelib.write.store import Store

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from ocdlib.progress import ProgressBar  # noqa: E402


def _ocd(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    child = {k: v for k, v in os.environ.items() if not k.startswith("OCD_")}
    child.update(env)
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "ocd.py"), "import", *args],
        env=child,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_import_prints_a_summary(ocd_env: dict[str, str], settings: Settings, tmp_path: Path):
    vendor = write(tmp_path / "eod.csv", vendor_csv(chains(("SPY", "AAPL"), DAYS[:2])))
    wide = write(tmp_path / "2026-03.txt", optionsdx_txt(chains(("QQQ",), DAYS[2:3])))
    done = _ocd(str(vendor), str(wide), "--ticker", "QQQ", env=ocd_env)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "accepted   100 of 100 rows (5 snapshots;" in out
    assert "rejected   none" in out
    assert "tickers    3: AAPL, QQQ, SPY" in out
    assert "dates      3: 2026-03-02 … 2026-03-04" in out
    assert "units: theta ÷365, vega ÷100" in out
    assert "\x1b[K" not in done.stderr  # no progress bar when stderr is not a terminal
    with Store(settings.database) as store:
        assert store.count("import_quotes") == 100


def test_reimporting_adds_nothing_and_says_so(ocd_env: dict[str, str], tmp_path: Path):
    vendor = write(tmp_path / "eod.csv", vendor_csv(chains(("SPY",), DAYS)))
    first = _ocd(str(vendor), "--json", env=ocd_env)
    second = _ocd(str(vendor), "--json", env=ocd_env)
    assert first.returncode == second.returncode == 0, second.stderr
    one, two = orjson.loads(first.stdout), orjson.loads(second.stdout)
    assert one["accepted"] == 80 and one["snapshots"] == 4 and one["rejected"] == {}
    assert two["accepted"] == 0 and two["snapshots"] == 0
    assert two["skipped_already_imported"] == 80
    assert two["files"][0]["snapshots_already_imported"] == 4


def test_an_unknown_format_fails_clearly_and_stages_nothing(
    ocd_env: dict[str, str], settings: Settings, tmp_path: Path
):
    good = write(tmp_path / "eod.csv", vendor_csv(chains(("SPY",), DAYS[:1])))
    bad = write(tmp_path / "prices.csv", "date,open,close\n2026-03-02,1,2\n")
    done = _ocd(str(good), str(bad), env=ocd_env)
    assert done.returncode == 65
    assert done.stdout == ""
    assert done.stderr.startswith(f"ocd: import: {bad}: unknown format (header: date, open, close)")
    assert "expected one of:" in done.stderr and "OptionsDX" in done.stderr
    assert "Traceback" not in done.stderr
    with Store(settings.database) as store:  # the good file before it was not staged either
        assert store.count("import_quotes") == 0


@pytest.mark.parametrize("kind", ["missing", "corrupt gzip"])
def test_an_unreadable_file_fails_clearly(ocd_env: dict[str, str], tmp_path: Path, kind: str):
    path = tmp_path / "eod.csv.gz"
    if kind == "corrupt gzip":
        path.write_bytes(b"\x1f\x8b\x08\x00not really gzip")
    done = _ocd(str(path), env=ocd_env)
    assert done.returncode == 66
    assert done.stderr.startswith(f"ocd: import: {path}: cannot read")
    assert "Traceback" not in done.stderr


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_bar_draws_only_on_a_terminal():
    quiet = ProgressBar("eod.csv", io.StringIO())
    assert not quiet.enabled
    quiet("read", 0.5, 100)
    quiet.close()
    assert quiet.stream.getvalue() == ""

    clock = iter([0.0, 1.0, 1.05, 2.0]).__next__
    screen = _Terminal()
    bar = ProgressBar("eod.csv", screen, clock=clock, interval=0.1)
    bar("read", 0.0, 0)
    bar("read", 0.25, 250_000)  # one second in: 250,000 rows/s, three seconds to go
    bar("read", 0.3, 300_000)  # 50 ms later: not redrawn
    bar("read", 1.0, 1_000_000)
    bar.close()
    drawn = screen.getvalue().split("\r\x1b[K")
    assert drawn[0] == "" and drawn[-1] == ""  # each draw rewrites the line; close clears it
    assert drawn[2] == ("eod.csv read  [######..................]   25.0%  250,000 rows  "
                        "250,000 rows/s  ETA 3.0s")  # fmt: skip
    assert drawn[3].startswith("eod.csv read  [########################]  100.0%  1,000,000")
    assert len(drawn) == 5
