"""Two writers at once, on one data directory (local) and on one bucket (S3): never do both
write. The loser exits 75 ("writer busy") and leaves the database and the export intact.

Deterministic by construction: the first writer is frozen (SIGSTOP) at the point where it holds
what the second one needs — the DuckDB lock locally, the restored database version on S3 — and
thawed once the second one has finished.
"""

from __future__ import annotations

import os
import signal
from datetime import UTC
from itertools import islice
from pathlib import Path

import boto3
import pytest
from exportkit import assert_complete
from reliakit import (
    WarmWriter,
    cycle_in_process,
    published_manifest,
    session_times,
    use_env,
    writer_env,
)

from chalicelib import exportformat as fmt
from chalicelib.storage.base import Storage
from chalicelib.storage.local import LocalStorage
from chalicelib.storage.s3 import S3Storage
from chalicelib.write.store import Store

BUSY = 75
BUCKET = "ocd-two-writers"


def snapshot_times(db: Path) -> set[str]:
    with Store(db, read_only=True) as store:
        rows = store.rows("SELECT DISTINCT as_of FROM chain_snapshots")
    return {row[0].replace(tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ") for row in rows}


def generations(storage: Storage) -> list[str]:
    return [m.generation for m in fmt.archived_manifests(storage)]


def test_local_writer_frozen_holding_the_database_turns_the_other_away(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = writer_env(tmp_path / "data", OCD_LOG_LEVEL="INFO")
    storage = LocalStorage(tmp_path / "data" / "exports")
    t0, t1, t2 = islice(session_times(), 3)
    use_env(monkeypatch, env)
    first = cycle_in_process(t0)["export"]["generation"]

    holder, other = WarmWriter.start(env), WarmWriter.start(env)
    other.ready()
    holder.go(t1)
    assert holder.wait_for(None)  # its first log line is written with the database open
    os.kill(holder.proc.pid, signal.SIGSTOP)
    try:
        other.go(t2)
        code = other.finish()
    finally:
        os.kill(holder.proc.pid, signal.SIGCONT)
    assert code == BUSY
    assert other.stdout == b""  # nothing collected, nothing published
    assert "writer busy" in other.stderr_text() and f"PID {holder.proc.pid}" in other.stderr_text()

    assert holder.finish() == 0, holder.stderr_text()
    manifest = published_manifest(storage)
    assert manifest.generation == holder.summary()["export"]["generation"]
    assert manifest.previous_generation == first
    assert generations(storage) == [manifest.generation, first]
    assert_complete(storage, manifest)
    assert snapshot_times(tmp_path / "data" / "ocd.duckdb") == {t0, t1}


def test_local_writers_started_together_take_turns_or_one_is_turned_away(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No freezing: whatever the interleaving, each writer either ran whole or exited 75, and
    each one that ran published exactly one complete generation."""
    env = writer_env(tmp_path / "data")
    storage = LocalStorage(tmp_path / "data" / "exports")
    t0, t1, t2 = islice(session_times(), 3)
    use_env(monkeypatch, env)
    first = cycle_in_process(t0)["export"]["generation"]

    writers = {t1: WarmWriter.start(env), t2: WarmWriter.start(env)}
    for writer in writers.values():
        writer.ready()
    for as_of, writer in writers.items():
        writer.go(as_of)
    codes = {as_of: writer.finish() for as_of, writer in writers.items()}
    assert set(codes.values()) <= {0, BUSY} and 0 in codes.values(), codes
    won = [as_of for as_of, code in codes.items() if code == 0]
    for as_of, writer in writers.items():
        if codes[as_of] == BUSY:
            assert writer.stdout == b"" and "writer busy" in writer.stderr_text()
    published = [writers[as_of].summary()["export"]["generation"] for as_of in won]
    assert sorted(generations(storage)) == sorted([first, *published])
    assert_complete(storage, published_manifest(storage))
    # A loser turned away at export time had collected: its snapshot is kept, not lost.
    assert {t0, *won} <= snapshot_times(tmp_path / "data" / "ocd.duckdb") <= {t0, t1, t2}


def test_s3_writers_restoring_the_same_database_only_one_persists(
    tmp_path: Path, moto_server: str, shared_boto3_session: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
    s3 = {"OCD_STORAGE": "s3", "OCD_BUCKET": BUCKET, "OCD_LOG_LEVEL": "INFO",
          "AWS_ENDPOINT_URL_S3": moto_server, "AWS_ACCESS_KEY_ID": "testing",
          "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
    env_a, env_b = (writer_env(tmp_path / name, **s3) for name in ("a", "b"))
    storage = S3Storage(BUCKET, "exports/")
    t0, t1, t2 = islice(session_times(), 3)
    use_env(monkeypatch, env_a)
    first = cycle_in_process(t0)["export"]["generation"]

    loser, winner = WarmWriter.start(env_a), WarmWriter.start(env_b)
    winner.ready()
    loser.go(t1)
    assert loser.wait_for("db_restore")  # it holds the bucket's current database version
    os.kill(loser.proc.pid, signal.SIGSTOP)
    try:
        winner.go(t2)  # restores that same version, collects, persists, exports
        assert winner.finish() == 0, winner.stderr_text()
    finally:
        os.kill(loser.proc.pid, signal.SIGCONT)
    assert loser.finish() == BUSY, loser.stderr_text()
    lost = loser.summary()
    assert lost["collect"]["status"] == "aborted" and lost["export"] is None
    assert any("another writer" in e for e in lost["collect"]["errors"])
    assert "published nothing" in loser.stderr_text()

    manifest = published_manifest(storage)
    assert manifest.generation == winner.summary()["export"]["generation"]
    assert generations(storage) == [manifest.generation, first]  # the loser published nothing
    assert_complete(storage, manifest)
    bucket_db = tmp_path / "bucket.duckdb"
    S3Storage(BUCKET, "state/").get_file("ocd.duckdb", bucket_db)
    assert snapshot_times(bucket_db) == {t0, t2}  # the loser's collect was not persisted
