"""The scheduled collect handler, as Lambda runs it (chalice.test.Client) and as the command line
runs it (``python scripts/ocd.py cycle`` in a subprocess)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
from chalice.test import Client

from app import app
from chalicelib.config import Settings, load_settings
from chalicelib.write.scheduler import Phase, Scheduler
from chalicelib.write.store import Store

REPO_ROOT = Path(__file__).resolve().parents[2]
AS_OF = "2026-11-27T18:00:00Z"
AS_OF_DT = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
DUPLICATES = """
    SELECT count(*) FROM (
        SELECT ticker, as_of, expiration, strike, "right", count(*) AS n
        FROM option_quotes GROUP BY ALL HAVING n > 1
    )
"""


def _invoke_collect(as_of: str = AS_OF) -> dict[str, Any]:
    with Client(app, project_dir=str(REPO_ROOT)) as client:
        event = client.events.generate_cw_event(
            source="aws.events",
            detail_type="Scheduled Event",
            detail={"as_of": as_of},
            resources=[],
        )
        return client.lambda_.invoke("collect", event).payload


def _query(db: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_collect_handler_stores_every_watchlist_chain(ocd_env: dict[str, str]):
    summary = _invoke_collect()
    assert json.loads(json.dumps(summary)) == summary  # a JSON document, as Lambda returns it
    assert summary["status"] == "completed"
    assert summary["errors"] == []
    assert summary["chains_collected"] == summary["tickers"] == 3
    assert summary["rows_flushed"] > 0
    assert summary["rows_flushed"] == summary["rows_collected"]
    assert summary["as_of"] == "2026-11-27T18:00:00+00:00"
    assert summary["history_backfilled"] == 3
    db = Path(ocd_env["OCD_DATA_DIR"]) / "ocd.duckdb"
    per_ticker = dict(_query(db, "SELECT ticker, count(*) FROM option_quotes GROUP BY ticker"))
    assert set(per_ticker) == {"SPY", "AAPL", "JPM"}
    assert all(n > 100 for n in per_ticker.values())
    assert sum(per_ticker.values()) == summary["rows_flushed"]
    snapshots = _query(db, "SELECT ticker, as_of FROM chain_snapshots ORDER BY ticker")
    expected_as_of = AS_OF_DT.replace(tzinfo=None)
    assert snapshots == [(t, expected_as_of) for t in ("AAPL", "JPM", "SPY")]
    assert _query(db, "SELECT status, chains_collected FROM scans") == [("completed", 3)]


def test_collect_handler_twice_with_the_same_as_of_adds_no_rows(ocd_env: dict[str, str]):
    first = _invoke_collect()
    second = _invoke_collect()
    assert second["status"] == "completed"
    assert second["rows_flushed"] == 0
    # the snapshot at that as_of is stored: nothing is regenerated, nothing re-flushed
    assert second["chains_unchanged"] == first["chains_collected"] == 3
    assert second["chains_collected"] == 0
    assert second["history_backfilled"] == 0  # history is there from the first run
    db = Path(ocd_env["OCD_DATA_DIR"]) / "ocd.duckdb"
    assert _query(db, "SELECT count(*) FROM option_quotes") == [(first["rows_flushed"],)]
    assert _query(db, DUPLICATES) == [(0,)]
    assert _query(db, "SELECT count(*) FROM scans") == [(2,)]


def test_a_night_or_weekend_as_of_is_the_previous_close(ocd_env: dict[str, str]):
    friday = _invoke_collect("2026-11-27T18:00:00Z")
    saturday = _invoke_collect("2026-11-28T15:00:00Z")
    assert saturday["as_of"] == friday["as_of"]
    assert saturday["rows_flushed"] == 0


def test_a_failing_ticker_makes_the_scan_partial(
    settings: Settings, store: Store, failing_provider: Callable
):
    summary = Scheduler(settings, store, provider=failing_provider({"JPM"})).collect(AS_OF_DT)
    assert summary["status"] == "partial"
    assert summary["chains_collected"] == 2
    assert len(summary["errors"]) == 1 and summary["errors"][0].startswith("JPM: ProviderError")
    status, errors = store.rows("SELECT status, errors FROM scans")[0]
    assert status == "partial"
    assert errors == summary["errors"]
    assert "upstream returned 503 for JPM" in errors[0]
    stored = {t for (t,) in store.rows("SELECT DISTINCT ticker FROM option_quotes")}
    assert stored == {"SPY", "AAPL"}


def test_every_ticker_failing_makes_the_scan_failed(
    settings: Settings, store: Store, failing_provider: Callable
):
    provider = failing_provider(set(settings.watchlist))
    scheduler = Scheduler(settings, store, provider=provider)
    summary = scheduler.collect(AS_OF_DT)
    assert summary["status"] == "failed"
    assert summary["rows_flushed"] == 0
    assert len(summary["errors"]) == 3
    assert store.rows("SELECT status FROM scans") == [("failed",)]
    assert scheduler.phase == Phase.IDLE


def test_the_buffer_flushes_at_the_row_threshold(tmp_path: Path):
    settings = load_settings(
        {
            "OCD_DATA_DIR": str(tmp_path),
            "OCD_WATCHLIST": "SPY,AAPL,JPM",
            "OCD_BACKFILL_DAYS": "0",
            "OCD_FLUSH_ROWS": "1000",
        }
    )
    with Store(settings.database) as store:
        summary = Scheduler(settings, store).collect(AS_OF_DT)
        assert summary["flushes"] == 3  # each chain fills the buffer past 1000 rows
        assert summary["rows_flushed"] == summary["rows_collected"] == store.count("option_quotes")
        assert summary["history_backfilled"] == 0
        assert store.count("daily_history", "WHERE source = 'backfill'") == 0


def test_backfill_gives_new_tickers_history_ending_before_the_session(
    settings: Settings, store: Store
):
    Scheduler(settings, store).collect(AS_OF_DT)
    days = dict(
        store.rows(
            "SELECT ticker, max(day) FROM daily_history WHERE source = 'backfill' GROUP BY ticker"
        )
    )
    assert set(days) == {"SPY", "AAPL", "JPM"}
    assert set(days.values()) == {datetime(2026, 11, 25).date()}  # Thanksgiving is closed
    backfilled = store.count("daily_history", "WHERE ticker = 'SPY' AND source = 'backfill'")
    assert backfilled == settings.backfill_days


def _cycle(python: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, str(REPO_ROOT / "scripts" / "ocd.py"), "cycle", *args],
        env=env,
        cwd=REPO_ROOT.parent,  # not the project root: paths must not depend on the CWD
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_ocd_cycle_end_to_end_twice(python: str, subprocess_env: dict[str, str]):
    first = _cycle(python, subprocess_env, "--as-of", AS_OF)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["collect"]["status"] == "completed"
    assert summary["collect"]["chains_collected"] == 3
    assert summary["collect"]["rows_flushed"] > 0
    assert "export" in summary
    db = Path(subprocess_env["OCD_DATA_DIR"]) / "ocd.duckdb"
    rows = _query(db, "SELECT count(*) FROM option_quotes")
    assert rows == [(summary["collect"]["rows_flushed"],)]

    second = _cycle(python, subprocess_env, "--as-of", AS_OF)
    assert second.returncode == 0, second.stderr
    again = json.loads(second.stdout)
    assert again["collect"]["status"] == "completed"
    assert again["collect"]["rows_flushed"] == 0
    assert _query(db, "SELECT count(*) FROM option_quotes") == rows
    assert _query(db, DUPLICATES) == [(0,)]
    assert "Traceback" not in first.stderr + second.stderr


def test_ocd_cycle_exits_78_naming_a_bad_variable(python: str, subprocess_env: dict[str, str]):
    name = "OCD_EXPORT_INTERVAL_SECONDS"
    result = _cycle(python, {**subprocess_env, name: "abc"}, "--as-of", AS_OF)
    assert result.returncode == 78
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ocd: configuration error")
    assert name in lines[0]
    assert not (Path(subprocess_env["OCD_DATA_DIR"]) / "ocd.duckdb").exists()
