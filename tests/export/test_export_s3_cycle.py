"""End to end: ``scripts/ocd.py cycle`` in a subprocess, exporting to disk and to S3.

S3 is moto in server mode (a real HTTP endpoint on 127.0.0.1), reached by the subprocess
through ``AWS_ENDPOINT_URL_S3``, exactly as a deployment would reach MinIO.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import orjson
import pytest
from exportkit import LATEST, assert_complete, check_document, gunzip, keys, manifest_of
from moto.server import ThreadedMotoServer

from chalicelib import exportformat as fmt
from chalicelib.exportformat import Manifest
from chalicelib.storage.base import Storage
from chalicelib.storage.local import LocalStorage
from chalicelib.storage.s3 import S3Storage

ROOT = Path(__file__).resolve().parents[2]
WATCHLIST = ("SPY", "AAPL")
BUCKET = "ocd-e2e"
FIRST, SECOND = "2026-11-27T18:00:00Z", "2026-11-30T20:00:00Z"


def cycle(data_dir: Path, as_of: str, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OCD_", "AWS_"))}
    env.update(
        OCD_DATA_DIR=str(data_dir),
        OCD_WATCHLIST=",".join(WATCHLIST),
        OCD_BACKFILL_DAYS="30",
        OCD_LOG_LEVEL="WARNING",
        **extra,
    )
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "ocd.py"), "cycle", "--as-of", as_of],
        cwd=data_dir,
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return orjson.loads(done.stdout)


def check_export(storage: Storage) -> tuple[Manifest, dict[str, bytes]]:
    manifest = manifest_of(storage)
    documents = assert_complete(storage, manifest)  # sha256 and bytes match every object
    assert set(LATEST.values()) <= set(documents)
    assert set(manifest.chains) == set(WATCHLIST)
    for ticker, key in manifest.chains.items():
        assert re.fullmatch(rf"chains/{re.escape(ticker)}_[0-9a-f]{{20}}\.json", key)
        chain = check_document(documents[key], "chain", manifest.generation)
        assert chain["count"] > 0
    for kind in fmt.KINDS:
        check_document(documents[LATEST[kind]], kind)
        assert gunzip(storage, manifest.archives[kind]) == documents[LATEST[kind]]
    assert set(manifest.chains.values()) <= keys(storage, fmt.CHAINS_PREFIX)
    assert {fmt.parse_archive_key(k).kind for k in keys(storage, fmt.ARCHIVE_PREFIX)} == {  # type: ignore[union-attr]
        *fmt.PUBLISHED_KINDS,
        "manifest",
    }
    return manifest, documents


def check_second(storage: Storage, first: Manifest, first_archives: set[str]) -> None:
    second, _ = check_export(storage)
    assert fmt.generation_order(second.generation) > fmt.generation_order(first.generation)
    assert second.previous_generation == first.generation
    archives = keys(storage, fmt.ARCHIVE_PREFIX)
    # Each rebuilt kind (and the manifest) got an archive; an unchanged kind kept its own.
    rebuilt = {k for k in fmt.PUBLISHED_KINDS if second.archives[k] != first.archives[k]}
    assert {"chains", "scans", "features"} <= rebuilt  # new snapshots, a new scan
    assert first_archives < archives and len(archives) == len(first_archives) + len(rebuilt) + 1
    assert not set(second.chains.values()) & set(first.chains.values())  # new snapshots
    # The first generation's chain documents stay while it is one of the newest three.
    assert keys(storage, fmt.CHAINS_PREFIX) == {*first.chains.values(), *second.chains.values()}


def test_cycle_exports_to_local_disk(tmp_path: Path) -> None:
    summary = cycle(tmp_path, FIRST)
    storage = LocalStorage(tmp_path / "exports")
    first, _ = check_export(storage)
    assert summary["export"]["generation"] == first.generation
    assert first.storage_writes <= 2 * len(WATCHLIST) + 20
    assert keys(storage, fmt.CHAINS_PREFIX) == set(first.chains.values())
    first_archives = keys(storage, fmt.ARCHIVE_PREFIX)

    cycle(tmp_path, SECOND)
    check_second(storage, first, first_archives)


@pytest.fixture
def moto_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    """moto's S3 over HTTP on a free port; this process is pointed at it too."""
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", url)
        yield url
    finally:
        server.stop()


def test_cycle_exports_to_s3(tmp_path: Path, moto_server: str) -> None:
    client = boto3.client("s3", region_name="us-east-1", endpoint_url=moto_server)
    client.create_bucket(Bucket=BUCKET)
    s3_env = {
        "OCD_STORAGE": "s3",
        "OCD_BUCKET": BUCKET,
        "AWS_ENDPOINT_URL_S3": moto_server,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    cycle(tmp_path, FIRST, **s3_env)
    assert not (tmp_path / "exports").exists()  # nothing went to local disk
    storage = S3Storage(BUCKET, "exports/")
    first, _ = check_export(storage)
    raw = {item["Key"] for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", ())}
    exported = {key for key in raw if key.startswith("exports/")}
    assert exported == {f"exports/{key}" for key in keys(storage)}
    # Outside the prefix there is at most the writer's own state (its DuckDB file), no export.
    assert not [key for key in raw - exported if key.endswith((".json", ".json.gz"))]
    first_archives = keys(storage, fmt.ARCHIVE_PREFIX)

    cycle(tmp_path, SECOND, **s3_env)
    check_second(storage, first, first_archives)
