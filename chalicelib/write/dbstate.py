"""The writer's DuckDB file kept in S3, for Lambda, whose ``/tmp`` does not survive.

Each writer run restores the file from the bucket (skipping the download when this warm process
already holds that version) and, after changing it, persists it with an S3 conditional write:
``If-Match`` on the ETag it restored, or ``If-None-Match: *`` when the bucket had none. A 412 means
another writer persisted first: this run is abandoned — logged, nothing persisted, nothing
published — and the next run starts again from the winner's file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from chalicelib.errors import OCDError, PreconditionFailed
from chalicelib.logs import log_event, timed
from chalicelib.storage.base import ObjectInfo, Storage

DB_KEY = "ocd.duckdb"
_KNOWN: dict[tuple[str, str], str] = {}  # (location, local path) -> version this process holds


class WriterConflict(OCDError):
    """Another writer persisted the database first (HTTP 412 on the conditional write)."""


class DatabaseState:
    def __init__(self, storage: Storage, path: Path, key: str = DB_KEY) -> None:
        self.storage = storage
        self.path = Path(path)
        self.key = key
        self._slot = (f"{storage.location}{key}", str(self.path))
        self.version: str | None = None

    def restore(self) -> str | None:
        """Make the local file the bucket's current version; returns that version (or None)."""
        with timed("db_restore", key=self.key) as log:
            info = self.storage.head(self.key)
            if info is None:
                self.version = None
                if self.path.exists() and self._slot not in _KNOWN:
                    self.path.unlink()  # a stale local file must not be persisted as new
                log["found"] = False
                return None
            if _KNOWN.get(self._slot) == info.version and self.path.exists():
                log.update(found=True, downloaded=False, bytes=info.size)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                info = self.storage.get_file(self.key, self.path)
                for extra in (self.path.with_name(self.path.name + ".wal"),):
                    extra.unlink(missing_ok=True)
                log.update(found=True, downloaded=True, bytes=info.size)
            self.version = info.version
            _KNOWN[self._slot] = info.version
            return info.version

    def _landed(self) -> ObjectInfo | None:
        """The bucket's object if it holds exactly our file (S3's single-part ETag is its MD5):
        a retried PUT whose first attempt succeeded gets 412 against its own write."""
        info = self.storage.head(self.key)
        if info is None or info.size != self.path.stat().st_size:
            return None
        digest = hashlib.md5(usedforsecurity=False)
        with open(self.path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        return info if info.version.strip('"') == digest.hexdigest() else None

    def persist(self) -> str:
        """Upload the local file if nobody else persisted since ``restore``."""
        with timed("db_persist", key=self.key) as log:
            try:
                if self.version is None:
                    info = self.storage.put_file(self.key, self.path, if_none_match=True)
                else:
                    info = self.storage.put_file(self.key, self.path, if_match=self.version)
            except PreconditionFailed as exc:
                landed = self._landed()
                if landed is not None:  # our write arrived; only its answer was lost
                    log.update(bytes=landed.size, conflict=False, recovered=True)
                    self.version = landed.version
                    _KNOWN[self._slot] = landed.version
                    return landed.version
                _KNOWN.pop(self._slot, None)
                log.update(conflict=True)
                log_event("writer_conflict", key=self.key, restored=self.version)
                raise WriterConflict(f"another writer persisted {self.key} first") from exc
            log.update(bytes=info.size, conflict=False)
            self.version = info.version
            _KNOWN[self._slot] = info.version
            return info.version
