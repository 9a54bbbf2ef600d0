"""Switching between local and S3 storage never loses data: the switch matrix."""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from chalicelib.config import load_settings
from chalicelib.errors import DatabaseDiverged, OCDError
from chalicelib.storage.factory import make_state_storage
from chalicelib.write import schedules
from chalicelib.write.dbstate import DatabaseState, WriterConflict, sync_path
from chalicelib.write.scheduler import run_collect
from chalicelib.write.store import Store

BUCKET = "ocd-switch"
T1, T2, T3 = "2026-11-23T17:00:00Z", "2026-11-24T17:00:00Z", "2026-11-25T17:00:00Z"


@pytest.fixture
def bucket(monkeypatch: pytest.MonkeyPatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield BUCKET


def use(monkeypatch: pytest.MonkeyPatch, root: Path, storage: str) -> None:
    monkeypatch.setenv("OCD_DATA_DIR", str(root))
    monkeypatch.setenv("OCD_WATCHLIST", "SPY,JPM")
    monkeypatch.setenv("OCD_BACKFILL_DAYS", "10")
    monkeypatch.setenv("OCD_STORAGE", storage)
    monkeypatch.setenv("OCD_BUCKET", BUCKET)


def rows(root: Path) -> int:
    with Store(root / "ocd.duckdb", read_only=True) as store:
        return store.count("option_quotes")


def bucket_md5() -> str | None:
    objects = boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="state/ocd.duckdb")
    found = [o["ETag"].strip('"') for o in objects.get("Contents", [])]
    return found[0] if found else None


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def test_an_empty_bucket_adopts_the_local_database(
    bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(monkeypatch, tmp_path, "local")
    schedules.collect({"as_of": T1})
    schedules.collect({"as_of": T2})
    local_rows = rows(tmp_path)
    assert local_rows > 0 and bucket_md5() is None

    use(monkeypatch, tmp_path, "s3")
    summary = schedules.collect({"as_of": T3})
    assert summary["status"] == "completed" and summary["db"]["adopted"]
    assert rows(tmp_path) > local_rows  # nothing lost: the local rows and the new cycle's
    assert bucket_md5() == md5(tmp_path / "ocd.duckdb")


def test_both_present_and_different_is_refused_naming_both(
    bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(monkeypatch, tmp_path / "cloud", "s3")
    schedules.collect({"as_of": T1})  # the bucket gets a database of its own
    use(monkeypatch, tmp_path / "laptop", "local")
    schedules.collect({"as_of": T2})  # and the laptop one of its own
    before = md5(tmp_path / "laptop" / "ocd.duckdb"), bucket_md5()

    use(monkeypatch, tmp_path / "laptop", "s3")
    with pytest.raises(DatabaseDiverged) as refused:
        schedules.collect({"as_of": T3})
    message = str(refused.value)
    assert str(tmp_path / "laptop" / "ocd.duckdb") in message
    assert f"s3://{BUCKET}/state/ocd.duckdb" in message
    assert "db push" in message and "db pull" in message
    assert refused.value.exit_code == 75
    assert (md5(tmp_path / "laptop" / "ocd.duckdb"), bucket_md5()) == before  # both untouched


def test_neither_present_starts_fresh_and_persists(
    bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(monkeypatch, tmp_path, "s3")
    summary = schedules.collect({"as_of": T1})
    assert summary["status"] == "completed" and summary["db"]["persisted_bytes"] > 0
    assert bucket_md5() == md5(tmp_path / "ocd.duckdb")


def test_s3_then_local_then_s3_keeps_the_local_work(
    bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(monkeypatch, tmp_path, "s3")
    schedules.collect({"as_of": T1})
    use(monkeypatch, tmp_path, "local")
    schedules.collect({"as_of": T2})  # local work on what used to be the bucket's copy
    assert not sync_path(tmp_path / "ocd.duckdb").exists()
    use(monkeypatch, tmp_path, "s3")
    with pytest.raises(DatabaseDiverged):
        schedules.collect({"as_of": T3})  # never silently replaced by the older bucket copy


def test_a_crashed_s3_run_gives_way_to_the_bucket(
    bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(monkeypatch, tmp_path, "s3")
    schedules.collect({"as_of": T1})
    persisted = bucket_md5()
    settings = load_settings()
    state = DatabaseState(make_state_storage(settings), settings.database)
    state.restore()
    run_collect(settings, datetime.fromisoformat(T2))
    # ... and the run dies before persisting: the next run starts from the bucket's copy
    summary = schedules.collect({"as_of": T3})
    assert summary["status"] == "completed"
    assert bucket_md5() != persisted and bucket_md5() == md5(tmp_path / "ocd.duckdb")


def test_push_and_pull_refuse_to_overwrite_without_force(
    bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(monkeypatch, tmp_path / "cloud", "s3")
    schedules.collect({"as_of": T1})
    use(monkeypatch, tmp_path / "laptop", "local")
    schedules.collect({"as_of": T2})
    use(monkeypatch, tmp_path / "laptop", "s3")
    settings = load_settings()
    laptop = DatabaseState(make_state_storage(settings), settings.database)
    with pytest.raises(OCDError, match="--force"):
        laptop.push()
    with pytest.raises(OCDError, match="--force"):
        laptop.pull()
    laptop.push(force=True)
    assert bucket_md5() == md5(settings.database)
    summary = schedules.collect({"as_of": T3})  # the choice made, runs go on
    assert summary["status"] == "completed"
    cloud = DatabaseState(make_state_storage(settings), tmp_path / "cloud" / "ocd.duckdb")
    with pytest.raises(OCDError, match="--force"):
        cloud.pull()
    cloud.pull(force=True)
    assert md5(tmp_path / "cloud" / "ocd.duckdb") == bucket_md5()


def test_compaction_keeps_the_conditional_persist_working(
    bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(monkeypatch, tmp_path / "a", "s3")
    monkeypatch.setenv("OCD_COMPACT_FREE_FRACTION", "0")  # compact at the end of every run
    monkeypatch.setenv("OCD_COMPACT_MIN_FREE_MB", "0")
    first = schedules.collect({"as_of": T1})
    assert first["lifecycle"]["compacted"]
    second = schedules.collect({"as_of": T2})
    assert second["lifecycle"]["compacted"] and second["db"]["persisted_bytes"] > 0
    assert bucket_md5() == md5(tmp_path / "a" / "ocd.duckdb")
    # a rival that restored the same version before the compacted persist still loses
    settings = load_settings()
    rival = DatabaseState(make_state_storage(settings), tmp_path / "rival.duckdb")
    rival.restore()
    schedules.collect({"as_of": T3})
    with pytest.raises(WriterConflict):
        rival.persist()
