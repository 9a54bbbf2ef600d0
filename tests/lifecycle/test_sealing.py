"""Sealing: settled sessions become Hive-partitioned Parquet, verified, named by a manifest last."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from lifekit import INTRADAY, SESSIONS, WATCHLIST, Life, after_close, ny, stored_partitions

from chalicelib import historyformat as hf
from chalicelib.domain import calendar as cal
from chalicelib.storage.base import Storage
from chalicelib.write.sealing import Sealer, settled_sessions
from chalicelib.write.store import Store

D1, D2, D3 = SESSIONS[:3]


def _naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


def test_a_closed_session_is_sealed_into_hive_partitions(life: Life) -> None:
    life.session(D1)
    hot = life.rows("SELECT ticker, as_of, contracts FROM chain_snapshots WHERE session = ?", [D1])
    manifest = life.manifest()
    assert manifest is not None
    keys = sorted(f.key for f in manifest.files)
    assert [hf.parse_partition_key(k)[:2] for k in keys] == [("chains", D1), ("intraday", D1)]
    assert all(k.startswith(f"history/{kind}/date=2026-11-16/part-") for k, kind in
               zip(keys, ("chains", "intraday"), strict=True))  # fmt: skip

    rows = life.sealed_rows()
    assert list(rows[0]) == [*hf.COLUMN_NAMES, "date", "kind"]  # date: from the path
    chains = [r for r in rows if r["kind"] == "chains"]
    intraday = [r for r in rows if r["kind"] == "intraday"]
    # every snapshot of the session in intraday, the closing one per ticker in chains
    assert {(r["ticker"], _naive(r["as_of"])) for r in intraday} == {(t, a) for t, a, _ in hot}
    assert len(intraday) == sum(n for _, _, n in hot)
    close = _naive(cal.session_close(D1))
    assert {(r["ticker"], _naive(r["as_of"])) for r in chains} == {(t, close) for t in WATCHLIST}
    assert {str(r["date"]) for r in rows} == {"2026-11-16"}


def test_the_files_have_the_documented_schema_and_manifest(life: Life, storage: Storage) -> None:
    life.session(D1)
    manifest = life.manifest()
    assert manifest is not None and manifest.schema_version == hf.SCHEMA_VERSION
    assert manifest.columns == list(hf.COLUMN_NAMES) and manifest.partition_column == "date"
    with Store(life.db, read_only=True) as store:
        for f in manifest.files:
            data = storage.get(f.key).data
            assert hashlib.sha256(data).hexdigest() == f.sha256
            assert len(data) == f.bytes
            local = life.root / "check.parquet"
            local.write_bytes(data)
            assert store.parquet_rows(local) == f.rows
            described = store.rows("DESCRIBE SELECT * FROM read_parquet(?)", [str(local)])
            assert [(r[0], r[1]) for r in described] == [(n, t) for n, t, _ in hf.COLUMNS]
            codecs = store.rows(
                "SELECT DISTINCT compression FROM parquet_metadata(?)", [str(local)]
            )
            assert codecs == [("ZSTD",)]


def test_the_closing_chain_is_the_last_snapshot_when_the_close_was_missed(life: Life) -> None:
    life.session(D1, close=False)  # the writer was down at the close
    assert life.manifest() is None  # not settled: the close may still be collected
    life.collect(ny(D2, INTRADAY[0]))  # the next session has opened: D1 is settled
    chains = life.sealed_rows("chains")
    last = _naive(ny(D1, INTRADAY[-1]))
    assert {(r["ticker"], _naive(r["as_of"])) for r in chains} == {(t, last) for t in WATCHLIST}
    provisional = life.rows("SELECT provisional FROM daily_history WHERE day = ?", [D1])
    assert provisional and all(p for (p,) in provisional)  # a noon price is no close


def test_sessions_settle_at_the_close_or_the_next_open(life: Life) -> None:
    life.session(D1, close=False)
    with Store(life.db) as store:
        assert settled_sessions(store, ny(D1, INTRADAY[-1])) == []
        assert settled_sessions(store, after_close(D1)) == []  # closes not collected yet
        assert settled_sessions(store, ny(D2, cal.SESSION_OPEN)) == [D1]
    life.collect(after_close(D1))
    with Store(life.db) as store:
        assert settled_sessions(store, after_close(D1)) == [D1]


def test_resealing_is_a_no_op(life: Life, storage: Storage) -> None:
    life.session(D1)
    before = {i.key: i.version for i in storage.list("history/")}
    with Store(life.db) as store:
        result = Sealer(store, storage).seal(after_close(D1))
    assert result.files == 0 and not result.manifest_written and result.orphans_removed == 0
    assert {i.key: i.version for i in storage.list("history/")} == before


def test_a_ticker_added_after_the_seal_gets_a_file_of_its_own(life: Life, tmp_path) -> None:
    life.session(D1)
    later = Life(life.root, life.storage, watchlist="SPY,JPM,AAPL")
    later.collect(after_close(D1) + timedelta(hours=1))  # still D1's close
    chains = [f for f in later.manifest().files if f.kind == "chains"]
    assert len(chains) == 2
    sealed = later.sealed_rows("chains")
    assert {r["ticker"] for r in sealed} == {"SPY", "JPM", "AAPL"}
    assert len({(r["ticker"], r["as_of"]) for r in sealed}) == 3  # one snapshot per ticker


def test_intraday_sealing_off_seals_closing_chains_only(tmp_path, storage: Storage) -> None:
    life = Life(tmp_path / "data", storage, seal_intraday="false")
    for day in SESSIONS[:4]:
        life.session(day)
    kinds = {f.kind for f in life.manifest().files}
    assert kinds == {"chains"}
    # intraday snapshots past the window were dropped without a seal; closes are all sealed
    sealed = set(life.sealed_snapshots("chains"))
    assert sealed == {(t, _naive(cal.session_close(d))) for t in WATCHLIST for d in SESSIONS[:4]}
    per_session = dict(life.rows("SELECT session, count(*) FROM chain_snapshots GROUP BY 1"))
    runs = len(INTRADAY) + 1
    # current session and one before: every snapshot; the EOD window (2): the close only
    assert per_session == {SESSIONS[3]: 2 * runs, SESSIONS[2]: 2 * runs, SESSIONS[1]: 2}


@pytest.mark.parametrize("bad", ["0", "-1", "two", "1.5"])
def test_retention_settings_must_be_whole_numbers_of_at_least_one(bad: str, tmp_path) -> None:
    from chalicelib.config import load_settings
    from chalicelib.errors import ConfigError

    for name in ("OCD_INTRADAY_RETENTION_DAYS", "OCD_EOD_RETENTION_DAYS"):
        with pytest.raises(ConfigError, match=name):
            load_settings({"OCD_DATA_DIR": str(tmp_path), name: bad})


def test_a_new_database_on_the_same_storage_deletes_no_sealed_history(
    tmp_path, storage: Storage
) -> None:
    """The leftover sweep looks only at the partitions it is about to write: files another
    database sealed (one started afresh, a replay in a data dir of its own) are not its own
    leftovers."""
    old = Life(tmp_path / "old", storage)
    for day in SESSIONS[:2]:
        old.session(day)
    before = stored_partitions(storage)
    new = Life(tmp_path / "new", storage)
    for day in SESSIONS[2:4]:
        new.session(day)
    after = stored_partitions(storage)
    assert before and before <= after
    assert {hf.parse_partition_key(k)[1] for k in after - before} == set(SESSIONS[2:4])
