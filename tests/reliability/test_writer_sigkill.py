"""Crash safety: SIGKILL the writer at random moments, again and again, on both backends.

Each round releases a real ``ocd.py cycle`` process (a new as-of time, so new data) and kills it
after a random delay: half the rounds anywhere in the cycle, half in the export window (after the
log line that precedes the export in an uncrashed run, or, every other time, after the line that
says its per-ticker documents are written, so the kill lands among the archives, the latest
documents and the manifest: the export of format 2 is quick, and that part of it quicker). After
every kill a freshly started API serves one complete, checksum-valid generation — never an older
one than before, with every ticker it served before — the database opens and keeps its rows, and
the next cycle succeeds.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from chalice.test import Client
from reliakit import (
    Served,
    WarmWriter,
    check_served,
    cycle_in_process,
    order,
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

SEED = 20261130
KILLS = {"local": 20, "s3": 12}  # an S3 round costs ~3 s, a local one ~1.5 s
BUCKET = "ocd-crash"


@dataclass(frozen=True)
class Calibration:
    duration: float  # go -> exit of an uncrashed cycle
    marker: tuple[str, int] | None  # (event, occurrence) of the log line before the export
    window: float  # marker -> the export's last log line
    late: tuple[str, int] | None = None  # the line after the per-ticker documents are written
    late_window: float = 0.0  # late -> the export's last log line


def calibrate(env: dict[str, str], times: Iterator[str]) -> Calibration:
    """Two uncrashed cycles: the first sets up (new database, history backfill; in this
    process), the second, measured, is what every later cycle looks like."""
    cycle_in_process(next(times))
    writer = WarmWriter.start(env)
    writer.go(next(times))
    assert writer.finish() == 0, writer.stderr_text()
    exports = [line for line in writer.lines if line.event == "export"]
    duration = writer.ended - writer.started
    if not exports:  # log events renamed: kill anywhere in the cycle
        return Calibration(duration, None, duration)
    export_start = exports[-1].at - float(exports[-1].fields.get("duration_ms", 0)) / 1000
    before = [line for line in writer.lines if line.at < export_start]
    if not before:
        return Calibration(duration, None, duration)
    marker = before[-1]
    occurrence = sum(line.event == marker.event for line in before)
    chains = [line for line in writer.lines if line.event == "export_chains"]
    late = ("export_chains", len(chains)) if chains else None
    late_window = exports[-1].at - chains[-1].at if chains else 0.0
    return Calibration(duration, (marker.event, occurrence), exports[-1].at - marker.at, late,
                       late_window)  # fmt: skip


def database_rows(backend: str, env: dict[str, str], scratch: Path) -> int:
    """Snapshots in the writer's database (the bucket's copy on S3), opened read-write as the
    next writer opens it: a killed writer's WAL is replayed, never a reason to fail."""
    path = Path(env["OCD_DATA_DIR"]) / "ocd.duckdb"
    if backend == "s3":
        path = scratch / "bucket-copy.duckdb"
        S3Storage(BUCKET, "state/").get_file("ocd.duckdb", path)
        path.with_name(path.name + ".wal").unlink(missing_ok=True)
    with Store(path) as store:
        return store.count("chain_snapshots")


def what_it_left(storage: Storage, before: set[str], served: Served) -> str:
    """Where the kill landed, told by the storage: before the export wrote anything, during
    it (new objects, same manifest), or after it published."""
    if published_manifest(storage).generation != served.generation:
        return "after publishing"
    return "mid-export" if {i.key for i in storage.list()} - before else "before exporting"


@pytest.fixture
def backend_env(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, dict[str, str], Storage]:
    backend = request.param
    extra = {"OCD_LOG_LEVEL": "INFO"}
    if backend == "s3":
        endpoint = request.getfixturevalue("moto_server")
        request.getfixturevalue("shared_boto3_session")
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
        extra.update(
            OCD_STORAGE="s3",
            OCD_BUCKET=BUCKET,
            AWS_ENDPOINT_URL_S3=endpoint,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_DEFAULT_REGION="us-east-1",
        )
    env = writer_env(tmp_path / "data", **extra)
    use_env(monkeypatch, env)  # the API and the next cycle, in this process
    storage: Storage = LocalStorage(tmp_path / "data" / "exports")
    if backend == "s3":
        storage = S3Storage(BUCKET, "exports/")
    return backend, env, storage


@pytest.mark.parametrize("backend_env", ["local", "s3"], indirect=True)
def test_sigkill_at_random_moments_never_loses_a_published_generation(
    backend_env: tuple[str, dict[str, str], Storage], client: Client, tmp_path: Path
) -> None:
    backend, env, storage = backend_env
    rng = random.Random(SEED)
    times = session_times()
    cal = calibrate(env, times)
    served = check_served(client, storage)
    rows = database_rows(backend, env, tmp_path)
    landed: Counter[str] = Counter()
    pending = WarmWriter.start(env)
    try:
        for round_no in range(KILLS[backend]):
            writer, pending = pending, None
            before = {info.key for info in storage.list()}
            writer.go(next(times))
            if round_no % 4 == 3 and cal.late is not None:  # the export's last writes
                writer.wait_for(*cal.late)
                killed = writer.kill_after(rng.uniform(0, cal.late_window))
            elif round_no % 2 and cal.marker is not None:  # in the export window
                writer.wait_for(*cal.marker)
                killed = writer.kill_after(rng.uniform(0, cal.window))
            else:  # anywhere in the cycle
                killed = writer.kill_after(rng.uniform(0, cal.duration))
            pending = WarmWriter.start(env)  # its start-up overlaps the checks below
            landed[what_it_left(storage, before, served) if killed else "finished"] += 1

            after = check_served(client, storage, served.tickers)
            assert order(after.generation) >= order(served.generation), (round_no, landed)
            now_rows = database_rows(backend, env, tmp_path)
            assert now_rows >= rows, (round_no, now_rows, rows)

            summary = cycle_in_process(next(times))  # the next cycle succeeds, and publishes
            assert summary["collect"]["status"] == "completed", summary["collect"]
            assert summary["collect"]["snapshots_flushed"] == len(after.tickers)
            assert summary["export"]["ok"], summary["export"]
            generation = summary["export"]["generation"]
            assert order(generation) > order(after.generation)
            served = Served(generation, published_manifest(storage), after.tickers)
            assert served.manifest.generation == generation
            rows = now_rows + len(after.tickers)
    finally:
        if pending is not None:
            pending.stop()
    # The kills did land inside exports (else this test would prove little).
    assert landed["mid-export"] >= 1, landed
    # Every generation ever published is still archived, in publication order.
    archived = [m.generation for m in fmt.archived_manifests(storage)]
    assert archived == sorted(archived, key=order, reverse=True)
    temp = len(list(Path(env["OCD_DATA_DIR"]).rglob(".tmp-*")))  # what killed writes left
    print(f"{backend}: kills landed {dict(landed)}; {temp} temp files left; {cal}")
