"""A writer living through simulated sessions, for the lifecycle suite.

``Life`` runs the real scheduler (collect → flush → analysis → seal → retention) against a real
DuckDB file and a real storage backend, one run at a time like the schedule does, and reads back
what the hot store and the sealed history hold.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import duckdb

from chalicelib import historyformat as hf
from chalicelib.config import Settings, load_settings
from chalicelib.domain import calendar as cal
from chalicelib.storage.base import Storage
from chalicelib.write.scheduler import Scheduler
from chalicelib.write.store import Store

WATCHLIST = ("SPY", "JPM")
# Regular sessions of late 2026 (Thanksgiving is 26 November, its Friday closes at 13:00).
SESSIONS = (date(2026, 11, 16), date(2026, 11, 17), date(2026, 11, 18), date(2026, 11, 19),
            date(2026, 11, 20), date(2026, 11, 23), date(2026, 11, 24))  # fmt: skip
INTRADAY = (time(10, 0), time(13, 0))  # New York


class SimulatedCrash(BaseException):
    """The process dies here: nothing after it runs (not an Exception: no handler catches it)."""


def env_for(root: Path, **overrides: str) -> dict[str, str]:
    env = {
        "OCD_DATA_DIR": str(root),
        "OCD_WATCHLIST": ",".join(WATCHLIST),
        "OCD_BACKFILL_DAYS": "10",
        "OCD_INTRADAY_RETENTION_DAYS": "1",
        "OCD_EOD_RETENTION_DAYS": "2",
        "OCD_LOG_LEVEL": "WARNING",
    }
    env.update({f"OCD_{k.upper()}": v for k, v in overrides.items()})
    return env


def ny(day: date, at: time) -> datetime:
    return datetime.combine(day, at, cal.NEW_YORK).astimezone(UTC)


def after_close(day: date) -> datetime:
    return cal.session_close(day) + timedelta(minutes=5)


class Life:
    def __init__(self, root: Path, storage: Storage, **overrides: str) -> None:
        self.root = root
        self.storage = storage
        self.settings: Settings = load_settings(env_for(root, **overrides))
        self.step: Callable[[str], None] = lambda name: None
        self.collected: set[tuple[str, datetime]] = set()

    @property
    def db(self) -> Path:
        return self.settings.database

    def collect(self, when: datetime) -> dict[str, Any]:
        with Store(self.db) as store:
            summary = Scheduler(
                self.settings, store, history=self.storage, lifecycle_step=self.step
            ).collect(when)
            self.collected |= self._snapshots(store)
        return summary

    def session(self, day: date, times: Iterable[time] = INTRADAY, close: bool = True) -> None:
        for at in times:
            self.collect(ny(day, at))
        if close:
            self.collect(after_close(day))

    def snapshots(self) -> set[tuple[str, datetime]]:
        """(ticker, as_of) of every snapshot in the hot store."""
        with Store(self.db, read_only=True) as store:
            return self._snapshots(store)

    @staticmethod
    def _snapshots(store: Store) -> set[tuple[str, datetime]]:
        return {(t, a) for t, a in store.rows("SELECT ticker, as_of FROM chain_snapshots")}

    def rows(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        with Store(self.db, read_only=True) as store:
            return store.rows(sql, list(params))

    def manifest(self) -> hf.HistoryManifest | None:
        return hf.load_history_manifest(self.storage)

    def sealed_rows(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Every row of the files the history manifest names (with their ``date``), read by
        DuckDB from local copies laid out as in the storage."""
        manifest = self.manifest()
        files = [f for f in (manifest.files if manifest else []) if kind in (None, f.kind)]
        if not files:
            return []
        with tempfile.TemporaryDirectory() as tmp:
            for f in files:
                target = Path(tmp, f.key)
                target.parent.mkdir(parents=True, exist_ok=True)
                self.storage.get_file(f.key, target)
            pattern = f"{tmp}/history/{kind or '*'}/*/*.parquet"
            con = duckdb.connect()
            try:
                con.execute("SET TimeZone = 'UTC'")
                cursor = con.execute(
                    "SELECT * EXCLUDE (filename), regexp_extract(filename, 'history/([a-z]+)/', 1)"
                    " AS kind FROM read_parquet(?, hive_partitioning = true, filename = true)",
                    [pattern],
                )
                names = [d[0] for d in cursor.description]
                return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
            finally:
                con.close()

    def sealed_snapshots(self, kind: str) -> list[tuple[str, datetime]]:
        """(ticker, as_of naive UTC) of each sealed snapshot, once per file it appears in."""
        manifest = self.manifest()
        out: list[tuple[str, datetime]] = []
        for f in manifest.files if manifest else []:
            if f.kind != kind:
                continue
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp, "f.parquet")
                self.storage.get_file(f.key, path)
                con = duckdb.connect()
                try:
                    con.execute("SET TimeZone = 'UTC'")
                    out += [
                        (t, a.astimezone(UTC).replace(tzinfo=None))
                        for t, a in con.execute(
                            "SELECT DISTINCT ticker, as_of FROM read_parquet(?)", [str(path)]
                        ).fetchall()
                    ]
                finally:
                    con.close()
        return out


def crash_at(step: str) -> Callable[[str], None]:
    """A lifecycle step hook that dies (``SimulatedCrash``) the first time ``step`` completes."""
    fired: list[str] = []

    def hook(name: str) -> None:
        if name == step and not fired:
            fired.append(name)
            raise SimulatedCrash(name)

    return hook


def stored_partitions(storage: Storage) -> set[str]:
    """Every sealed file's key in the storage, named by the manifest or not."""
    return {i.key for i in storage.list("history/") if hf.parse_partition_key(i.key)}


def assert_no_orphans(life: Life, storage: Storage) -> None:
    manifest = life.manifest()
    named = {f.key for f in manifest.files} if manifest else set()
    assert stored_partitions(storage) == named


def storage_for(storage: Storage, tmp_path: Path, name: str) -> Storage:
    """A second, independent storage of the same backend for the reference run."""
    from chalicelib.storage.local import LocalStorage
    from chalicelib.storage.s3 import S3Storage

    if isinstance(storage, S3Storage):
        return S3Storage(storage.bucket, f"{name}/")
    return LocalStorage(tmp_path / f"{name}-exports")
