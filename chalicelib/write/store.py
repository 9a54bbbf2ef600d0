"""The DuckDB store: the source of truth, and the only write-side module that imports duckdb.

One process holds the file read-write at a time (DuckDB's rule). A second writer fails fast with
``WriterBusy`` naming the holder. Chains are stored long (one row per contract per snapshot);
the ``chain_snapshots`` primary key (ticker, as_of) makes a re-flush of a snapshot a no-op, which
is far cheaper than a contract-level index (measured: 0.4 s vs 2.4–3.9 s per 1.5M rows).
"""

from __future__ import annotations

import fcntl
import itertools
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, ClassVar

import duckdb
import numpy as np
from numpy.typing import NDArray

from chalicelib.domain import calendar as cal
from chalicelib.domain.chain import ChainBatch
from chalicelib.domain.models import UnderlyingQuote
from chalicelib.errors import DatabaseDamaged, WriterBusy
from chalicelib.write.providers.base import DailyHistory

MIGRATIONS: tuple[str, ...] = (
    # 1: chains, underlyings, daily history, scans, export log
    """
    CREATE TABLE option_quotes (
        ticker VARCHAR NOT NULL, as_of TIMESTAMP NOT NULL, expiration DATE NOT NULL,
        strike DOUBLE NOT NULL, "right" VARCHAR NOT NULL, bid DOUBLE, ask DOUBLE, last DOUBLE,
        volume BIGINT, open_interest BIGINT, implied_volatility DOUBLE, delta DOUBLE,
        gamma DOUBLE, theta DOUBLE, vega DOUBLE, rho DOUBLE
    );
    CREATE TABLE chain_snapshots (
        ticker VARCHAR NOT NULL, as_of TIMESTAMP NOT NULL, contracts INTEGER NOT NULL,
        underlying_price DOUBLE NOT NULL, dividend_yield DOUBLE, underlying_volume BIGINT,
        expirations DATE[], call_volume BIGINT, put_volume BIGINT, call_open_interest BIGINT,
        put_open_interest BIGINT, atm_iv DOUBLE, flushed_at TIMESTAMP NOT NULL,
        PRIMARY KEY (ticker, as_of)
    );
    CREATE TABLE daily_history (
        ticker VARCHAR NOT NULL, day DATE NOT NULL, close DOUBLE, atm_iv DOUBLE,
        skew_25d DOUBLE, source VARCHAR NOT NULL, PRIMARY KEY (ticker, day)
    );
    CREATE TABLE scans (
        scan_id VARCHAR PRIMARY KEY, started_at TIMESTAMP NOT NULL, finished_at TIMESTAMP,
        status VARCHAR NOT NULL, tickers_scanned INTEGER, chains_collected INTEGER,
        alerts_generated INTEGER, runtime_seconds DOUBLE, errors VARCHAR[]
    );
    CREATE TABLE features (
        ticker VARCHAR NOT NULL, as_of TIMESTAMP NOT NULL, features JSON NOT NULL,
        missing JSON, PRIMARY KEY (ticker, as_of)
    );
    CREATE TABLE alerts (
        id VARCHAR PRIMARY KEY, scan_id VARCHAR NOT NULL, ticker VARCHAR NOT NULL,
        detector_name VARCHAR NOT NULL, score DOUBLE NOT NULL, metrics JSON NOT NULL,
        explanation JSON NOT NULL, strategies JSON NOT NULL, created_at TIMESTAMP NOT NULL
    );
    CREATE TABLE export_log (
        generation VARCHAR PRIMARY KEY, generated_at TIMESTAMP NOT NULL, ok BOOLEAN NOT NULL,
        duration_ms DOUBLE, objects_written INTEGER, objects_skipped INTEGER, bytes_written BIGINT,
        error VARCHAR
    );
    """,
    # 2: staging for imported files (``ocd.py import``), replayed by the file provider. A
    # snapshot is imported whole or not at all: its (ticker, as_of) key makes re-imports no-ops.
    """
    CREATE TABLE import_quotes (
        ticker VARCHAR NOT NULL, as_of TIMESTAMP NOT NULL, expiration DATE NOT NULL,
        strike DOUBLE NOT NULL, "right" VARCHAR NOT NULL, bid DOUBLE, ask DOUBLE, last DOUBLE,
        volume BIGINT, open_interest BIGINT, implied_volatility DOUBLE, delta DOUBLE,
        gamma DOUBLE, theta DOUBLE, vega DOUBLE, rho DOUBLE
    );
    CREATE TABLE import_snapshots (
        ticker VARCHAR NOT NULL, as_of TIMESTAMP NOT NULL, underlying_price DOUBLE NOT NULL,
        dividend_yield DOUBLE NOT NULL, contracts INTEGER NOT NULL, format VARCHAR NOT NULL,
        source VARCHAR NOT NULL, imported_at TIMESTAMP NOT NULL, PRIMARY KEY (ticker, as_of)
    );
    """,
    # 3: the data lifecycle. Snapshots carry their New York session date (what retention and
    # sealing work by); daily history carries the session's real close time, whether it is
    # still provisional (from an intraday snapshot) and the day's volume and open interest, so
    # the daily aggregates outlive the chains they came from; sealing records which snapshots
    # went into which immutable Parquet file. ``export_log`` was never written.
    """
    ALTER TABLE chain_snapshots ADD COLUMN session DATE;
    UPDATE chain_snapshots SET session = timezone('America/New_York', as_of::TIMESTAMPTZ)::DATE;
    ALTER TABLE daily_history ADD COLUMN close_at TIMESTAMP;
    ALTER TABLE daily_history ADD COLUMN as_of TIMESTAMP;
    ALTER TABLE daily_history ADD COLUMN provisional BOOLEAN DEFAULT false;
    ALTER TABLE daily_history ADD COLUMN call_volume BIGINT;
    ALTER TABLE daily_history ADD COLUMN put_volume BIGINT;
    ALTER TABLE daily_history ADD COLUMN call_open_interest BIGINT;
    ALTER TABLE daily_history ADD COLUMN put_open_interest BIGINT;
    UPDATE daily_history SET provisional = false;
    CREATE TABLE sealed_files (
        key VARCHAR PRIMARY KEY, kind VARCHAR NOT NULL, session DATE NOT NULL,
        sha256 VARCHAR NOT NULL, bytes BIGINT NOT NULL, rows BIGINT NOT NULL,
        snapshots INTEGER NOT NULL, schema_version INTEGER NOT NULL, sealed_at TIMESTAMP NOT NULL
    );
    CREATE TABLE sealed_snapshots (
        kind VARCHAR NOT NULL, ticker VARCHAR NOT NULL, as_of TIMESTAMP NOT NULL,
        session DATE NOT NULL, key VARCHAR NOT NULL, PRIMARY KEY (kind, ticker, as_of)
    );
    DROP TABLE export_log;
    """,
    # 4: the edge state of each (ticker, detector) pair (``analytics.detectors.edges.ArmState``):
    # alerts report changes, so a pair remembers whether it is armed, what it last alerted on
    # and how many sessions its condition has been clear. Written with the alerts, kept forever.
    """
    CREATE TABLE detector_state (
        ticker VARCHAR NOT NULL, detector_name VARCHAR NOT NULL, armed BOOLEAN NOT NULL,
        kind VARCHAR NOT NULL, fired_at TIMESTAMP, fired_value DOUBLE, quiet_value DOUBLE,
        seen_at TIMESTAMP NOT NULL, held BOOLEAN NOT NULL, cleared_sessions INTEGER NOT NULL,
        PRIMARY KEY (ticker, detector_name)
    );
    """,
    # 5: the alert delivery outbox (``chalicelib/write/delivery``): one row per (alert, sink),
    # inserted in the alert's own transaction; ``status`` pending → delivered | dead. Times are
    # the writer's clock (the pinned as-of in replays), which the retry backoff is measured on.
    """
    CREATE TABLE delivery_outbox (
        alert_id VARCHAR NOT NULL, sink VARCHAR NOT NULL, status VARCHAR NOT NULL,
        attempts INTEGER NOT NULL, generation VARCHAR, last_attempt_at TIMESTAMP,
        next_attempt_at TIMESTAMP, last_error VARCHAR, last_error_at TIMESTAMP,
        delivered_at TIMESTAMP, receipt VARCHAR, PRIMARY KEY (alert_id, sink)
    );
    """,
    # 6: each features row's scalar features apart (``catalogue.SCALAR_FEATURES``, an object),
    # what ``features.json`` is built from. Older rows keep NULL: the export reads their
    # features instead (filling them in would rewrite the whole table).
    """
    ALTER TABLE features ADD COLUMN scalars JSON;
    """,
    # 7: sealed files on their way out (``Sealer.expire``): moved here from ``sealed_files`` in
    # one transaction by one run (which rewrites the history manifest without them), deleted
    # from the storage and forgotten by a later run, so a run whose database is lost (Lambda)
    # never deletes a file its restored database still records as sealed.
    """
    CREATE TABLE expired_files (
        key VARCHAR PRIMARY KEY, kind VARCHAR NOT NULL, session DATE NOT NULL,
        bytes BIGINT NOT NULL, expired_at TIMESTAMP NOT NULL
    );
    """,
)

# Callers catch this (any DuckDB failure: I/O, parse, conversion) without importing duckdb.
DatabaseError = duckdb.Error

_UNIX_ORDINAL = date(1970, 1, 1).toordinal()
_LOCK_HOLDER = re.compile(r"\(PID (\d+)\)")


@dataclass(frozen=True)
class FlushResult:
    rows: int
    rows_skipped: int
    snapshots: int
    bytes: int
    duration_ms: float


@dataclass(frozen=True)
class DatabaseSize:
    bytes: int  # the file on disk
    total_blocks: int
    free_blocks: int  # deleted space DuckDB will reuse but never give back
    block_size: int

    @property
    def free_bytes(self) -> int:
        return self.free_blocks * self.block_size

    @property
    def free_fraction(self) -> float:
        return self.free_blocks / self.total_blocks if self.total_blocks else 0.0


@dataclass(frozen=True)
class CompactionResult:
    bytes_before: int
    bytes_after: int
    duration_ms: float


class Store:
    """A read-write DuckDB connection with the project's schema applied.

    A read-write store also holds ``<file>.writer.lock`` (an ``flock`` naming its PID) for as long
    as it is open, so the one-writer rule outlives the moment a compaction swaps the file, when
    DuckDB's own lock is briefly released.
    """

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._lock: _WriterLock | None = None
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock = _WriterLock.acquire(self.path)
        try:
            if not read_only:
                _clean_compaction_leftovers(self.path)
            self.con = _connect(self.path, read_only)
            self.con.execute("SET enable_progress_bar = false")
            if not read_only:
                self._migrate()
        except BaseException:
            if self._lock is not None:
                self._lock.release()
            raise

    def close(self) -> None:
        self.con.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- schema ------------------------------------------------------------------------
    def _migrate(self) -> None:
        exists = _scalar(
            self.con,
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'schema_version' "
            "AND database_name = current_database()",
        )
        if not exists:  # an up-to-date file is opened without a write
            self.con.execute(
                "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, "
                "applied_at TIMESTAMP NOT NULL)"
            )
        current = self.schema_version
        if current >= len(MIGRATIONS):
            return
        for version, ddl in enumerate(MIGRATIONS, start=1):
            if version <= current:
                continue
            self.con.execute("BEGIN TRANSACTION")
            try:
                self.con.execute(ddl)
                if version == 3:
                    self._stamp_close_times()
                self.con.execute(
                    "INSERT INTO schema_version VALUES (?, ?)", [version, _utcnow_naive()]
                )
                self.con.execute("COMMIT")
            except Exception:
                self.con.execute("ROLLBACK")
                raise

    def _stamp_close_times(self) -> None:
        """Daily rows written before migration 3 get their session's real close time."""
        days = [
            row[0] for row in self.con.execute("SELECT DISTINCT day FROM daily_history").fetchall()
        ]
        if not days:
            return
        closes = {
            "day": np.array(days, dtype="datetime64[D]").astype("datetime64[s]"),
            "close_at": np.array([_naive(cal.session_close(d)) for d in days], "datetime64[us]"),
        }
        with self.registered("close_times", closes):
            self.con.execute(
                "UPDATE daily_history SET close_at = c.close_at, as_of = c.close_at "
                "FROM close_times c WHERE daily_history.day = c.day::DATE"
            )

    @property
    def schema_version(self) -> int:
        return int(_scalar(self.con, "SELECT coalesce(max(version), 0) FROM schema_version"))

    # ---- chains ------------------------------------------------------------------------
    def flush_chains(
        self, batch: ChainBatch, underlyings: Sequence[UnderlyingQuote]
    ) -> FlushResult:
        """Insert snapshots not stored yet (by ticker, as_of); the rest are skipped."""
        start = time.perf_counter()
        cols = dict(batch.columns)
        snaps = {
            "ticker": np.array([u.ticker for u in underlyings], dtype=object),
            "as_of": np.array([_naive(u.as_of) for u in underlyings], dtype="datetime64[us]"),
            "price": np.array([u.price for u in underlyings], dtype=np.float64),
            "q": np.array([u.dividend_yield for u in underlyings], dtype=np.float64),
            "volume": np.array(  # NaN, then NULL, when the provider has no volume
                [np.nan if u.volume is None else u.volume for u in underlyings], dtype=np.float64
            ),
            "session": np.array(
                [cal.session_of(u.as_of) for u in underlyings], dtype="datetime64[D]"
            ).astype("datetime64[s]"),
        }
        self.con.execute("BEGIN TRANSACTION")
        try:
            self.con.register("incoming", cols)
            self.con.register("incoming_snaps", snaps)
            self.con.execute("""
                CREATE OR REPLACE TEMP TABLE new_snaps AS
                SELECT s.* FROM incoming_snaps s
                ANTI JOIN chain_snapshots c ON c.ticker = s.ticker AND c.as_of = s.as_of
            """)
            inserted = self.con.execute("""
                INSERT INTO option_quotes
                SELECT i.ticker, i.as_of, i.expiration::DATE, i.strike, i."right", i.bid, i.ask,
                       nullif_nan(i.last), i.volume,
                       CAST(nullif_nan(i.open_interest) AS BIGINT),
                       nullif_nan(i.implied_volatility), nullif_nan(i.delta),
                       nullif_nan(i.gamma), nullif_nan(i.theta), nullif_nan(i.vega),
                       nullif_nan(i.rho)
                FROM incoming i SEMI JOIN new_snaps s ON s.ticker = i.ticker AND s.as_of = i.as_of
            """).fetchall()[0]
            self.con.execute(
                """
                INSERT INTO chain_snapshots (ticker, as_of, contracts, underlying_price,
                    dividend_yield, underlying_volume, expirations, call_volume, put_volume,
                    call_open_interest, put_open_interest, atm_iv, flushed_at, session)
                SELECT s.ticker, s.as_of, coalesce(n.contracts, 0)::INTEGER, s.price, s.q,
                       CAST(nullif_nan(s.volume) AS BIGINT), coalesce(n.expirations, []),
                       n.call_volume, n.put_volume,
                       n.call_oi, n.put_oi, NULL, ?, s.session::DATE
                FROM new_snaps s LEFT JOIN (
                    SELECT ticker, as_of, count(*) AS contracts,
                           list(DISTINCT expiration::DATE ORDER BY expiration::DATE) AS expirations,
                           sum(volume) FILTER ("right" = 'C') AS call_volume,
                           sum(volume) FILTER ("right" = 'P') AS put_volume,
                           sum(nullif_nan(open_interest)) FILTER ("right" = 'C') AS call_oi,
                           sum(nullif_nan(open_interest)) FILTER ("right" = 'P') AS put_oi
                    FROM incoming GROUP BY ALL
                ) n USING (ticker, as_of)
            """,
                [_utcnow_naive()],
            )
            snapshots = self.con.execute("SELECT count(*) FROM new_snaps").fetchall()[0]
            self.con.execute("COMMIT")
        except Exception:
            self.con.execute("ROLLBACK")
            raise
        finally:
            self.con.unregister("incoming")
            self.con.unregister("incoming_snaps")
        rows = int(inserted[0]) if inserted else 0
        return FlushResult(
            rows=rows,
            rows_skipped=len(batch) - rows,
            snapshots=int(snapshots[0]) if snapshots else 0,
            bytes=batch.nbytes,
            duration_ms=round((time.perf_counter() - start) * 1000, 3),
        )

    def newest_snapshot(self) -> datetime | None:
        """The newest stored snapshot's as_of (aware UTC), or None for an empty store."""
        newest = _scalar(self.con, "SELECT max(as_of) FROM chain_snapshots")
        return newest.replace(tzinfo=UTC) if newest is not None else None

    def tickers_with_snapshot(self, as_of: datetime) -> set[str]:
        """Tickers whose chain at exactly ``as_of`` is already stored."""
        rows = self.con.execute(
            "SELECT ticker FROM chain_snapshots WHERE as_of = ?", [_naive(as_of)]
        ).fetchall()
        return {row[0] for row in rows}

    def count(self, table: str, where: str = "", params: Sequence[Any] = ()) -> int:
        if not re.fullmatch(r"[a-z_]+", table):
            raise ValueError(f"bad table name {table!r}")
        return int(_scalar(self.con, f"SELECT count(*) FROM {table} {where}", params))

    # ---- history -----------------------------------------------------------------------
    def history_days(self, tickers: Sequence[str]) -> dict[str, int]:
        rows = self.con.execute(
            "SELECT ticker, count(*) FROM daily_history WHERE ticker IN (SELECT unnest(?)) "
            "GROUP BY ticker",
            [list(tickers)],
        ).fetchall()
        return {t: int(n) for t, n in rows}

    def upsert_history(self, histories: Sequence[DailyHistory], source: str) -> int:
        if not histories:
            return 0
        # by ordinal: numpy converts a list of date objects one by one, slowly (3 s a backfill)
        ordinals = np.fromiter(
            map(date.toordinal, itertools.chain.from_iterable(h.dates for h in histories)),
            dtype=np.int64,
        )
        days = (ordinals - _UNIX_ORDINAL).astype("datetime64[D]")
        # Each distinct session's close once (a backfill repeats the same few hundred days for
        # every ticker): per row, the calendar would cost more than the rest of the upsert.
        distinct, where = np.unique(days, return_inverse=True)
        closes = np.array(
            [_naive(cal.session_close(d)) for d in distinct.astype(object)], dtype="datetime64[us]"
        )
        cols = {
            "ticker": np.concatenate(
                [np.full(len(h.dates), h.ticker, dtype=object) for h in histories]
            ),
            "day": days.astype("datetime64[s]"),
            "close": np.concatenate([h.close for h in histories]),
            "atm_iv": np.concatenate([h.atm_iv for h in histories]),
            "skew_25d": np.concatenate([h.skew_25d for h in histories]),
            "close_at": closes[where],
        }
        self.con.register("incoming_history", cols)
        try:
            self.con.execute(
                """
                INSERT OR REPLACE INTO daily_history (ticker, day, close, atm_iv, skew_25d,
                    source, close_at, as_of, provisional)
                SELECT ticker, day::DATE, nullif_nan(close), nullif_nan(atm_iv),
                       nullif_nan(skew_25d), ?, close_at, close_at, false FROM incoming_history
            """,
                [source],
            )
        finally:
            self.con.unregister("incoming_history")
        return len(cols["ticker"])

    # ---- scans and export log ----------------------------------------------------------
    def record_scan(self, scan: dict[str, Any]) -> None:
        self.con.execute(
            "INSERT OR REPLACE INTO scans VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                scan["scan_id"],
                _naive(scan["started_at"]),
                _naive(scan["finished_at"]) if scan.get("finished_at") else None,
                scan["status"],
                scan.get("tickers_scanned", 0),
                scan.get("chains_collected", 0),
                scan.get("alerts_generated", 0),
                scan.get("runtime_seconds", 0.0),
                list(scan.get("errors", [])),
            ],
        )

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.con.execute(sql, list(params)).fetchall()

    def columns(self, sql: str, params: Sequence[Any] = ()) -> dict[str, NDArray]:
        return self.con.execute(sql, list(params)).fetchnumpy()

    @contextmanager
    def registered(self, name: str, columns: dict[str, NDArray]) -> Iterator[None]:
        """Expose numpy columns to SQL as view ``name`` for the duration of the block."""
        self.con.register(name, columns)
        try:
            yield
        finally:
            self.con.unregister(name)

    @contextmanager
    def cursor(self) -> Iterator[Store]:
        """A second connection to the same database for another thread (a DuckDB connection
        serves one query at a time): the same query methods, its own registered views."""
        other = Store.__new__(Store)
        other.path, other.read_only, other._lock = self.path, self.read_only, None
        other.con = self.con.cursor()
        try:
            _prepare(other.con)
            yield other
        finally:
            other.con.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction for the block: committed when it ends, rolled back if it raises."""
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    @contextmanager
    def progress_tracking(self) -> Iterator[Callable[[], float]]:
        """For the block, a function another thread may call for the running query's progress
        (percent done, -1 when unknown). DuckDB draws nothing itself; tracking is off again after.
        """
        self.con.execute("SET enable_progress_bar_print = false")
        self.con.execute("SET enable_progress_bar = true")
        try:
            yield self.con.query_progress
        finally:
            self.con.execute("SET enable_progress_bar = false")

    def checkpoint(self) -> None:
        self.con.execute("CHECKPOINT")

    # ---- size and compaction ---------------------------------------------------------
    def size(self) -> DatabaseSize:
        rows = self.con.execute(
            "SELECT total_blocks, free_blocks, block_size FROM pragma_database_size() "
            "WHERE database_name = current_database()"
        ).fetchall()
        total, free, block = (int(v) for v in rows[0]) if rows else (0, 0, 0)
        return DatabaseSize(self.path.stat().st_size, total, free, block)

    def table_counts(self) -> dict[str, int]:
        return _table_counts(self.con)

    def compact(self, step: Callable[[str], None] = lambda name: None) -> CompactionResult:
        """Rewrite the database into a fresh file and swap it in: DuckDB never shrinks a file.

        The copy is verified (row counts of every table) before the swap, and the old file is
        kept under ``.pre-compact`` until the swapped-in one has been reopened and verified
        again. A crash leaves either the old file or the verified new one in place, plus
        leftovers the next open removes. The writer lock is held throughout.
        """
        if self.read_only:
            raise RuntimeError("a read-only store cannot be compacted")
        start = time.perf_counter()
        self.con.execute("CHECKPOINT")
        before = self.path.stat().st_size
        counts = _table_counts(self.con)
        target = _sibling(self.path, ".compact")
        keep = _sibling(self.path, ".pre-compact")
        for leftover in (target, _sibling(target, ".wal")):
            leftover.unlink(missing_ok=True)
        name = _scalar(self.con, "SELECT current_database()")
        self.con.execute("ATTACH ? AS ocd_compact", [str(target)])
        try:
            self.con.execute(f'COPY FROM DATABASE "{name}" TO ocd_compact')
        finally:
            self.con.execute("DETACH ocd_compact")
        step("compaction.copied")
        check = duckdb.connect(str(target), read_only=True)
        try:
            copied = _table_counts(check)
        finally:
            check.close()
        if copied != counts:
            target.unlink(missing_ok=True)
            raise DatabaseError(f"compacted copy differs: {copied} != {counts}")
        step("compaction.verified")
        self.con.close()
        keep.unlink(missing_ok=True)
        os.link(self.path, keep)
        os.replace(target, self.path)
        _fsync_dir(self.path.parent)
        step("compaction.swapped")
        self.con = _connect(self.path, False)
        self.con.execute("SET enable_progress_bar = false")
        if _table_counts(self.con) != counts:  # not expected after the check above
            raise DatabaseError(f"{self.path} lost rows in the swap; the old file is {keep}")
        keep.unlink()
        return CompactionResult(before, self.path.stat().st_size, _since(start))

    def parquet_rows(self, path: Path) -> int:
        """Rows in a Parquet file (reading it: a damaged file raises)."""
        return int(_scalar(self.con, "SELECT count(*) FROM read_parquet(?)", [str(path)]))


class _WriterLock:
    """An exclusive ``flock`` on ``<db>.writer.lock`` holding the owner's PID; re-entrant within
    a process (DuckDB, too, lets one process open its file more than once)."""

    _held: ClassVar[dict[str, tuple[int, int]]] = {}  # lock path -> (fd, opens), this process
    _guard: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, path: str) -> None:
        self.path = path

    @classmethod
    def acquire(cls, db: Path) -> _WriterLock:
        path = str(_sibling(db, ".writer.lock"))
        with cls._guard:
            if path in cls._held:
                fd, count = cls._held[path]
                cls._held[path] = (fd, count + 1)
                return cls(path)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
                os.close(fd)
                raise WriterBusy(str(db), f"PID {holder}" if holder.isdigit() else None) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            cls._held[path] = (fd, 1)
            return cls(path)

    def release(self) -> None:
        with self._guard:
            fd, count = self._held[self.path]
            if count > 1:
                self._held[self.path] = (fd, count - 1)
                return
            del self._held[self.path]
            os.ftruncate(fd, 0)
            os.close(fd)  # closing the descriptor releases the flock


def _sibling(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _clean_compaction_leftovers(path: Path) -> None:
    """An unfinished copy is garbage. A kept old file is garbage once the current file exists
    (it was swapped in only after verification); without it, the kept file is put back."""
    target, keep = _sibling(path, ".compact"), _sibling(path, ".pre-compact")
    for leftover in (target, _sibling(target, ".wal")):
        leftover.unlink(missing_ok=True)
    if keep.exists():
        if path.exists():
            keep.unlink()
        else:
            os.replace(keep, path)


def _table_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    tables = [
        row[0]
        for row in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
            "AND NOT temporary ORDER BY table_name"
        ).fetchall()
    ]
    return {t: int(_scalar(con, f'SELECT count(*) FROM "{t}"')) for t in tables}


def _scalar(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()) -> Any:
    """The first column of the first row, the result read to its end (DuckDB 2 refuses other
    work on a connection, ``unregister`` included, while a result is only partly fetched)."""
    rows = con.execute(sql, list(params)).fetchall()
    return rows[0][0] if rows else None


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on a directory
        pass
    finally:
        os.close(fd)


def _since(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)


# What DuckDB says when a file is truncated, overwritten or has a block that fails its checksum.
_DAMAGE = ("corrupt", "not a valid duckdb", "could not read enough bytes", "checksum",
           "invalid block", "serializ")  # fmt: skip


def is_damage(exc: BaseException) -> bool:
    """Whether a DuckDB error means the file itself is damaged (not a bad query, not a lock)."""
    return isinstance(exc, duckdb.Error) and any(d in str(exc).lower() for d in _DAMAGE)


def verify_file(path: Path) -> str | None:
    """None when ``path`` opens and every block of every table reads back (DuckDB checks each
    block's checksum as it reads it: a full scan is the check); else what is wrong. The file
    must not be open in this process."""
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        return _first_line(exc)
    try:
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
        ).fetchall()]  # fmt: skip
        for table in tables:
            con.execute(f'SELECT count(*), sum(hash(COLUMNS(*))) FROM "{table}"').fetchall()
        if "schema_version" not in tables:
            return "no schema_version table: not a database of this service"
    except duckdb.Error as exc:
        return _first_line(exc)
    finally:
        con.close()
    return None


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _connect(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        message = str(exc)
        if "lock" in message.lower():
            match = _LOCK_HOLDER.search(message)
            raise WriterBusy(str(path), f"PID {match.group(1)}" if match else None) from None
        if is_damage(exc):
            raise DatabaseDamaged(str(path), _first_line(exc)) from None
        raise
    except duckdb.Error as exc:
        if is_damage(exc):
            raise DatabaseDamaged(str(path), _first_line(exc)) from None
        raise
    _prepare(con)
    return con


def _prepare(con: duckdb.DuckDBPyConnection) -> None:
    """Session settings and macros every connection needs (each cursor has its own)."""
    # Timestamps are stored naive in UTC; the session's time zone must not depend on the host's.
    con.execute("SET TimeZone = 'UTC'")
    con.execute(
        "CREATE OR REPLACE TEMP MACRO nullif_nan(x) AS "
        "CASE WHEN isnan(x) OR isinf(x) THEN NULL ELSE x END"
    )


def _naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def _utcnow_naive() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
