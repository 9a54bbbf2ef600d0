"""Fixtures for the lifecycle suite: a writer (``Life``) on each storage backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from lifekit import Life
from moto import mock_aws

from chalicelib.storage.base import Storage
from chalicelib.storage.local import LocalStorage
from chalicelib.storage.s3 import S3Storage

BUCKET = "ocd-lifecycle"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    if request.param == "local":
        yield LocalStorage(tmp_path / "exports")
        return
    request.getfixturevalue("aws_env")
    with mock_aws():
        s3 = S3Storage(BUCKET, "exports/")
        s3.client.create_bucket(Bucket=BUCKET)
        yield s3


@pytest.fixture
def life(tmp_path: Path, storage: Storage) -> Life:
    return Life(tmp_path / "data", storage)
