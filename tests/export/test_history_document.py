"""The history document's compact columns: times as epoch seconds, near-constant columns as runs,
and rows that read back as the store's own, field for field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
import pytest
from exportkit import check_document, manifest_of

from chalicelib import exportformat as fmt
from chalicelib.storage.base import Storage
from chalicelib.write import export_queries as q
from chalicelib.write.exporter import _Runs
from chalicelib.write.store import Store

# The history rows of one ticker as the API answers them, computed by the store's own SQL.
_STORED = f"""
    SELECT {", ".join(q._history_field(f, False) for f in fmt.catalogue.HISTORY_FIELDS)}
    FROM daily_history h
    WHERE h.ticker = ? AND h.day >= ? AND h.day < (SELECT max(day) FROM daily_history
                                                     WHERE ticker = ?)
    ORDER BY h.day
"""


def _give_one_ticker_volumes(store: Store, ticker: str) -> None:
    """Volume and open interest on ten sessions before the last only (as when a year was backfilled
    and collection began ten sessions ago), one session provisional."""
    store.con.execute(
        "UPDATE daily_history SET call_volume = 100 + epoch(day) % 7, put_volume = 50, "
        "call_open_interest = 1000, put_open_interest = 900 + epoch(day) % 11 "
        "WHERE ticker = ? AND day IN (SELECT day FROM daily_history WHERE ticker = ? "
        "ORDER BY day DESC LIMIT 10 OFFSET 2)",
        [ticker, ticker],
    )
    store.con.execute(
        "UPDATE daily_history SET provisional = true, as_of = close_at - INTERVAL 2 HOUR "
        "WHERE ticker = ? AND day = (SELECT day FROM daily_history WHERE ticker = ? "
        "ORDER BY day DESC LIMIT 1 OFFSET 3)",
        [ticker, ticker],
    )


@pytest.mark.parametrize("storage", ["local"], indirect=True)
def test_history_rows_read_back_as_stored_and_constant_columns_are_runs(
    storage: Storage, small_store: Store, make_small_exporter
) -> None:
    ticker = sorted(small_store.rows("SELECT DISTINCT ticker FROM daily_history"))[0][0]
    _give_one_ticker_volumes(small_store, ticker)
    make_small_exporter().export_all()
    manifest = manifest_of(storage)
    names = [f.name for f in fmt.catalogue.HISTORY_FIELDS]
    for name, key in manifest.histories.items():
        doc = check_document(storage.get(key).data, "history")
        stored = small_store.rows(_STORED, [name, doc["since"], name])
        assert doc["count"] == len(stored) > 20, name
        assert fmt.history_rows(doc["columns"]) == [dict(zip(names, r, strict=True))
                                                    for r in stored], name  # fmt: skip
        columns = doc["columns"]
        assert all(isinstance(s, int) for s in columns["close_at"]), name  # epoch seconds
        # distinct every day: arrays; a backfilled year's nulls: a few runs
        for plain in ("close_at", "underlying_price", "atm_iv"):
            assert isinstance(columns[plain], list), (name, plain)
        runs = columns["total_volume"]
        assert isinstance(runs, dict), name
        if name == ticker:
            assert len(runs["runs"]) == 1 + 10 + 1  # nulls, ten distinct days, the last null
            assert runs["values"][0] is None and runs["values"][-1] is None
            assert isinstance(columns["total_open_interest"], dict)
            as_of = columns["as_of"]
            assert as_of["values"] == [None, as_of["values"][1], None]
            assert [n for _, n in as_of["runs"]] == [doc["count"] - 3, 1, 2]
        else:
            assert runs == {"values": [None], "runs": [[0, doc["count"]]]}
            assert columns["provisional"] == {"values": [False], "runs": [[0, doc["count"]]]}
    assert len(manifest.histories) >= 2


def test_runs_treat_nan_and_none_as_equal_and_start_at_each_ticker() -> None:
    nan = float("nan")
    cols = {
        "f": np.array([nan, nan, 1.0, 1.0, 1.0, 2.0, nan, nan]),
        "o": np.array([None, None, 3, 3, None, None, None, 4], dtype=object),
        "b": np.array([False] * 8),
    }
    cuts = np.array([0, 5, 5, 8])  # tickers of 5, 0 and 3 rows
    runs = _Runs.of(cols, cuts)
    counts = {name: np.diff(firsts).tolist() for name, firsts in runs.firsts.items()}
    assert counts["f"] == [2, 0, 2] and counts["b"] == [1, 0, 1]
    assert counts["o"] == [3, 0, 2]
    doc = {name: runs.column(name, cols[name], 0, 0, 5) for name in cols}  # the first ticker
    assert orjson.loads(orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)) == {
        "f": [None, None, 1.0, 1.0, 1.0],  # 2 runs of 5 rows: not few enough, an array
        "o": [None, None, 3, 3, None],
        "b": {"values": [False], "runs": [[0, 5]]},
    }
    assert len(runs.column("b", cols["b"], 1, 5, 5)) == 0
    last = runs.column("f", cols["f"], 2, 5, 8)
    assert orjson.loads(orjson.dumps(last, option=orjson.OPT_SERIALIZE_NUMPY)) == [2.0, None, None]


def test_epoch_seconds_read_back_as_iso_times() -> None:
    close = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
    seconds = int(close.timestamp())
    columns = {name: {"values": [None], "runs": [[0, 2]]} for name in fmt.HISTORY_COLUMNS}
    columns["close_at"] = [seconds - 86400, seconds]
    columns["as_of"] = [None, int((close - timedelta(minutes=5)).timestamp())]
    rows = fmt.history_rows(columns)
    assert [r["close_at"] for r in rows] == ["2026-11-26T18:00:00Z", "2026-11-27T18:00:00Z"]
    assert [r["as_of"] for r in rows] == ["2026-11-26T18:00:00Z", "2026-11-27T17:55:00Z"]
