"""Expiry of sealed intraday history (``OCD_SEALED_INTRADAY_RETENTION_DAYS``): old sessions'
intraday files leave the storage and the manifest, closing chains stay, and a kill after any
step of record → manifest → delete leaves a manifest that names only files that exist."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from lifekit import (
    INTRADAY,
    SESSIONS,
    WATCHLIST,
    Life,
    SimulatedCrash,
    after_close,
    assert_no_orphans,
    crash_at,
    env_for,
    ny,
    storage_for,
    stored_partitions,
)

from chalicelib.config import load_settings
from chalicelib.domain import calendar as cal
from chalicelib.errors import ConfigError, StorageUnavailable
from chalicelib.storage.base import Storage
from chalicelib.storage.local import LocalStorage
from chalicelib.write.sealing import Sealer
from chalicelib.write.store import Store

RUNS = len(INTRADAY) + 1  # snapshots per ticker per session
EXPIRY_STEPS = ("expiry.recorded", "expiry.manifest", "expiry.deleted")


def _session(as_of: datetime) -> date:
    return cal.session_of(as_of.replace(tzinfo=UTC))


def _dates(life: Life, kind: str) -> list[date]:
    manifest = life.manifest()
    return sorted(f.date for f in manifest.files if f.kind == kind) if manifest else []


def test_old_intraday_files_go_once_their_closes_leave_and_closing_chains_stay(
    tmp_path: Path, storage: Storage
) -> None:
    # windows: 1 intraday session, 2 EOD sessions (lifekit), sealed intraday files 3 sessions
    life = Life(tmp_path / "data", storage, sealed_intraday_retention_days="3")
    expired = 0
    for day in SESSIONS[:6]:
        for at in (*(ny(day, t) for t in INTRADAY), after_close(day)):
            expired += life.collect(at)["lifecycle"]["history_files_expired"]
    # current S5: S2–S4's files are inside the window, S0's and S1's are gone
    assert _dates(life, "intraday") == list(SESSIONS[2:6])
    assert expired == 2
    assert _dates(life, "chains") == list(SESSIONS[:6])  # closing chains are never expired
    assert_no_orphans(life, storage)  # the expired files left the storage, not only the manifest
    assert life.rows("SELECT count(*) FROM expired_files") == [(0,)]
    # the hot store keeps its windows as without expiry, and nothing was sealed twice
    per_session = dict(life.rows("SELECT session, count(*) FROM chain_snapshots GROUP BY 1"))
    assert per_session == {
        SESSIONS[5]: len(WATCHLIST) * RUNS,
        SESSIONS[4]: len(WATCHLIST) * RUNS,
        SESSIONS[3]: len(WATCHLIST),
    }
    intraday = life.sealed_snapshots("intraday")
    assert len(intraday) == len(set(intraday))
    # what is neither in the hot store nor in a named file is an expired session's intraday
    gone = life.collected - life.snapshots() - set(intraday)
    assert gone and {_session(a) for _, a in gone} == set(SESSIONS[:2])
    closes = set(life.sealed_snapshots("chains"))
    assert {(t, a) for t, a in life.collected if _session(a) in SESSIONS[:2]} - gone <= closes


def _lived(root: Path, storage: Storage) -> Life:
    """Four whole sessions with expiry off, then expiry at three sessions: the next run (the
    morning of S4) marks S0's intraday file, the one after it deletes it."""
    life = Life(root, storage)
    for day in SESSIONS[:4]:
        life.session(day)
    life.settings = load_settings(env_for(root, sealed_intraday_retention_days="3"))
    return life


MARKS, DELETES = ny(SESSIONS[4], INTRADAY[0]), ny(SESSIONS[4], INTRADAY[1])


@pytest.mark.parametrize("step", EXPIRY_STEPS)
def test_a_kill_after_any_expiry_step_loses_nothing_it_keeps(tmp_path: Path, step: str) -> None:
    # Local disk only: S3's side of a kill (its writes outlive the run) is the lost-database
    # test's, on both backends.
    storage = LocalStorage(tmp_path / "exports")
    restart_at = DELETES + timedelta(minutes=5)
    reference = _lived(tmp_path / "ref", storage_for(storage, tmp_path, "ref"))
    assert reference.collect(MARKS)["lifecycle"]["history_files_expired"] == 0  # marked only
    assert reference.collect(DELETES)["lifecycle"]["history_files_expired"] == 1
    reference.collect(restart_at)

    life = _lived(tmp_path / "data", storage)
    before = set(life.manifest().files)
    life.step = crash_at(step)
    crashed = []
    for at in (MARKS, DELETES, restart_at):  # the runs after the killed one restart it
        try:
            life.collect(at)
        except SimulatedCrash:
            crashed.append(at)
            manifest = life.manifest()
            assert {f.key for f in manifest.files} <= stored_partitions(storage)  # they exist
            assert set(manifest.files) <= before  # and only expiry changed it
            life.step = lambda name: None
    assert len(crashed) == 1 and crashed[0] != restart_at
    assert_no_orphans(life, storage)
    assert life.rows("SELECT count(*) FROM expired_files") == [(0,)]
    assert sorted(f.key for f in life.manifest().files) == sorted(
        f.key for f in reference.manifest().files
    )
    assert _dates(life, "intraday") == list(SESSIONS[1:4])
    assert life.snapshots() == reference.snapshots()


def _watch(life: Life, storage: Storage) -> tuple[list[str], list[tuple[str, set[str]]]]:
    """A step hook recording, at every step, the files the manifest names that are gone (the
    scheduler catches exceptions raised in a step: record, then assert)."""
    seen: list[str] = []
    dangling: list[tuple[str, set[str]]] = []

    def check(name: str) -> None:
        seen.append(name)
        manifest = life.manifest()
        named = {f.key for f in manifest.files} if manifest else set()
        if missing := named - stored_partitions(storage):
            dangling.append((name, missing))

    life.step = check
    return seen, dangling


def test_a_seal_after_an_interrupted_expiry_never_names_a_deleted_file(
    tmp_path: Path, storage: Storage
) -> None:
    life = _lived(tmp_path / "data", storage)
    life.step = crash_at("expiry.recorded")  # records moved; the manifest still names the files
    with pytest.raises(SimulatedCrash):
        life.collect(MARKS)

    seen, dangling = _watch(life, storage)
    life.collect(after_close(SESSIONS[4]))  # seals S4 (its leftover sweep first), ends the expiry
    assert "seal.written" in seen and "expiry.deleted" in seen
    assert not dangling
    assert_no_orphans(life, storage)
    assert _dates(life, "intraday") == list(SESSIONS[1:5])


def _database_files(db: Path) -> list[Path]:
    return [p for p in db.parent.iterdir() if p.name == db.name or p.name == f"{db.name}.wal"]


@pytest.mark.parametrize("lost", ["marking", "deleting"])
def test_a_run_whose_database_is_lost_never_leaves_a_deleted_file_named(
    tmp_path: Path, storage: Storage, lost: str
) -> None:
    """On Lambda the database reaches S3 at a run's end: after a run that dies first (a
    timeout, a lost persist race) the next restores the database from before it, while what
    it did to the storage stays. Lose the run that marks S0's file, or the one that deletes it."""
    life = _lived(tmp_path / "data", storage)
    seen, dangling = _watch(life, storage)
    saved = tmp_path / "saved"
    runs = (MARKS, DELETES, after_close(SESSIONS[4]), after_close(SESSIONS[4]) + timedelta(hours=1))
    for i, at in enumerate(runs):
        keep = i == ("marking", "deleting").index(lost)
        if keep:
            saved.mkdir()
            for path in _database_files(life.db):
                shutil.copy2(path, saved / path.name)
        life.collect(at)
        if keep:  # the bucket's copy wins: the run's database is gone, its storage writes stay
            for path in _database_files(life.db):
                path.unlink()
            for path in saved.iterdir():
                shutil.copy2(path, life.db.parent / path.name)
    assert "expiry.deleted" in seen
    assert not dangling
    assert_no_orphans(life, storage)
    assert _dates(life, "intraday") == list(SESSIONS[1:5])


def test_a_file_whose_snapshots_are_still_hot_is_not_expired(
    tmp_path: Path, storage: Storage
) -> None:
    life = Life(tmp_path / "data", storage)  # expiry off: the Sealer is driven directly
    for day in SESSIONS[:4]:
        life.session(day)
    # current S3: S0's closing chain has left DuckDB; S1's and S2's are in the EOD window
    now = after_close(SESSIONS[3]) + timedelta(minutes=1)
    with Store(life.db) as store:
        sealer = Sealer(store, storage)
        marked = sealer.expire(SESSIONS[3], now)  # S0–S2 are older than the cutoff
        deleted = sealer.expire(None, now + timedelta(minutes=5))
    assert (marked.files, deleted.files) == (0, 1)
    assert _dates(life, "intraday") == list(SESSIONS[1:4])
    assert_no_orphans(life, storage)


def test_a_window_inside_the_closing_chains_one_is_refused_by_name(tmp_path: Path) -> None:
    env = env_for(tmp_path, sealed_intraday_retention_days="2", eod_retention_days="2")
    with pytest.raises(ConfigError, match="OCD_SEALED_INTRADAY_RETENTION_DAYS"):
        load_settings(env)
    assert load_settings({**env, "OCD_SEALED_INTRADAY_RETENTION_DAYS": "0"})


class _NoDeletes(LocalStorage):
    """Local storage whose batch deletes fail (an S3 DeleteObjects error, say)."""

    def _delete_many(self, keys: list[str]) -> int:
        raise StorageUnavailable("DeleteObjects failed: injected")


def test_a_failed_expiry_costs_the_run_nothing_else_and_is_retried(tmp_path: Path) -> None:
    life = _lived(tmp_path / "data", _NoDeletes(tmp_path / "exports"))
    life.collect(MARKS)
    lifecycle = life.collect(DELETES)["lifecycle"]
    assert lifecycle is not None  # the seal and retention of the run are still reported
    assert lifecycle["history_expiry_error"].startswith("StorageUnavailable")
    assert lifecycle["history_files_expired"] == 0
    assert {f.key for f in life.manifest().files} <= stored_partitions(life.storage)
    life.storage = LocalStorage(tmp_path / "exports")  # the storage deletes again
    lifecycle = life.collect(DELETES + timedelta(minutes=5))["lifecycle"]
    assert lifecycle["history_files_expired"] == 1 and lifecycle["history_expiry_error"] is None
    assert_no_orphans(life, life.storage)
