"""S3 adapter: objects are S3 objects under ``s3://bucket/prefix``.

One PUT is atomic per key, so readers never see a partial object. Conditional writes use S3's
own ``If-None-Match: *`` / ``If-Match: <etag>``; the version is the ETag without its quotes.
botocore retries throttling, 5xx answers and timeouts (standard mode; ``max_attempts`` counts
retries, so up to 6 requests, with exponential backoff and jitter); what still fails is raised as
StorageUnavailable, so callers handle an outage without knowing botocore.

The boto3 client is created on first use, never at import or construction, so importing this
module or building the adapter costs nothing and needs no credentials. boto3 itself honours
``AWS_ENDPOINT_URL_S3`` (or ``AWS_ENDPOINT_URL``), which points the adapter at moto or MinIO.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from chalicelib.errors import ObjectNotFound, OCDError, PreconditionFailed, StorageUnavailable
from chalicelib.storage.base import ObjectInfo, Storage, StoredObject
from chalicelib.storage.keys import is_valid_key, validate_prefix
from chalicelib.storage.local import write_file_atomically

DEFAULT_REGION = "us-east-1"
MAX_PAGE_SIZE = 1000  # S3's cap for ListObjectsV2 keys per page and DeleteObjects keys per call
_CHUNK = 1 << 20
_CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5},
    connect_timeout=5,
    read_timeout=30,
    max_pool_connections=32,  # put_many's threads each need a connection
)
_NOT_FOUND = frozenset({"NoSuchKey", "NotFound", "404"})
# 409 ConditionalRequestConflict: a concurrent conditional write to the same key won on AWS.
_PRECONDITION = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict"})

S3Client = Any  # boto3 generates client classes at run time


class S3Storage(Storage):
    """Objects under ``prefix`` in ``bucket``; keys are stored as ``prefix + key``."""

    backend = "s3"
    write_concurrency = 32

    def __init__(self, bucket: str, prefix: str = "", *, page_size: int = MAX_PAGE_SIZE) -> None:
        if not bucket:
            raise ValueError("bucket must not be empty")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be within 1..{MAX_PAGE_SIZE}, not {page_size}")
        prefix = prefix.strip("/")
        self._bucket = bucket
        self._prefix = validate_prefix(f"{prefix}/") if prefix else ""
        self._page_size = page_size
        self._client: S3Client | None = None
        self._client_lock = threading.Lock()

    @property
    def bucket(self) -> str:
        return self._bucket

    @property
    def prefix(self) -> str:
        return self._prefix

    @property
    def location(self) -> str:
        return f"s3://{self._bucket}/{self._prefix}"

    @property
    def client(self) -> S3Client:
        """The boto3 S3 client, created on first use (thread-safe)."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    session = boto3.session.Session()
                    region = session.region_name or os.environ.get("AWS_REGION") or DEFAULT_REGION
                    self._client = session.client("s3", region_name=region, config=_CLIENT_CONFIG)
        return self._client

    def _get(self, key: str) -> StoredObject:
        response = self._get_object(key)
        with self._failures("GetObject", key), contextlib.closing(response["Body"]) as body:
            data = body.read()
        return StoredObject(key, data, _etag(response), response.get("ContentEncoding"))

    def _head(self, key: str) -> ObjectInfo | None:
        try:
            with self._failures("HeadObject", key, passthrough=_NOT_FOUND):
                response = self.client.head_object(Bucket=self._bucket, Key=self._prefix + key)
        except ClientError:  # only the codes passed through: not found
            return None
        return ObjectInfo(key, response["ContentLength"], _etag(response), _utc(response))

    def _put(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str,
        content_encoding: str | None,
        if_match: str | None,
        if_none_match: bool,
    ) -> ObjectInfo:
        request: dict[str, Any] = {"Body": data, "ContentType": content_type}
        if content_encoding:
            request["ContentEncoding"] = content_encoding
        return self._put_object(key, len(data), request, if_match, if_none_match)

    def _list(self, prefix: str) -> Iterable[ObjectInfo]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self._bucket,
            Prefix=self._prefix + prefix,
            PaginationConfig={"PageSize": self._page_size},
        )
        strip = len(self._prefix)
        with self._failures("ListObjectsV2", prefix):
            items = [item for page in pages for item in page.get("Contents", ())]
        for item in items:
            key = item["Key"][strip:]
            if is_valid_key(key):  # skip foreign objects no key could address
                yield ObjectInfo(key, item["Size"], _etag(item), _utc(item))

    def _delete(self, key: str) -> None:
        try:
            with self._failures("DeleteObject", key, passthrough=_NOT_FOUND):
                self.client.delete_object(Bucket=self._bucket, Key=self._prefix + key)
        except ClientError:  # only the codes passed through: already gone
            pass

    def _delete_many(self, keys: builtins.list[str]) -> int:
        deleted = 0
        errors: builtins.list[dict[str, str]] = []
        for start in range(0, len(keys), MAX_PAGE_SIZE):
            batch = keys[start : start + MAX_PAGE_SIZE]
            with self._failures("DeleteObjects", batch[0]):
                response = self.client.delete_objects(
                    Bucket=self._bucket,
                    Delete={"Objects": [{"Key": self._prefix + k} for k in batch], "Quiet": True},
                )
            failed = response.get("Errors", [])
            errors.extend(failed)
            deleted += len(batch) - len(failed)
        if errors:
            first = errors[0]
            raise OCDError(
                f"could not delete {len(errors)} of {len(keys)} keys in {self.location}; "
                f"first: {first.get('Key')}: {first.get('Code')} {first.get('Message')}"
            )
        return deleted

    def _put_file(
        self, key: str, path: Path, *, if_match: str | None, if_none_match: bool
    ) -> ObjectInfo:
        # One PUT streamed from the open file (up to S3's 5 GB single-PUT limit): atomic, and it
        # supports conditional headers, unlike a multipart transfer.
        with open(path, "rb") as body:
            size = os.fstat(body.fileno()).st_size
            request = {"Body": body, "ContentType": "application/octet-stream"}
            return self._put_object(key, size, request, if_match, if_none_match)

    def _get_file(self, key: str, path: Path) -> ObjectInfo:
        response = self._get_object(key)
        with self._failures("GetObject", key), contextlib.closing(response["Body"]) as body:

            def fill(dst: Any) -> None:
                for chunk in body.iter_chunks(_CHUNK):
                    dst.write(chunk)

            write_file_atomically(path, fill)
        return ObjectInfo(key, response["ContentLength"], _etag(response), _utc(response))

    def _get_object(self, key: str) -> dict[str, Any]:
        try:
            with self._failures("GetObject", key, passthrough=_NOT_FOUND):
                return self.client.get_object(Bucket=self._bucket, Key=self._prefix + key)
        except ClientError:  # only the codes passed through
            raise ObjectNotFound(f"{key} not found in {self.location}") from None

    @contextlib.contextmanager
    def _failures(
        self, operation: str, key: str, passthrough: frozenset[str] = frozenset()
    ) -> Iterator[None]:
        """Errors botocore gave up on become StorageUnavailable (naming the operation, the key
        and S3's error code); ClientErrors with a code in ``passthrough`` are the caller's."""
        try:
            yield
        except ClientError as exc:
            if _code(exc) in passthrough:
                raise
            raise StorageUnavailable(
                f"{operation} {key} in {self.location} failed: {_code(exc) or 'error'} "
                f"({exc.response.get('ResponseMetadata', {}).get('HTTPStatusCode')})"
            ) from exc
        except (HTTPClientError, BotoConnectionError) as exc:
            raise StorageUnavailable(
                f"{operation} {key} in {self.location} failed: {type(exc).__name__}"
            ) from exc

    def _put_object(
        self,
        key: str,
        size: int,
        request: dict[str, Any],
        if_match: str | None,
        if_none_match: bool,
    ) -> ObjectInfo:
        if if_none_match:
            request["IfNoneMatch"] = "*"
        if if_match is not None:
            request["IfMatch"] = f'"{if_match}"'
        try:
            with self._failures("PutObject", key, passthrough=_PRECONDITION | _NOT_FOUND):
                response = self.client.put_object(
                    Bucket=self._bucket, Key=self._prefix + key, **request
                )
        except ClientError as exc:
            code = _code(exc)
            if code in _PRECONDITION:
                state = "already exists" if if_none_match else f"is no longer at {if_match}"
                raise PreconditionFailed(f"{key} {state} in {self.location}") from None
            if if_match is not None and code in _NOT_FOUND:  # S3 answers 404 for If-Match
                raise PreconditionFailed(f"{key} does not exist; expected {if_match}") from None
            raise
        # PutObject returns no Last-Modified; the response's Date is when S3 stored the object.
        return ObjectInfo(key, size, _etag(response), _response_date(response))


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _etag(response: dict[str, Any]) -> str:
    return str(response["ETag"]).strip('"')


def _utc(response: dict[str, Any]) -> datetime:
    return response["LastModified"].astimezone(UTC)


def _response_date(response: dict[str, Any]) -> datetime:
    date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    if date:
        with contextlib.suppress(TypeError, ValueError):
            return parsedate_to_datetime(date).astimezone(UTC)
    return datetime.now(UTC)
