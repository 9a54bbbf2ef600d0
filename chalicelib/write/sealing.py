"""Sealing: closed sessions leave the hot store only as verified, immutable Parquet.

A session is *settled* once it has closed and either every ticker's close has been collected or
the next session has opened (after that no snapshot of it can still arrive). Its snapshots are
then sealed into the storage backend (``historyformat`` has the layout):

1. the rows are copied into a local Parquet file (zstd), whose row count is checked;
2. the file is uploaded under a key derived from the snapshots it holds (create-only);
3. it is read back from the storage and its sha256 and row count checked again;
4. the store records the file and its snapshots (one transaction);
5. ``history/manifest.json`` is rewritten from the store's records, last.

Retention deletes only snapshots whose file the published manifest names. A crash at any step
leaves the rows in the hot store: before step 4 the file is an orphan (no record names it) and
the next seal of its partition removes it or writes the same key again; after step 4 the next
run rewrites the manifest. Nothing is counted twice: an orphan is never named, and a record is
never duplicated. A seal with nothing pending writes nothing (re-running it is a no-op).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np

from chalicelib import historyformat as hf
from chalicelib.domain import calendar as cal
from chalicelib.errors import OCDError, PreconditionFailed
from chalicelib.logs import log_event
from chalicelib.storage.base import Storage
from chalicelib.write.digests import file_sha256
from chalicelib.write.leftovers import SEAL_TEMP_PREFIX
from chalicelib.write.store import Store

# Rows per sealed file at most: bounds the writer's memory and disk, and a reader's download.
ROWS_PER_FILE = 4_000_000

Step = Callable[[str], None]  # called as each step completes (crash tests stop the world there)

SESSION_TICKERS = """
    SELECT session, ticker, max(as_of) AS last_as_of
    FROM chain_snapshots GROUP BY session, ticker ORDER BY session, ticker
"""
# Each ticker's closing chain of a settled session: the session's last snapshot (the last at or
# after the close when there is one, since those come last), unless one is sealed already.
PENDING_CHAINS = """
    SELECT c.session, c.ticker, max(c.as_of) AS as_of, arg_max(c.contracts, c.as_of) AS rows
    FROM chain_snapshots c
    WHERE c.session IN (SELECT unnest(?::DATE[]))
      AND NOT EXISTS (SELECT 1 FROM sealed_snapshots s WHERE s.kind = 'chains'
                      AND s.ticker = c.ticker AND s.session = c.session)
    GROUP BY c.session, c.ticker
    ORDER BY c.session, c.ticker
"""
PENDING_INTRADAY = """
    SELECT c.session, c.ticker, c.as_of, c.contracts AS rows
    FROM chain_snapshots c
    WHERE c.session IN (SELECT unnest(?::DATE[]))
      AND NOT EXISTS (SELECT 1 FROM sealed_snapshots s WHERE s.kind = 'intraday'
                      AND s.ticker = c.ticker AND s.as_of = c.as_of)
    ORDER BY c.session, c.ticker, c.as_of
"""
_SELECTED = """
    FROM option_quotes q
    JOIN seal_batch b ON q.ticker = b.ticker AND q.as_of = b.as_of
    JOIN chain_snapshots s ON s.ticker = q.ticker AND s.as_of = q.as_of
    WHERE q.as_of BETWEEN ? AND ?
"""
COPY_BATCH = f"""
    COPY (
        SELECT q.ticker, q.as_of::TIMESTAMPTZ AS as_of, q.expiration, q.strike, q."right",
               q.bid, q.ask, q.last, q.volume, q.open_interest, q.implied_volatility, q.delta,
               q.gamma, q.theta, q.vega, q.rho, s.underlying_price
        {_SELECTED}
        ORDER BY q.ticker, q.as_of, q.expiration, q.strike, q."right"
    ) TO ? (FORMAT parquet, COMPRESSION zstd)
"""
COUNT_BATCH = f"SELECT count(*) {_SELECTED}"
RECORD_FILE = "INSERT INTO sealed_files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
RECORD_SNAPSHOTS = """
    INSERT INTO sealed_snapshots SELECT ?, ticker, as_of, ?::DATE, ? FROM seal_batch
"""
SEALED_FILES = """
    SELECT key, kind, session, sha256, bytes, rows, snapshots, schema_version
    FROM sealed_files ORDER BY session, kind, key
"""
# Sealed intraday files of sessions before a cutoff that no snapshot of the hot store still
# points at (a session's closing chain stays for the EOD window, and names its intraday file).
EXPIRABLE = """
    SELECT f.key FROM sealed_files f
    WHERE f.kind = 'intraday' AND f.session < ?::DATE
      AND NOT EXISTS (SELECT 1 FROM sealed_snapshots s WHERE s.key = f.key)
"""
MARK_EXPIRED = """
    INSERT OR IGNORE INTO expired_files
    SELECT key, kind, session, bytes, ?::TIMESTAMP FROM sealed_files
    WHERE key IN (SELECT unnest(?::VARCHAR[]))
"""
FORGET_SEALED = "DELETE FROM sealed_files WHERE key IN (SELECT unnest(?::VARCHAR[]))"
EXPIRED_FILES = "SELECT key, session, bytes FROM expired_files ORDER BY key"
FORGET_EXPIRED = "DELETE FROM expired_files WHERE key IN (SELECT unnest(?::VARCHAR[]))"


class SealError(OCDError):
    """A sealed file did not read back as written: nothing was recorded, nothing is deleted."""


@dataclass(frozen=True)
class _Snapshot:
    ticker: str
    as_of: datetime  # naive UTC, as stored
    rows: int


@dataclass
class SealResult:
    sessions: list[date] = field(default_factory=list)
    files: int = 0
    rows: int = 0
    bytes: int = 0
    orphans_removed: int = 0
    manifest_written: bool = False
    published: list[hf.SealedFile] = field(default_factory=list)  # what the manifest names
    duration_ms: float = 0.0


@dataclass
class ExpiryResult:
    files: int = 0
    bytes: int = 0
    sessions: list[date] = field(default_factory=list)
    published: list[hf.SealedFile] | None = None  # what the manifest names, when it was written
    duration_ms: float = 0.0
    error: str | None = None  # the run's expiry failed (retried next run)


def settled_sessions(store: Store, now: datetime) -> list[date]:
    """Sessions whose snapshots can all be sealed at ``now`` (see the module docstring)."""
    by_session: dict[date, list[datetime]] = {}
    for session, _ticker, last_as_of in store.rows(SESSION_TICKERS):
        by_session.setdefault(session, []).append(last_as_of.replace(tzinfo=UTC))
    settled = []
    for session, lasts in by_session.items():
        close = cal.session_close(session) if cal.is_trading_day(session) else None
        if close is None:  # a snapshot stamped on a closed day (imports): settled once past
            if now.astimezone(cal.NEW_YORK).date() > session:
                settled.append(session)
            continue
        if now < close:
            continue
        next_open = cal.session_bounds(cal.next_trading_day(session))[0]
        if now >= next_open or all(last >= close for last in lasts):
            settled.append(session)
    return sorted(settled)


class Sealer:
    """Seals settled sessions of one store into one storage backend."""

    def __init__(
        self,
        store: Store,
        storage: Storage,
        *,
        seal_intraday: bool = True,
        work_dir: Path | None = None,
        step: Step = lambda name: None,
        rows_per_file: int = ROWS_PER_FILE,
    ) -> None:
        self.store = store
        self.storage = storage
        self.seal_intraday = seal_intraday
        self.work_dir = work_dir
        self.step = step
        self.rows_per_file = rows_per_file

    def seal(self, now: datetime) -> SealResult:
        started = time.perf_counter()
        result = SealResult()
        sessions = settled_sessions(self.store, now)
        batches = list(self._pending(sessions)) if sessions else []
        if batches:
            result.orphans_removed = self._remove_orphans({(k, d) for k, d, _ in batches})
        for kind, session, snaps in batches:
            sealed = self._seal_batch(kind, session, snaps, now)
            result.files += 1
            result.rows += sealed.rows
            result.bytes += sealed.bytes
            if session not in result.sessions:
                result.sessions.append(session)
        result.manifest_written, result.published = self.publish_manifest(now)
        result.duration_ms = round((time.perf_counter() - started) * 1000, 3)
        if batches or result.manifest_written:
            log_event(
                "seal",
                sessions=[str(s) for s in result.sessions],
                files=result.files,
                rows=result.rows,
                bytes=result.bytes,
                orphans_removed=result.orphans_removed,
                manifest_written=result.manifest_written,
                duration_ms=result.duration_ms,
            )
        return result

    # ---- what to seal ------------------------------------------------------------------
    def _pending(
        self, sessions: Sequence[date]
    ) -> Iterator[tuple[hf.SealKind, date, list[_Snapshot]]]:
        kinds: list[tuple[hf.SealKind, str]] = [("chains", PENDING_CHAINS)]
        if self.seal_intraday:
            kinds.append(("intraday", PENDING_INTRADAY))
        for kind, sql in kinds:
            by_session: dict[date, list[_Snapshot]] = {}
            for session, ticker, as_of, rows in self.store.rows(sql, [list(sessions)]):
                by_session.setdefault(session, []).append(_Snapshot(ticker, as_of, int(rows)))
            for session, snaps in by_session.items():
                for chunk in _chunks(snaps, self.rows_per_file):
                    yield kind, session, chunk

    # ---- one file ----------------------------------------------------------------------
    def _seal_batch(
        self, kind: hf.SealKind, session: date, snaps: list[_Snapshot], now: datetime
    ) -> hf.SealedFile:
        name = hf.part_name(kind, session, [(s.ticker, s.as_of) for s in snaps])
        key = hf.partition_key(kind, session, name)
        batch = {
            "ticker": np.array([s.ticker for s in snaps], dtype=object),
            "as_of": np.array([s.as_of for s in snaps], dtype="datetime64[us]"),
        }
        bounds = [min(s.as_of for s in snaps), max(s.as_of for s in snaps)]
        with (
            tempfile.TemporaryDirectory(prefix=SEAL_TEMP_PREFIX, dir=self.work_dir) as tmp,
            self.store.registered("seal_batch", batch),
        ):
            local = Path(tmp) / f"{name}.parquet"
            expected = int(self.store.rows(COUNT_BATCH, bounds)[0][0])
            self.store.rows(COPY_BATCH, [*bounds, str(local)])
            sha, size = file_sha256(local), local.stat().st_size
            if (written := self.store.parquet_rows(local)) != expected:
                raise SealError(f"{key}: wrote {written} rows, expected {expected}")
            self.step("seal.written")
            self._upload(key, local, sha)
            self.step("seal.uploaded")
            check = Path(tmp) / "readback.parquet"
            self.storage.get_file(key, check)
            if file_sha256(check) != sha or self.store.parquet_rows(check) != expected:
                raise SealError(f"{key} does not read back as written; nothing recorded")
            self.step("seal.verified")
            with self.store.transaction():
                self.store.rows(
                    RECORD_FILE,
                    [key, kind, session, sha, size, expected, len(snaps), hf.SCHEMA_VERSION,
                     now.astimezone(UTC).replace(tzinfo=None)],
                )  # fmt: skip
                self.store.rows(RECORD_SNAPSHOTS, [kind, session, key])
                # a key sealed again (its snapshots back in the hot store) stops being expired
                self.store.rows(FORGET_EXPIRED, [[key]])
            self.step("seal.recorded")
        return hf.SealedFile(
            key=key, kind=kind, date=session, sha256=sha, bytes=size, rows=expected,
            snapshots=len(snaps),
        )  # fmt: skip

    def _upload(self, key: str, local: Path, sha: str) -> None:
        try:
            self.storage.put_file(key, local, if_none_match=True)
        except PreconditionFailed:
            # The same snapshots give the same name and, DuckDB's writer being deterministic,
            # the same bytes; anything else is not ours to overwrite.
            with tempfile.TemporaryDirectory(prefix=SEAL_TEMP_PREFIX, dir=self.work_dir) as tmp:
                existing = Path(tmp) / "existing.parquet"
                self.storage.get_file(key, existing)
                same = file_sha256(existing) == sha
            if not same:
                raise SealError(
                    f"{key} exists with other content; refusing to replace it"
                ) from None

    # ---- expiry --------------------------------------------------------------------------
    def expire(self, before: date | None, now: datetime) -> ExpiryResult:
        """Expire the sealed intraday files of sessions before ``before`` (None: none) whose
        snapshots have all left the hot store, over two runs: this run (1) moves their records
        to ``expired_files`` (one transaction) and (2) rewrites the history manifest without
        them; the next run (3) deletes the files an earlier run moved and (4) forgets them.
        The run that deletes trusts only records an earlier run left: on Lambda the database
        reaches S3 at the end of a run, so a run whose database is lost (a timeout, a lost
        persist) must not have deleted anything its restored database still records as sealed.
        After a kill at any step the manifest names only files that exist, and a later run
        ends what ``expired_files`` holds (even with expiry turned off since). Closing chains
        are never expired."""
        started = time.perf_counter()
        durable = self.store.rows(EXPIRED_FILES)  # moved by an earlier run
        keys = [str(r[0]) for r in self.store.rows(EXPIRABLE, [before])] if before else []
        if keys:
            with self.store.transaction():
                stamp = now.astimezone(UTC).replace(tzinfo=None)
                self.store.rows(MARK_EXPIRED, [stamp, keys])
                self.store.rows(FORGET_SEALED, [keys])
            self.step("expiry.recorded")
        if not keys and not durable:
            return ExpiryResult()
        _, published = self.publish_manifest(now)
        self.step("expiry.manifest")
        result = ExpiryResult(published=published)
        if durable:
            doomed = [str(key) for key, _, _ in durable]
            self.storage.delete_many(doomed)
            self.step("expiry.deleted")
            self.store.rows(FORGET_EXPIRED, [doomed])
            result.files = len(doomed)
            result.bytes = sum(int(size) for _, _, size in durable)
            result.sessions = sorted({session for _, session, _ in durable})
        result.duration_ms = round((time.perf_counter() - started) * 1000, 3)
        log_event(
            "history_expired",
            before=str(before) if before else None,
            marked=len(keys),
            sessions=[str(s) for s in result.sessions],
            files=result.files,
            bytes=result.bytes,
            duration_ms=result.duration_ms,
        )
        return result

    # ---- manifest and leftovers --------------------------------------------------------
    def recorded(self) -> list[hf.SealedFile]:
        fields = ("key", "kind", "date", "sha256", "bytes", "rows", "snapshots", "schema_version")
        return [
            hf.SealedFile(**dict(zip(fields, row, strict=True)))
            for row in self.store.rows(SEALED_FILES)
        ]

    def publish_manifest(self, now: datetime) -> tuple[bool, list[hf.SealedFile]]:
        """Make ``history/manifest.json`` name exactly the recorded files; returns whether it
        was written, and the files it now names."""
        files = self.recorded()
        current = hf.load_history_manifest(self.storage)
        if (current is not None and current.files == files) or (current is None and not files):
            return False, files
        manifest = hf.HistoryManifest(generated_at=now.astimezone(UTC), files=files)
        self.storage.put(hf.MANIFEST_KEY, manifest.body())
        self.step("seal.manifest")
        return True, files

    def _remove_orphans(self, partitions: set[tuple[hf.SealKind, date]]) -> int:
        """Files of the partitions about to be sealed that nothing names — no record, no file
        on its way out (``expired_files``, which ``expire`` deletes once the manifest has let
        go of it), not the published manifest: leftovers of a seal that crashed before step 4
        with other snapshots than the retry's (the same snapshots reuse the key). Files of
        other partitions are never touched, nor files the manifest names: a database that does
        not know them (a new one on the same storage, one restored from before its last seal)
        must not delete sealed history."""
        known = {f.key for f in self.recorded()}
        known |= {str(key) for key, _, _ in self.store.rows(EXPIRED_FILES)}
        published = hf.load_history_manifest(self.storage)
        known |= {f.key for f in published.files} if published else set()
        orphans = [
            info.key
            for kind, session in sorted(partitions)
            for info in self.storage.list(hf.partition_prefix(kind, session))
            if hf.parse_partition_key(info.key) and info.key not in known
        ]
        if orphans:
            self.storage.delete_many(orphans)
            log_event("seal_orphans_removed", keys=len(orphans))
        return len(orphans)


def _chunks(snaps: list[_Snapshot], limit: int) -> Iterator[list[_Snapshot]]:
    chunk: list[_Snapshot] = []
    rows = 0
    for snap in snaps:
        if chunk and rows + snap.rows > limit:
            yield chunk
            chunk, rows = [], 0
        chunk.append(snap)
        rows += snap.rows
    if chunk:
        yield chunk
