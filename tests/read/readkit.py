"""Helpers for the read-side suite: sites with real exports, damage, and HTTP shortcuts.

A *site* is one export location (a local directory or an S3 bucket in moto) with the settings
that point at it. Exports are produced by the real writer (``Scheduler`` + ``JSONExporter``)
from two DuckDB files built once per session: ``db1`` collected at T1 with a first batch of
alerts, ``db2`` = ``db1`` plus a collection at T2 and more alerts. Exporting ``db1`` then ``db2``
gives two generations whose documents all differ, which the fallback tests need.
"""

from __future__ import annotations

import functools
import gzip
import os
import shutil
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import pytest
from chalice.test import Client, HTTPResponse

from chalicelib.config import Settings, load_settings
from chalicelib.exportformat import Manifest, load_manifest
from chalicelib.read.reader import ExportReader
from chalicelib.storage.base import ObjectInfo, Storage, StoredObject
from chalicelib.storage.factory import make_storage

ROOT = Path(__file__).resolve().parents[2]
WATCHLIST = ("SPY", "AAPL", "JPM")
T1 = datetime(2026, 11, 25, 21, 0, tzinfo=UTC)  # Wednesday close
# Friday after Thanksgiving: its 13:00 New York early close
T2 = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
# The shared site's two exports, pinned (its data is "stale" by now; tests that need "ok"
# export again with the wall clock).
GEN1_AT = datetime(2026, 11, 25, 21, 10, tzinfo=UTC)
GEN2_AT = datetime(2026, 11, 27, 21, 10, tzinfo=UTC)

# (id, ticker, detector, score, created_at); the scan id is filled in from the store.
ALERTS_1 = (
    ("a1-spy-rich", "SPY", "rich_premium", 72.5, datetime(2026, 11, 25, 21, 1)),
    ("a1-aapl-skew", "AAPL", "skew_anomaly", 41.0, datetime(2026, 11, 25, 21, 2)),
    ("a1-jpm-spike", "JPM", "regime_shift", 88.25, datetime(2026, 11, 25, 21, 3)),
)
ALERTS_2 = (
    ("a2-spy-spike", "SPY", "regime_shift", 95.0, datetime(2026, 11, 27, 21, 1)),
    ("a2-aapl-rich", "AAPL", "rich_premium", 55.5, datetime(2026, 11, 27, 21, 2)),
    ("a2-spy-skew", "SPY", "skew_anomaly", 30.0, datetime(2026, 11, 27, 21, 3)),
    ("a2-jpm-rich", "JPM", "rich_premium", 64.0, datetime(2026, 11, 27, 21, 4)),
)


class Alert(NamedTuple):
    id: str
    ticker: str
    detector: str
    score: float


@functools.cache
def stored_alerts(db: Path) -> tuple[Alert, ...]:
    """The alerts a store holds (the analytics' and ours), newest first as exported."""
    from chalicelib.write.store import Store

    with Store(db, read_only=True) as store:
        rows = store.rows(
            "SELECT id, ticker, detector_name, score FROM alerts "
            "ORDER BY created_at DESC, score DESC, id"
        )
    return tuple(Alert(*row) for row in rows)


@dataclass(frozen=True)
class Stores:
    db1: Path
    db2: Path


def base_env(data_dir: Path) -> dict[str, str]:
    return {
        "OCD_DATA_DIR": str(data_dir),
        "OCD_WATCHLIST": ",".join(WATCHLIST),
        "OCD_BACKFILL_DAYS": "60",
        "OCD_LOG_LEVEL": "WARNING",
    }


def insert_alerts(store: Any, alerts: tuple[tuple[Any, ...], ...]) -> None:
    scan_id = store.rows("SELECT scan_id FROM scans ORDER BY started_at DESC LIMIT 1")[0][0]
    for alert_id, ticker, detector, score, created in alerts:
        store.rows(
            "INSERT INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                alert_id,
                scan_id,
                ticker,
                detector,
                score,
                orjson.dumps({"iv_rank": score / 100, "z": round(score / 25, 2)}).decode(),
                orjson.dumps({"why": f"{detector} on {ticker}"}).decode(),
                orjson.dumps([{"name": "short_put", "dte": 30}]).decode(),
                created,
            ],
        )


def build_stores(base: Path) -> Stores:
    """Two DuckDB files produced by the real collector (and hand-made alerts)."""
    from chalicelib.write.scheduler import Scheduler
    from chalicelib.write.store import Store

    settings = load_settings(base_env(base / "build"))
    db1, db2 = base / "db1.duckdb", base / "db2.duckdb"
    with Store(db1) as store:
        Scheduler(settings, store).collect(T1)
        insert_alerts(store, ALERTS_1)
        store.checkpoint()
    shutil.copyfile(db1, db2)
    with Store(db2) as store:
        Scheduler(settings, store).collect(T2)
        insert_alerts(store, ALERTS_2)
        store.checkpoint()
    return Stores(db1, db2)


@dataclass
class Site:
    """One export location and the OCD_* environment that points the app at it."""

    backend: str
    env: dict[str, str]
    stores: Stores
    generations: list[str] = field(default_factory=list)

    def copy(self) -> Site:
        """The same location, with its own list of generations (storage objects are shared)."""
        return Site(self.backend, dict(self.env), self.stores, list(self.generations))

    @cached_property
    def settings(self) -> Settings:
        return load_settings(self.env)

    @cached_property
    def storage(self) -> Storage:
        return make_storage(self.settings)

    def reader(self, **kwargs: Any) -> ExportReader:
        """A fresh reader (empty cache) on this site."""
        return ExportReader(make_storage(self.settings), **kwargs)

    def export(
        self, db: Path | None = None, clock: Callable[[], datetime] | None = None
    ) -> Manifest:
        from chalicelib.write.exporter import JSONExporter
        from chalicelib.write.store import Store

        with Store(db or self.stores.db2, read_only=True) as store:
            if clock is None:
                JSONExporter(store, self.storage, self.settings).export_all()
            else:
                JSONExporter(store, self.storage, self.settings, clock=clock).export_all()
        manifest = self.manifest()
        self.generations.append(manifest.generation)
        return manifest

    def manifest(self) -> Manifest:
        manifest = load_manifest(self.storage)
        assert manifest is not None
        return manifest

    def archived_manifest(self, generation: str) -> Manifest:
        from chalicelib.exportformat import archived_manifests

        return next(m for m in archived_manifests(self.storage) if m.generation == generation)

    def read(self, key: str) -> bytes:
        return self.storage.get(key).data

    def write(self, key: str, data: bytes) -> None:
        encoding = "gzip" if key.endswith(".gz") else None
        self.storage.put(key, data, content_encoding=encoding)

    def delete(self, key: str) -> None:
        self.storage.delete(key)

    def keys(self, prefix: str = "") -> list[str]:
        return [info.key for info in self.storage.list(prefix)]

    def snapshot(self, data: dict[str, bytes] | None = None) -> Snapshot:
        """Every object's bytes and version, to put the site back after a test damaged it
        (``data``: the bytes, when they are known to be those already)."""
        infos = self.storage.list()
        if data is None:
            data = {i.key: self.read(i.key) for i in infos}
        assert set(data) == {i.key for i in infos}
        return Snapshot({i.key: i.version for i in infos}, data)

    def restore(self, snapshot: Snapshot) -> None:
        """Undo damage: remove what was added, rewrite what changed or went missing."""
        now = {info.key: info.version for info in self.storage.list()}
        added = [key for key in now if key not in snapshot.versions]
        if added:
            self.storage.delete_many(added)
        for key, version in snapshot.versions.items():
            if now.get(key) != version:
                self.write(key, snapshot.data[key])


@dataclass(frozen=True)
class Snapshot:
    versions: dict[str, str]
    data: dict[str, bytes]


def new_bucket() -> str:
    return f"ocd-read-{uuid.uuid4().hex[:12]}"


def site_env(backend: str, data_dir: Path) -> dict[str, str]:
    env = {**base_env(data_dir), "OCD_STORAGE": backend, "OCD_MANIFEST_TTL_SECONDS": "0"}
    if backend == "s3":
        env["OCD_BUCKET"] = new_bucket()
    return env


def activate(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the app (which reads settings per request) at ``site``."""
    for name in list(os.environ):
        if name.startswith("OCD_"):
            monkeypatch.delenv(name)
    for name, value in site.env.items():
        monkeypatch.setenv(name, value)


# ---- damage ---------------------------------------------------------------------------------
DAMAGES = ("missing", "truncated", "random", "other_content")


def damage(site: Site, key: str, how: str) -> None:
    """Break the object at ``key``: gone, cut short, noise, or valid but different content."""
    if how == "missing":
        site.delete(key)
        return
    data = site.read(key)
    gz = key.endswith(".gz")
    if how == "truncated":
        site.write(key, data[: len(data) // 2])
    elif how == "random":
        site.write(key, os.urandom(max(64, len(data) // 10)))
    elif how == "other_content":
        doc = orjson.loads(gzip.decompress(data) if gz else data)
        doc["count"] = -1  # still a valid document of the same kind: only the sha tells
        raw = orjson.dumps(doc)
        site.write(key, gzip.compress(raw) if gz else raw)
    else:
        raise ValueError(how)


# ---- HTTP -----------------------------------------------------------------------------------
def make_client() -> Client:
    from app import app

    return Client(app, project_dir=str(ROOT))


def fresh_app(monkeypatch: pytest.MonkeyPatch, **env: str) -> Any:
    """A new import of ``app.py`` made with ``env`` set: what a process started with that
    environment declares at import (CORS), which the session's app cannot show."""
    import importlib.util

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location(f"app_{uuid.uuid4().hex}", ROOT / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.app


def preflight(app: Any, path: str, origin: str, headers: str) -> dict[str, Any]:
    """What the gateway answers a browser's CORS preflight (Chalice's test client cannot: it
    expects a body); a dict with ``statusCode`` and ``headers``."""
    from chalice.config import Config
    from chalice.local import LocalGateway

    request = {"Origin": origin, "Access-Control-Request-Method": "GET",
               "Access-Control-Request-Headers": headers}  # fmt: skip
    return LocalGateway(app, Config()).handle_request("OPTIONS", path, request, b"")


def get(client: Client, path: str, **headers: str) -> HTTPResponse:
    return client.http.get(path, headers=headers)


def body(response: HTTPResponse) -> dict[str, Any]:
    """The JSON object of a response; fails the test if it is not one."""
    value = orjson.loads(response.body)
    assert isinstance(value, dict), response.body[:200]
    return value


class CountingStorage(Storage):
    """Read-only pass-through that counts calls, to see what a reader touches."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.backend = inner.backend
        self.calls: Counter[tuple[str, str]] = Counter()

    @property
    def location(self) -> str:
        return self.inner.location

    def gets(self) -> list[str]:
        return sorted(key for (op, key), n in self.calls.items() if op == "get" for _ in range(n))

    def _get(self, key: str) -> StoredObject:
        self.calls["get", key] += 1
        return self.inner.get(key)

    def _head(self, key: str) -> ObjectInfo | None:
        self.calls["head", key] += 1
        return self.inner.head(key)

    def _list(self, prefix: str) -> Iterable[ObjectInfo]:
        self.calls["list", prefix] += 1
        return self.inner.list(prefix)

    def _put(self, key: str, data: bytes, **kwargs: Any) -> ObjectInfo:
        raise NotImplementedError("read-only")

    def _delete(self, key: str) -> None:
        raise NotImplementedError("read-only")

    def _delete_many(self, keys: list[str]) -> int:
        raise NotImplementedError("read-only")

    def _put_file(self, key: str, path: Path, **kwargs: Any) -> ObjectInfo:
        raise NotImplementedError("read-only")

    def _get_file(self, key: str, path: Path) -> ObjectInfo:
        raise NotImplementedError("read-only")
