"""Fixtures for the storage contract suite: every test runs against both adapters."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from chalicelib.storage.base import Storage
from chalicelib.storage.local import LocalStorage
from chalicelib.storage.s3 import S3Storage

BUCKET = "ocd-test"
PREFIX = "exports/"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials; nothing from the developer's own AWS setup may leak in."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def moto_s3(aws_env: None) -> Iterator[None]:
    """moto's in-process S3, alive for the whole test."""
    with mock_aws():
        yield


@pytest.fixture
def s3_bucket(moto_s3: None) -> str:
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
    return BUCKET


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        return LocalStorage(tmp_path / "exports")
    request.getfixturevalue("moto_s3")
    s3 = S3Storage(BUCKET, PREFIX)
    # The adapter's own client makes the bucket: one client per test, as building one is slow.
    s3.client.create_bucket(Bucket=BUCKET)
    return s3


@pytest.fixture
def raw_keys(storage: Storage, tmp_path: Path) -> Callable[[], set[str]]:
    """Everything the backend really holds: bucket keys, or files anywhere under tmp_path."""

    def snapshot() -> set[str]:
        if isinstance(storage, S3Storage):
            pages = storage.client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
            return {item["Key"] for page in pages for item in page.get("Contents", ())}
        return {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}

    return snapshot
