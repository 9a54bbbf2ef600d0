"""A damaged database is never used, never persisted, and says how to recover (issue 15 #1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from chalicelib.errors import DatabaseDamaged
from chalicelib.exportstatus import COLLECT_STATUS_KEY
from chalicelib.write import schedules
from chalicelib.write.store import Store

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "ocd-damage"
T1, T2 = "2026-11-24T17:00:00Z", "2026-11-24T17:10:00Z"


@pytest.fixture
def bucket(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    for name, value in {"OCD_DATA_DIR": str(tmp_path / "data"), "OCD_STORAGE": "s3",
                        "OCD_BUCKET": BUCKET, "OCD_WATCHLIST": "JPM",
                        "OCD_BACKFILL_DAYS": "5"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield boto3.client("s3")


def _object(s3, key: str) -> bytes:
    return s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()


def test_a_truncated_bucket_copy_is_refused_and_never_persisted(bucket, tmp_path: Path) -> None:
    schedules.collect({"as_of": T1})
    good = _object(bucket, "state/ocd.duckdb")
    bucket.put_object(Bucket=BUCKET, Key="state/ocd.duckdb", Body=good[: len(good) // 2])
    local = tmp_path / "data" / "ocd.duckdb"
    os.remove(local)  # a cold Lambda: nothing local, the bucket's copy is all there is
    with pytest.raises(DatabaseDamaged) as refused:
        schedules.collect({"as_of": T2})
    assert f"s3://{BUCKET}/state/ocd.duckdb" in str(refused.value)
    assert not local.exists()  # the download was checked before it replaced anything
    assert _object(bucket, "state/ocd.duckdb") == good[: len(good) // 2]  # nothing persisted
    status = json.loads(_object(bucket, f"exports/{COLLECT_STATUS_KEY}"))
    assert status["ok"] is False and "damaged" in status["error"]


def test_a_copy_that_differs_from_the_recorded_checksum_is_refused(bucket, tmp_path) -> None:
    schedules.collect({"as_of": T1})
    record = json.loads(_object(bucket, "state/ocd.duckdb.sha256"))
    etag = bucket.head_object(Bucket=BUCKET, Key="state/ocd.duckdb")["ETag"].strip('"')
    assert record["version"] == etag and len(record["sha256"]) == 64
    bucket.put_object(Bucket=BUCKET, Key="state/ocd.duckdb.sha256",
                      Body=json.dumps({**record, "sha256": "0" * 64}))  # fmt: skip
    os.remove(tmp_path / "data" / "ocd.duckdb")
    with pytest.raises(DatabaseDamaged, match="recorded at persist"):
        schedules.collect({"as_of": T2})


def test_a_recovered_copy_is_used_again(bucket, tmp_path: Path) -> None:
    schedules.collect({"as_of": T1})
    good = _object(bucket, "state/ocd.duckdb")
    bucket.put_object(Bucket=BUCKET, Key="state/ocd.duckdb", Body=b"not a database")
    os.remove(tmp_path / "data" / "ocd.duckdb")
    with pytest.raises(DatabaseDamaged):
        schedules.collect({"as_of": T2})
    bucket.put_object(Bucket=BUCKET, Key="state/ocd.duckdb", Body=good)  # restored by hand
    assert schedules.collect({"as_of": T2})["status"] == "completed"
    status = json.loads(_object(bucket, f"exports/{COLLECT_STATUS_KEY}"))
    assert status["ok"] is True  # /health is no longer degraded


def ocd(*args: str, data: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OCD_DATA_DIR": str(data), "OCD_WATCHLIST": "JPM",
           "OCD_BACKFILL_DAYS": "5", "OCD_LOG_LEVEL": "WARNING"}  # fmt: skip
    env.pop("OCD_STORAGE", None)
    return subprocess.run([sys.executable, "scripts/ocd.py", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180)  # fmt: skip


def test_cycle_on_a_damaged_local_file_exits_74_and_db_check_says_how_to_recover(
    tmp_path: Path,
) -> None:
    assert ocd("cycle", "--as-of", T1, data=tmp_path).returncode == 0
    assert ocd("db", "check", data=tmp_path).returncode == 0
    db = tmp_path / "ocd.duckdb"
    os.truncate(db, db.stat().st_size // 2)
    cycle = ocd("cycle", "--as-of", T2, data=tmp_path)
    assert cycle.returncode == 74
    assert "Traceback" not in cycle.stderr and "damaged" in cycle.stderr
    assert "db check" in cycle.stderr
    status = json.loads((tmp_path / "exports" / COLLECT_STATUS_KEY).read_text())
    assert status["ok"] is False
    check = ocd("db", "check", data=tmp_path)
    assert check.returncode == 74
    assert "DAMAGED" in check.stdout and "to recover" in check.stdout
    assert f"mv {db} {db}.damaged" in check.stdout
    os.replace(db, db.with_name("ocd.duckdb.damaged"))  # the advice works
    again = ocd("cycle", "--as-of", T2, data=tmp_path)
    assert again.returncode == 0, again.stderr
    with Store(db, read_only=True) as store:
        assert store.count("chain_snapshots") == 1
