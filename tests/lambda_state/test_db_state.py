"""The writer's database in S3: conditional persistence decides which of two writers wins."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import boto3
import duckdb
import pytest
from moto import mock_aws

from chalicelib.config import Settings, load_settings
from chalicelib.storage.factory import make_state_storage
from chalicelib.write import schedules
from chalicelib.write.dbstate import DatabaseState, WriterConflict
from chalicelib.write.scheduler import run_collect

BUCKET = "ocd-state-test"
T1 = datetime(2026, 11, 24, 21, 0, tzinfo=UTC)
T2 = datetime(2026, 11, 25, 21, 0, tzinfo=UTC)
T3 = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)


@pytest.fixture
def bucket(monkeypatch: pytest.MonkeyPatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield BUCKET


def env(root: Path) -> dict[str, str]:
    return {"OCD_DATA_DIR": str(root), "OCD_STORAGE": "s3", "OCD_BUCKET": BUCKET,
            "OCD_WATCHLIST": "SPY,JPM", "OCD_BACKFILL_DAYS": "10"}  # fmt: skip


def writer(root: Path) -> tuple[Settings, DatabaseState]:
    settings = load_settings(env(root))
    return settings, DatabaseState(make_state_storage(settings), settings.database)


def snapshots_in_bucket(tmp_path: Path) -> set[datetime]:
    local = tmp_path / "check.duckdb"
    boto3.client("s3").download_file(BUCKET, "state/ocd.duckdb", str(local))
    con = duckdb.connect(str(local), read_only=True)
    try:
        rows = con.execute("SELECT DISTINCT as_of FROM chain_snapshots").fetchall()
    finally:
        con.close()
    return {row[0].replace(tzinfo=UTC) for row in rows}


def test_two_writers_restoring_the_same_version_only_one_persists(bucket, tmp_path):
    a_settings, a = writer(tmp_path / "a")
    b_settings, b = writer(tmp_path / "b")
    assert a.restore() is None
    run_collect(a_settings, T1)
    a.persist()

    version = a.restore()
    assert b.restore() == version is not None
    run_collect(a_settings, T2)
    run_collect(b_settings, T3)
    a.persist()
    with pytest.raises(WriterConflict):
        b.persist()

    assert snapshots_in_bucket(tmp_path) == {T1, T2}


def test_first_persist_is_create_only(bucket, tmp_path):
    a_settings, a = writer(tmp_path / "a")
    b_settings, b = writer(tmp_path / "b")
    assert a.restore() is None and b.restore() is None
    run_collect(a_settings, T1)
    run_collect(b_settings, T2)
    b.persist()
    with pytest.raises(WriterConflict):
        a.persist()
    assert snapshots_in_bucket(tmp_path) == {T2}


def test_restore_discards_local_changes_that_lost(bucket, tmp_path):
    a_settings, a = writer(tmp_path / "a")
    b_settings, b = writer(tmp_path / "b")
    a.restore()
    run_collect(a_settings, T1)
    a.persist()
    b.restore()
    a.restore()
    run_collect(a_settings, T2)
    a.persist()
    run_collect(b_settings, T3)
    with pytest.raises(WriterConflict):
        b.persist()
    b.restore()  # the loser starts again from the winner's file
    con = duckdb.connect(str(b_settings.database), read_only=True)
    try:
        seen = {r[0].replace(tzinfo=UTC) for r in con.execute(
            "SELECT DISTINCT as_of FROM chain_snapshots").fetchall()}  # fmt: skip
    finally:
        con.close()
    assert seen == {T1, T2}


def test_collect_handler_aborts_and_publishes_nothing_on_conflict(
    bucket, tmp_path, monkeypatch: pytest.MonkeyPatch
):
    for name, value in env(tmp_path / "a").items():
        monkeypatch.setenv(name, value)
    first = schedules.collect({"as_of": T1.isoformat()})
    assert first["status"] == "completed"
    exported = schedules.export({})
    assert exported["ok"] and exported["generation"]

    from chalicelib.write import scheduler  # collect imports it lazily: patch it there

    original = scheduler.run_collect

    def collect_while_another_writer_persists(settings, now):
        summary = original(settings, now)
        rival_settings, rival = writer(tmp_path / "rival")
        rival.restore()
        run_collect(rival_settings, T3)
        rival.persist()
        return summary

    monkeypatch.setattr(scheduler, "run_collect", collect_while_another_writer_persists)
    second = schedules.collect({"as_of": T2.isoformat()})
    assert second["status"] == "aborted"
    assert any("another writer" in e for e in second["errors"])
    assert snapshots_in_bucket(tmp_path) == {T1, T3}


def test_a_write_whose_answer_was_lost_is_not_a_conflict(bucket, tmp_path):
    settings, state = writer(tmp_path / "a")
    state.restore()
    run_collect(settings, T1)
    restored = state.version
    landed = state.persist()
    state.version = restored  # as if the PUT landed but its response never arrived
    assert state.persist() == landed  # the retry meets its own write: 412, then recognised


def test_a_different_object_is_still_a_conflict(bucket, tmp_path):
    settings, state = writer(tmp_path / "a")
    state.restore()
    run_collect(settings, T1)
    state.persist()
    run_collect(settings, T2)  # the local file now differs from the bucket's
    state.version = None  # pretend the bucket was empty when restored
    with pytest.raises(WriterConflict):
        state.persist()
