"""The DuckDB store: migrations once, idempotent flushes, NULLs kept NULL, right summaries."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from chalicelib.domain.chain import OPTIONAL_FLOATS, ChainBatch
from chalicelib.write.providers.base import DailyHistory
from chalicelib.write.providers.synthetic import SyntheticMarket
from chalicelib.write.store import MIGRATIONS, Store

AS_OF = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
AS_OF_NAIVE = AS_OF.replace(tzinfo=None)
DUPLICATES = """
    SELECT count(*) FROM (
        SELECT ticker, as_of, expiration, strike, "right", count(*) AS n
        FROM option_quotes GROUP BY ALL HAVING n > 1
    )
"""


@pytest.fixture
def spy_batch(make_row: Callable[..., dict[str, Any]], make_batch: Callable) -> ChainBatch:
    dec, jan = np.datetime64("2026-12-18", "s"), np.datetime64("2027-01-15", "s")
    return make_batch(
        [
            make_row(expiration=jan, strike=560.0, right="C", volume=20, open_interest=200.0),
            make_row(expiration=dec, strike=550.0, right="C", volume=10, open_interest=100.0),
            make_row(expiration=dec, strike=550.0, right="P", volume=5, open_interest=50.0),
            make_row(expiration=dec, strike=540.0, right="P", volume=7, open_interest=np.nan),
        ]
    )


def _one(store: Store, sql: str, params: tuple[Any, ...] = ()) -> Any:
    rows = store.rows(sql, params)
    assert len(rows) == 1
    return rows[0]


def test_migrations_are_applied_once(tmp_path: Path):
    path = tmp_path / "ocd.duckdb"
    with Store(path) as store:
        assert store.schema_version == len(MIGRATIONS)
        first = store.rows("SELECT version, applied_at FROM schema_version ORDER BY version")
        tables = {r[0] for r in store.rows("SELECT table_name FROM duckdb_tables()")}
    assert [v for v, _ in first] == list(range(1, len(MIGRATIONS) + 1))
    assert {"option_quotes", "chain_snapshots", "daily_history", "scans"} <= tables
    with Store(path) as store:  # reopening applies nothing again
        again = store.rows("SELECT version, applied_at FROM schema_version ORDER BY version")
        assert again == first
        assert store.count("option_quotes") == 0


def test_reopening_keeps_the_data(tmp_path: Path, spy_batch: ChainBatch, make_underlying):
    path = tmp_path / "ocd.duckdb"
    with Store(path) as store:
        store.flush_chains(spy_batch, [make_underlying()])
    with Store(path) as store:
        assert store.count("option_quotes") == len(spy_batch)
    with Store(path, read_only=True) as reader:
        assert reader.count("chain_snapshots") == 1


def test_reflushing_a_snapshot_adds_nothing(
    store: Store, spy_batch: ChainBatch, make_underlying: Callable
):
    first = store.flush_chains(spy_batch, [make_underlying()])
    assert (first.rows, first.rows_skipped, first.snapshots) == (4, 0, 1)
    again = store.flush_chains(spy_batch, [make_underlying()])
    assert (again.rows, again.rows_skipped, again.snapshots) == (0, 4, 0)
    assert store.count("option_quotes") == 4
    assert store.count("chain_snapshots") == 1
    assert _one(store, DUPLICATES) == (0,)


def test_reflushing_a_synthetic_market_cycle_adds_nothing(store: Store, market: SyntheticMarket):
    results = [market.fetch_chain(t, AS_OF) for t in ("SPY", "JPM")]
    batch = ChainBatch.concat(r.contracts for r in results)
    underlyings = [r.underlying for r in results]
    assert store.flush_chains(batch, underlyings).rows == len(batch)
    # a later snapshot of one ticker goes in beside a repeated one of the other
    later = market.fetch_chain("JPM", datetime(2026, 11, 30, 21, 0, tzinfo=UTC))
    mixed = store.flush_chains(
        ChainBatch.concat([results[0].contracts, later.contracts]),
        [results[0].underlying, later.underlying],
    )
    assert mixed.rows == len(later.contracts)
    assert mixed.rows_skipped == len(results[0].contracts)
    assert store.count("option_quotes") == len(batch) + len(later.contracts)
    assert store.count("chain_snapshots") == 3
    assert _one(store, DUPLICATES) == (0,)


def test_missing_optional_fields_are_stored_as_null(
    store: Store, make_row: Callable, make_batch: Callable, make_underlying: Callable
):
    batch = make_batch(
        [make_row(**{name: np.nan for name in OPTIONAL_FLOATS}), make_row(strike=555.0)]
    )
    store.flush_chains(batch, [make_underlying()])
    columns = ", ".join(f"count({name})" for name in OPTIONAL_FLOATS)
    counts = _one(store, f"SELECT {columns} FROM option_quotes")
    assert counts == (1,) * len(OPTIONAL_FLOATS)  # count() skips NULLs: NaN became NULL
    assert _one(store, "SELECT count(*) FROM option_quotes WHERE isnan(implied_volatility)") == (0,)


def test_missing_open_interest_stays_null_not_zero(
    store: Store, make_row: Callable, make_batch: Callable, make_underlying: Callable
):
    batch = make_batch(
        [
            make_row(right="C", open_interest=np.nan),
            make_row(right="P", open_interest=np.nan),
            make_row(right="P", strike=540.0, open_interest=0.0),
        ]
    )
    store.flush_chains(batch, [make_underlying()])
    rows = store.rows('SELECT "right", strike, open_interest FROM option_quotes ORDER BY ALL')
    assert rows == [("C", 550.0, None), ("P", 540.0, 0), ("P", 550.0, None)]
    summary = _one(store, "SELECT call_open_interest, put_open_interest FROM chain_snapshots")
    assert summary == (None, 0)


def test_snapshot_summary_of_a_hand_built_batch(
    store: Store, spy_batch: ChainBatch, make_underlying: Callable
):
    store.flush_chains(
        spy_batch, [make_underlying(price=552.5, dividend_yield=0.013, volume=1_000_000)]
    )
    row = _one(
        store,
        """
        SELECT ticker, as_of, contracts, underlying_price, dividend_yield, underlying_volume,
               expirations, call_volume, put_volume, call_open_interest, put_open_interest
        FROM chain_snapshots
        """,
    )
    assert row == (
        "SPY",
        AS_OF_NAIVE,
        4,
        552.5,
        0.013,
        1_000_000,
        [date(2026, 12, 18), date(2027, 1, 15)],
        30,
        12,
        300,
        50,  # the put without open interest adds nothing, and does not make the sum NULL
    )


def test_a_snapshot_whose_rows_were_all_rejected_is_still_recorded(
    store: Store, make_underlying: Callable
):
    result = store.flush_chains(ChainBatch.empty(), [make_underlying("QQQ", 500.0)])
    assert (result.rows, result.snapshots) == (0, 1)
    assert _one(store, "SELECT ticker, contracts, expirations FROM chain_snapshots") == (
        "QQQ",
        0,
        [],
    )


def test_flushing_nothing_is_harmless(store: Store):
    result = store.flush_chains(ChainBatch.empty(), [])
    assert (result.rows, result.rows_skipped, result.snapshots) == (0, 0, 0)
    assert store.count("chain_snapshots") == 0


def test_history_upserts_replace_by_day(store: Store):
    days = [date(2026, 11, 23), date(2026, 11, 24), date(2026, 11, 25)]
    first = DailyHistory(
        "SPY", days, np.array([1.0, 2.0, 3.0]), np.array([0.2, np.nan, 0.22]), np.full(3, -0.03)
    )
    assert store.upsert_history([first], source="backfill") == 3
    overlap = DailyHistory(
        "SPY", days[1:], np.array([2.5, 3.5]), np.array([0.21, 0.23]), np.full(2, -0.02)
    )
    store.upsert_history([overlap], source="collect")
    rows = store.rows("SELECT day, close, atm_iv, source FROM daily_history ORDER BY day")
    assert rows == [
        (days[0], 1.0, 0.2, "backfill"),
        (days[1], 2.5, 0.21, "collect"),
        (days[2], 3.5, 0.23, "collect"),
    ]
    assert store.history_days(["SPY", "QQQ"]) == {"SPY": 3}
    assert store.upsert_history([], source="x") == 0


def test_missing_history_values_are_null(store: Store):
    history = DailyHistory(
        "JPM", [date(2026, 11, 25)], np.array([240.0]), np.array([np.nan]), np.array([np.nan])
    )
    store.upsert_history([history], source="backfill")
    assert _one(store, "SELECT close, atm_iv, skew_25d FROM daily_history") == (240.0, None, None)


def test_scans_are_recorded_and_replaced_by_id(store: Store):
    scan = {"scan_id": "s1", "started_at": AS_OF, "status": "running", "errors": []}
    store.record_scan(scan)
    store.record_scan({**scan, "status": "partial", "finished_at": AS_OF, "errors": ["JPM: x"]})
    assert store.rows("SELECT scan_id, status, errors FROM scans") == [
        ("s1", "partial", ["JPM: x"])
    ]


def test_count_refuses_a_suspicious_table_name(store: Store):
    with pytest.raises(ValueError):
        store.count("scans; DROP TABLE scans")


def test_missing_underlying_volume_stays_null(store: Store, make_underlying: Callable):
    store.flush_chains(
        ChainBatch.empty(), [make_underlying("SPY"), make_underlying("QQQ", 500.0, volume=0)]
    )
    rows = store.rows("SELECT ticker, underlying_volume FROM chain_snapshots ORDER BY ticker")
    assert rows == [("QQQ", 0), ("SPY", None)]
