"""Helpers for the export suite: a settable clock, storage wrappers, and generation checks.

The checks read what a reader would: the manifest, then each document it names, verified
against the manifest's sha256 and byte count, falling back to the archive the manifest names.
"""

from __future__ import annotations

import builtins
import gzip
import json
import math
import re
import threading
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from chalicelib import exportformat as fmt
from chalicelib.errors import ObjectNotFound
from chalicelib.exportformat import Manifest
from chalicelib.storage.base import ObjectInfo, Storage, StoredObject

BUCKET = "ocd-test"
PREFIX = "exports/"
WATCHLIST = ("SPY", "AAPL", "JPM")
SMALL_WATCHLIST = ("JPM", "ZZZ")  # ~500 contracts each
T1 = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)  # the session store's one collection
T2 = datetime(2026, 11, 30, 20, 0, tzinfo=UTC)  # the next trading day, in session
# The JSON documents of a generation (the data kinds and the delivery status), and with them
# every latest document, the Atom feed of alerts included.
LATEST = {kind: fmt.latest_key(kind) for kind in (*fmt.KINDS, fmt.DELIVERY_KIND)}
PUBLISHED = {kind: fmt.latest_key(kind) for kind in fmt.PUBLISHED_KINDS}
ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")
# archive/<kind>_<generation id>.json.gz (.atom.gz for the feed), the id NNNNNNNN-YYYYMMDDTHHMMSSZ
ARCHIVE_KEY = re.compile(r"^archive/([a-z]+)_((\d{8})-(\d{8}T\d{6})Z)\.(?:json|atom)\.gz$")
RESULT_FIELDS = {
    "kind",
    "ok",
    "rows",
    "bytes",
    "duration_ms",
    "keys_written",
    "keys_skipped",
    "error",
}


def env_for(data_dir: Path, **overrides: str) -> dict[str, str]:
    """The OCD_* environment of the suite; ``watchlist="A,B"`` sets OCD_WATCHLIST, etc."""
    return {
        "OCD_DATA_DIR": str(data_dir),
        "OCD_WATCHLIST": ",".join(WATCHLIST),
        "OCD_BACKFILL_DAYS": "60",
        **{f"OCD_{name.upper()}": value for name, value in overrides.items()},
    }


class Clock:
    """A clock the test sets: ``clock.now = …`` or ``clock.advance(minutes=5)``."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


class SimulatedCrash(BaseException):
    """The process dying mid-export: a BaseException, so no ``except Exception`` absorbs it."""


class WrappedStorage(Storage):
    """Delegates every operation to a real adapter; subclasses intercept writes.

    Only the adapter hooks are overridden, so keys still go through the port's validation, and
    the real adapter validates them again.
    """

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.backend = inner.backend
        self.puts: list[str] = []  # keys of every write attempt, in order
        self.syncs: list[int] = []  # len(puts) at each sync_deferred
        self._lock = threading.Lock()  # the exporter writes chain documents on threads

    @property
    def location(self) -> str:
        return self.inner.location

    def before_put(self, key: str, n: int) -> None:
        """Called before the ``n``-th write attempt (1-based); raise to fail it."""

    def after_put(self, key: str, n: int) -> None:
        """Called after the ``n``-th write attempt succeeded."""

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
        with self._lock:
            self.puts.append(key)
            n = len(self.puts)
        self.before_put(key, n)
        info = self.inner.put(
            key,
            data,
            content_type=content_type,
            content_encoding=content_encoding,
            if_match=if_match,
            if_none_match=if_none_match,
        )
        self.after_put(key, n)
        return info

    def put_deferred(self, key: str, data: bytes) -> None:
        with self._lock:
            self.puts.append(key)
            n = len(self.puts)
        self.before_put(key, n)
        self.inner.put_deferred(key, data)  # the adapter's own bulk path, not put
        self.after_put(key, n)

    def sync_deferred(self) -> None:
        with self._lock:
            self.syncs.append(len(self.puts))  # how many writes had been attempted
        self.inner.sync_deferred()

    def _get(self, key: str) -> StoredObject:
        return self.inner.get(key)

    def _head(self, key: str) -> ObjectInfo | None:
        return self.inner.head(key)

    def _list(self, prefix: str) -> Iterable[ObjectInfo]:
        return self.inner.list(prefix)

    def _delete(self, key: str) -> None:
        self.inner.delete(key)

    def _delete_many(self, keys: builtins.list[str]) -> int:
        return self.inner.delete_many(keys)

    def _put_file(
        self, key: str, path: Path, *, if_match: str | None, if_none_match: bool
    ) -> ObjectInfo:
        self.puts.append(key)
        return self.inner.put_file(key, path, if_match=if_match, if_none_match=if_none_match)

    def _get_file(self, key: str, path: Path) -> ObjectInfo:
        return self.inner.get_file(key, path)


class CrashingStorage(WrappedStorage):
    """Dies at the ``crash_at``-th write attempt (or the first write of ``key``): before the
    write reaches the adapter, or just after it."""

    def __init__(
        self, inner: Storage, crash_at: int = 0, after: bool = False, key: str | None = None
    ) -> None:
        super().__init__(inner)
        self.crash_at = crash_at
        self.key = key
        self.after = after
        self.crashed_on: str | None = None

    def _due(self, key: str, n: int) -> bool:
        return key == self.key if self.key else n == self.crash_at

    def before_put(self, key: str, n: int) -> None:
        if self.crashed_on is not None:  # the process is dead: nothing more gets written
            raise SimulatedCrash(f"{key} after the crash")
        if not self.after and self._due(key, n):
            self.crashed_on = key
            raise SimulatedCrash(key)

    def after_put(self, key: str, n: int) -> None:
        if self.after and self._due(key, n):
            self.crashed_on = key
            raise SimulatedCrash(key)


class FailingStorage(WrappedStorage):
    """The ``fail_at``-th write fails with an ordinary error (a transient storage fault)."""

    def __init__(self, inner: Storage, fail_at: int) -> None:
        super().__init__(inner)
        self.fail_at = fail_at
        self.failed_on: str | None = None

    def before_put(self, key: str, n: int) -> None:
        if n == self.fail_at:
            self.failed_on = key
            raise OSError(f"injected storage fault writing {key}")


# ---- reading what was published -------------------------------------------------------------
def manifest_of(storage: Storage) -> Manifest:
    """The published ``manifest.json`` (never an archived one)."""
    return Manifest.model_validate_json(storage.get(fmt.MANIFEST_KEY).data)


def keys(storage: Storage, prefix: str = "") -> set[str]:
    return {info.key for info in storage.list(prefix)}


def gunzip(storage: Storage, key: str) -> bytes:
    return gzip.decompress(storage.get(key).data)


def strict_loads(data: bytes) -> Any:
    """Parse as strictly as a browser: no NaN / Infinity, no number that overflows a double."""

    def refuse(token: str) -> Any:
        raise ValueError(f"non-standard JSON constant {token}")

    def finite(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(f"number {text} overflows a double")
        return value

    value = json.loads(data, parse_constant=refuse, parse_float=finite)
    assert orjson.loads(data) == value
    return value


def kind_of(key: str) -> str | None:
    """The kind of a latest document key (``alerts.json`` → ``alerts``); None otherwise."""
    return next((kind for kind, latest in PUBLISHED.items() if latest == key), None)


def published_bytes(storage: Storage, manifest: Manifest, key: str) -> bytes:
    """The bytes a reader gets for ``key`` under ``manifest``: the stored object if it matches
    its checksum, else the archive the manifest names for that kind. Fails if neither does."""
    entry = manifest.documents[key]
    try:
        data = storage.get(key).data
    except ObjectNotFound:
        data = b""
    if fmt.sha256(data) == entry.sha256 and len(data) == entry.bytes:
        return data
    kind = kind_of(key)
    assert kind is not None, f"{key}: per-ticker document damaged or missing"
    archive = manifest.archives[kind]
    data = gunzip(storage, archive)
    assert fmt.sha256(data) == entry.sha256, f"{key}: neither it nor {archive} matches"
    assert len(data) == entry.bytes
    return data


def assert_recoverable(storage: Storage, manifest: Manifest) -> dict[str, bytes]:
    """Every document ``manifest`` names is readable with its exact bytes; returns them."""
    assert set(manifest.chains.values()) <= set(manifest.documents)
    return {key: published_bytes(storage, manifest, key) for key in manifest.documents}


_VALIDATED: set[str] = set()  # sha256 of documents already checked against their contract


def assert_complete(storage: Storage, manifest: Manifest) -> dict[str, bytes]:
    """Stricter: every document is the stored object itself, keeps its contract, and each
    kind's archive (the manifest's too) holds the same bytes as the latest document of that
    generation."""
    found = {}
    for key, entry in manifest.documents.items():
        data = storage.get(key).data
        assert fmt.sha256(data) == entry.sha256, key
        assert len(data) == entry.bytes, key
        if entry.sha256 not in _VALIDATED and (contract := _document_kind(key)) is not None:
            check_document(data, contract)
            _VALIDATED.add(entry.sha256)
        if (kind := kind_of(key)) is not None and entry.generation == manifest.generation:
            assert gunzip(storage, manifest.archives[kind]) == data, kind
        found[key] = data
    return found


def add_scan(store: Any, when: datetime) -> None:
    """A scan recorded at ``when``: ``scans.json`` has new content at the next export."""
    store.record_scan({"scan_id": f"scan_test_{when:%Y%m%dT%H%M%S}", "started_at": when,
                       "finished_at": when, "status": "completed", "tickers_scanned": 1,
                       "chains_collected": 0, "alerts_generated": 0, "runtime_seconds": 0.1,
                       "errors": []})  # fmt: skip


def add_alert(store: Any, when: datetime) -> None:
    """An alert created at ``when``: ``alerts.json`` has new content at the next export."""
    store.rows(
        "INSERT INTO alerts VALUES (?, 'scan_test', 'JPM', 'low_iv', 55.0, '{}', "
        "'{\"summary\": \"test\"}', '[]', ?)",
        [f"test-alert-{when:%Y%m%dT%H%M%S}", when.astimezone(UTC).replace(tzinfo=None)],
    )


def check_document(data: bytes, kind: str, generation: str | None = None) -> dict[str, Any]:
    """A document that keeps its contract (``exportformat.validate``: types, no unknown field,
    every column ``count`` long), parses as strictly as a browser, and has the common header."""
    doc = fmt.validate(data, kind)
    assert strict_loads(data) == doc
    assert doc["kind"] == kind and doc["schema_version"] == fmt.SCHEMA_VERSION
    assert fmt.generation_order(doc["generation"]) > 0, doc["generation"]
    if generation is not None:
        assert doc["generation"] == generation
    assert ISO_Z.match(doc["generated_at"]), doc["generated_at"]
    return doc


def index_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of a ``chains.json`` (columnar) document."""
    return fmt.table_rows(doc["columns"], list(doc["columns"]))


def contracts_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """A chain document's contracts as rows, with expiration and right."""
    columns = doc["columns"]
    rows = fmt.table_rows(columns, fmt.CONTRACT_COLUMNS)
    for row, expiration, right in zip(
        rows, fmt.expand_runs(columns["expiration"]), fmt.expand_runs(columns["right"]),
        strict=True,
    ):  # fmt: skip
        row["expiration"], row["right"] = expiration, right
    return rows


def _document_kind(key: str) -> str | None:
    """The contract of a document key; None for the Atom feed (tests/delivery checks it)."""
    if key == fmt.FEED_KEY:
        return None
    kinds = {fmt.latest_key(kind): kind for kind in (*fmt.KINDS, fmt.DELIVERY_KIND)}
    if key in kinds:
        return kinds[key]
    prefixes = {fmt.CHAINS_PREFIX: "chain", fmt.HISTORY_PREFIX: "history",
                fmt.FEATURE_SET_PREFIX: "feature_set"}  # fmt: skip
    return next(kind for prefix, kind in prefixes.items() if key.startswith(prefix))


def assert_documents_keep_their_contracts(storage: Storage, manifest: Manifest) -> None:
    """Every document the manifest names validates against its contract."""
    for key in manifest.documents:
        if (contract := _document_kind(key)) is not None:
            check_document(published_bytes(storage, manifest, key), contract)


def sibling(storage: Storage, name: str) -> Storage:
    """A second, empty location on the same backend: a sibling directory, or another prefix."""
    from chalicelib.storage.local import LocalStorage
    from chalicelib.storage.s3 import S3Storage

    if isinstance(storage, LocalStorage):
        return LocalStorage(storage.root.parent / f"{storage.root.name}-{name}")
    assert isinstance(storage, S3Storage)
    return S3Storage(storage.bucket, f"{name}/")
