"""The writer's DuckDB file kept in S3, for Lambda, whose ``/tmp`` does not survive.

Each writer run restores the file from the bucket and, after changing it, persists it with an S3
conditional write: ``If-Match`` on the ETag it restored, or ``If-None-Match: *`` when the bucket
had none. A 412 means another writer persisted first: this run is abandoned — logged, nothing
persisted, nothing published — and the next run starts again from the winner's file.

Switching between local and S3 storage never loses data. A sidecar ``<db>.sync.json`` records
which bucket version the local file is a copy of, and whether an S3 run is under way with it:

- bucket empty, local file with data: the local file is adopted (a create-only PUT);
- the local file is the bucket's version, or an older copy of it, or was left by an S3 run that
  never persisted (crash, lost race): the bucket's copy wins, as it always did;
- otherwise both hold data of their own (local runs after an S3 run, or a bucket that another
  machine filled): the run is refused (``DatabaseDiverged``, exit 75) naming both, and
  ``ocd.py db push`` / ``ocd.py db pull`` make the choice explicit.

A local-storage run forgets the sidecar (``forget_sync``): from then on the local file is data
of its own, never silently replaced.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from chalicelib.errors import (
    DatabaseDamaged,
    DatabaseDiverged,
    ObjectNotFound,
    OCDError,
    PreconditionFailed,
)
from chalicelib.logs import log_event, timed
from chalicelib.storage.base import ObjectInfo, Storage
from chalicelib.write.digests import file_digests
from chalicelib.write.store import verify_file

DB_KEY = "ocd.duckdb"
SYNC_SUFFIX = ".sync.json"
CHECKSUM_SUFFIX = ".sha256"


class WriterConflict(OCDError):
    """Another writer persisted the database first (HTTP 412 on the conditional write)."""


class SyncRecord(BaseModel):
    """What the local file was when it last matched the bucket."""

    model_config = ConfigDict(frozen=True)

    location: str  # the bucket copy's location (storage location + key)
    version: str  # its ETag then
    size: int
    mtime_ns: int
    md5: str
    sha256: str = ""
    in_run: bool  # an S3 run restored it and has not persisted (yet)


class ChecksumRecord(BaseModel):
    """``<key>.sha256`` beside the bucket's copy: what the writer persisted."""

    model_config = ConfigDict(frozen=True)

    version: str
    sha256: str
    bytes: int
    persisted_at: datetime


def sync_path(db: Path) -> Path:
    return db.with_name(db.name + SYNC_SUFFIX)


def forget_sync(db: Path) -> None:
    """The local file is written outside an S3 run: it is no longer a copy of any bucket's."""
    path = sync_path(Path(db))
    if path.exists():
        path.unlink()
        log_event("db_sync_forgotten", path=str(db))


class DatabaseState:
    def __init__(self, storage: Storage, path: Path, key: str = DB_KEY) -> None:
        self.storage = storage
        self.path = Path(path)
        self.key = key
        self.location = f"{storage.location}{key}"
        self.version: str | None = None
        self.restored_bytes = 0
        self.persisted_bytes = 0
        self.adopted = False  # this run put the local file into an empty bucket

    # ---- restore ------------------------------------------------------------------------
    def restore(self) -> str | None:
        """Make the local file the bucket's current version (or adopt the local file into an
        empty bucket); returns that version, or None when neither holds a database."""
        with timed("db_restore", key=self.key) as log:
            info = self.storage.head(self.key)
            exists = self.path.exists()
            if info is None:
                log["found"] = False
                if not exists:
                    self.version = None
                    return None
                return self._adopt(log)
            log.update(found=True, bytes=info.size)
            record = self._record()
            if exists and self._is_copy_of(info, record):
                log["downloaded"] = False
            elif exists and not self._replaceable(record):
                raise self._diverged(info)
            else:
                if exists:
                    reason = "an unfinished S3 run" if record and record.in_run else "older"
                    log_event("db_local_replaced", path=str(self.path), reason=reason)
                self._download()
                log["downloaded"] = True
                self.restored_bytes = info.size
            self.version = info.version
            self._write_record(info.version, in_run=True)
            return info.version

    def _is_copy_of(self, info: ObjectInfo, record: SyncRecord | None) -> bool:
        """Whether the local file holds exactly the bucket's current bytes."""
        st = self.path.stat()
        if record is not None and record.version == info.version and _unchanged(st, record):
            return True
        return st.st_size == info.size and info.version.strip('"') == _md5(self.path)

    def _replaceable(self, record: SyncRecord | None) -> bool:
        """Whether the local file may give way to the bucket's: it is an unchanged copy of an
        older version, or an S3 run restored it and never persisted its changes."""
        if record is None:
            return False
        return record.in_run or _unchanged(self.path.stat(), record)

    def _adopt(self, log: dict[str, object]) -> str:
        """Bucket empty, local file present: it becomes the bucket's first version."""
        info = self.storage.put_file(self.key, self.path, if_none_match=True)
        log.update(adopted=True, bytes=info.size)
        self.adopted = True
        log_event("db_adopted", path=str(self.path), location=self.location, bytes=info.size)
        self.version = info.version
        self.persisted_bytes = info.size
        self._write_record(info.version, in_run=True)
        return info.version

    def _download(self) -> None:
        """Fetch the bucket's copy beside the local file, check it (the checksum recorded at
        persist, then DuckDB's own block checksums over every table), and only then replace
        the local file: a damaged copy is never opened, written to or persisted back."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        incoming = self.path.with_name(self.path.name + ".download")
        try:
            info = self.storage.get_file(self.key, incoming)
            problem = self._recorded_checksum_problem(incoming, info) or verify_file(incoming)
            if problem is not None:
                log_event("db_damaged", level=logging.ERROR, location=self.location,
                          reason=problem)  # fmt: skip
                raise DatabaseDamaged(self.location, problem)
            os.replace(incoming, self.path)
        finally:
            incoming.unlink(missing_ok=True)
        self.path.with_name(self.path.name + ".wal").unlink(missing_ok=True)

    def _recorded_checksum_problem(self, path: Path, info: ObjectInfo) -> str | None:
        record = self.checksum_record()
        if record is None or record.version != info.version:
            return None  # not recorded for this version: DuckDB's check decides
        actual = file_digests(path)[1]
        if actual != record.sha256:
            return f"sha256 {actual[:12]}… differs from {record.sha256[:12]}… recorded at persist"
        return None

    def checksum_record(self) -> ChecksumRecord | None:
        """What the writer recorded when it persisted the bucket's copy."""
        try:
            data = self.storage.get(self.key + CHECKSUM_SUFFIX).data
            return ChecksumRecord.model_validate_json(data)
        except (ObjectNotFound, ValidationError, ValueError):
            return None

    def _diverged(self, info: ObjectInfo) -> DatabaseDiverged:
        st = self.path.stat()
        local_time = datetime.fromtimestamp(st.st_mtime, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        remote_time = info.last_modified.strftime("%Y-%m-%dT%H:%M:%SZ")
        return DatabaseDiverged(
            f"the local database {self.path} ({st.st_size:,} bytes, modified {local_time}) and "
            f"{self.location} ({info.size:,} bytes, modified {remote_time}) both hold data and "
            "differ; run `ocd.py db push` to replace the bucket's copy with the local file, or "
            "`ocd.py db pull` to replace the local file with the bucket's (add --force to "
            "overwrite)"
        )

    # ---- persist ------------------------------------------------------------------------
    def _landed(self) -> ObjectInfo | None:
        """The bucket's object if it holds exactly our file (S3's single-part ETag is its MD5):
        a retried PUT whose first attempt succeeded gets 412 against its own write."""
        info = self.storage.head(self.key)
        if info is None or info.size != self.path.stat().st_size:
            return None
        return info if info.version.strip('"') == _md5(self.path) else None

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
                    return self._persisted(landed)
                log.update(conflict=True)
                log_event("writer_conflict", key=self.key, restored=self.version)
                raise WriterConflict(f"another writer persisted {self.key} first") from exc
            log.update(bytes=info.size, conflict=False)
            return self._persisted(info)

    def _persisted(self, info: ObjectInfo) -> str:
        self.version = info.version
        self.persisted_bytes = info.size
        record = self._write_record(info.version, in_run=False)
        checksum = ChecksumRecord(version=info.version, sha256=record.sha256, bytes=info.size,
                                  persisted_at=datetime.now(UTC))  # fmt: skip
        try:  # best effort: without it, a restore falls back to DuckDB's own check
            self.storage.put(self.key + CHECKSUM_SUFFIX, checksum.model_dump_json().encode())
        except OCDError as exc:
            log_event("db_checksum_unrecorded", level=logging.WARNING, error=str(exc))
        return info.version

    # ---- explicit choices (ocd.py db push / pull) ---------------------------------------
    def push(self, *, force: bool = False) -> str:
        """Make the bucket's copy the local file. Without ``force``, only into an empty bucket
        or over the very version the local file came from."""
        if not self.path.exists():
            raise OCDError(f"no local database at {self.path} to push")
        info = self.storage.head(self.key)
        if info is None:
            self.version = None
        elif self._is_copy_of(info, self._record()):
            self.version = info.version
            self._write_record(info.version, in_run=False)
            return info.version
        elif not force:
            raise OCDError(
                f"{self.location} holds a different database ({info.size:,} bytes); "
                "`ocd.py db push --force` replaces it with the local file"
            )
        else:
            self.version = info.version
        version = self.persist()
        log_event("db_pushed", path=str(self.path), location=self.location, forced=force)
        return version

    def pull(self, *, force: bool = False) -> str:
        """Make the local file the bucket's copy. Without ``force``, only when there is no
        local file or it holds the same bytes."""
        info = self.storage.head(self.key)
        if info is None:
            raise OCDError(f"no database at {self.location} to pull")
        if self.path.exists() and not self._is_copy_of(info, self._record()) and not force:
            raise OCDError(
                f"the local database {self.path} differs from {self.location}; "
                "`ocd.py db pull --force` replaces it with the bucket's copy"
            )
        self._download()
        self.version = info.version
        self._write_record(info.version, in_run=False)
        log_event("db_pulled", path=str(self.path), location=self.location, forced=force)
        return info.version

    # ---- the sidecar ----------------------------------------------------------------------
    def _record(self) -> SyncRecord | None:
        try:
            record = SyncRecord.model_validate_json(sync_path(self.path).read_bytes())
        except (FileNotFoundError, ValidationError, ValueError):
            return None
        return record if record.location == self.location else None

    def _write_record(self, version: str, *, in_run: bool) -> SyncRecord:
        st = self.path.stat()
        md5, sha = file_digests(self.path)
        record = SyncRecord(
            location=self.location,
            version=version,
            size=st.st_size,
            mtime_ns=st.st_mtime_ns,
            md5=md5,
            sha256=sha,
            in_run=in_run,
        )
        tmp = sync_path(self.path).with_suffix(".tmp")
        tmp.write_text(record.model_dump_json())
        os.replace(tmp, sync_path(self.path))
        return record


def _unchanged(st: os.stat_result, record: SyncRecord) -> bool:
    return st.st_size == record.size and st.st_mtime_ns == record.mtime_ns


def _md5(path: Path) -> str:
    return file_digests(path)[0]
