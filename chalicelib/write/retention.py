"""Retention: the hot store keeps what the writer computes with, and lets sealed data go.

Windows, counted in sessions back from the current one (the session under way, or the last one
when the market is closed):

- every snapshot of the current session and the ``OCD_INTRADAY_RETENTION_DAYS`` before it;
- each ticker's closing chain for the ``OCD_EOD_RETENTION_DAYS`` sessions before it (what
  contract-level z-scores and day-over-day open interest need);
- one features row per ticker per session (the last), daily history, alerts and delivery state
  for ever; scans for ``SCAN_RETENTION``.

A snapshot leaves only once it is sealed in a file the published history manifest names (its
closing chain always, its intraday copy unless ``OCD_SEAL_INTRADAY=false``). DuckDB reuses the
space of deleted rows for later inserts but never returns it to the file system, so when dead
space passes the ``CompactionPolicy`` (``OCD_COMPACT_FREE_FRACTION`` of the file, default half,
and ``OCD_COMPACT_MIN_FREE_MB``, default 32), the file is rewritten (``Store.compact``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np

from chalicelib.config import Settings
from chalicelib.domain import calendar as cal
from chalicelib.logs import log_event
from chalicelib.write.store import CompactionResult, Store

SCAN_RETENTION = timedelta(days=90)


@dataclass(frozen=True)
class CompactionPolicy:
    """Rewrite the file when at least this share of it, and this many bytes, are dead space."""

    free_fraction: float = 0.5
    min_free_bytes: int = 32 << 20


DEFAULT_POLICY = CompactionPolicy()


DOOMED = """
    CREATE OR REPLACE TEMP TABLE retention_doomed AS
    WITH sealed AS (
        SELECT s.kind, s.ticker, s.as_of, s.session FROM sealed_snapshots s
        SEMI JOIN retention_published p ON p.key = s.key
    ),
    closes AS (SELECT ticker, as_of, session FROM sealed WHERE kind = 'chains'),
    intraday AS (SELECT ticker, as_of FROM sealed WHERE kind = 'intraday')
    SELECT c.ticker, c.as_of FROM chain_snapshots c
    WHERE c.session < ?::DATE
      AND (NOT ?::BOOLEAN OR EXISTS (
          SELECT 1 FROM intraday i WHERE i.ticker = c.ticker AND i.as_of = c.as_of))
      AND CASE WHEN EXISTS (SELECT 1 FROM closes k WHERE k.ticker = c.ticker
                            AND k.as_of = c.as_of)
          THEN c.session < ?::DATE  -- the session's closing chain: the EOD window
          ELSE EXISTS (SELECT 1 FROM closes k WHERE k.ticker = c.ticker
                       AND k.session = c.session)  -- an intraday one, once the close is sealed
          END
"""
DELETE_DOOMED = (
    "DELETE FROM option_quotes USING retention_doomed d "
    "WHERE option_quotes.ticker = d.ticker AND option_quotes.as_of = d.as_of "
    "AND option_quotes.as_of <= ?",
    "DELETE FROM chain_snapshots USING retention_doomed d "
    "WHERE chain_snapshots.ticker = d.ticker AND chain_snapshots.as_of = d.as_of",
    "DELETE FROM sealed_snapshots USING retention_doomed d "
    "WHERE sealed_snapshots.ticker = d.ticker AND sealed_snapshots.as_of = d.as_of",
)
# Past sessions keep their last features row per ticker (the close's, when it was collected).
THIN_FEATURES = """
    DELETE FROM features f
    WHERE f.as_of < ?
      AND EXISTS (
          SELECT 1 FROM features g
          WHERE g.ticker = f.ticker AND g.as_of > f.as_of
            AND timezone('America/New_York', g.as_of::TIMESTAMPTZ)::DATE
              = timezone('America/New_York', f.as_of::TIMESTAMPTZ)::DATE)
"""
OLD_SCANS = "DELETE FROM scans WHERE started_at < ?"


@dataclass(frozen=True)
class Windows:
    current: date  # the session under way, or the last one
    intraday_from: date  # sessions from this one keep every snapshot
    eod_from: date  # sessions from this one keep their closing chains
    scans_from: datetime
    sealed_intraday_from: date | None = None  # older sessions' sealed intraday files go


@dataclass(frozen=True)
class RetentionResult:
    snapshots_deleted: int
    rows_deleted: int
    features_deleted: int
    scans_deleted: int
    duration_ms: float


def windows(settings: Settings, now: datetime) -> Windows:
    current = cal.market_clock(now)[0]
    return Windows(
        current=current,
        intraday_from=cal.last_trading_days(current, settings.intraday_retention_days + 1)[0],
        eod_from=cal.last_trading_days(current, settings.eod_retention_days + 1)[0],
        scans_from=now - SCAN_RETENTION,
        sealed_intraday_from=(
            cal.last_trading_days(current, settings.sealed_intraday_retention_days + 1)[0]
            if settings.sealed_intraday_retention_days
            else None
        ),
    )


def apply(
    store: Store,
    settings: Settings,
    now: datetime,
    published: Iterable[str],
    *,
    step: Callable[[str], None] = lambda name: None,
) -> RetentionResult:
    """Delete what the windows no longer hold (only snapshots sealed in ``published`` files)."""
    start = time.perf_counter()
    w = windows(settings, now)
    keys = {"key": np.array(sorted(set(published)), dtype=object)}
    current_start = _naive(cal.session_bounds(w.current)[0])
    with store.transaction(), store.registered("retention_published", keys):
        store.rows(DOOMED, [w.intraday_from, settings.seal_intraday, w.eod_from])
        doomed, rows_max = store.rows("SELECT count(*), max(as_of) FROM retention_doomed")[0]
        rows = 0
        if doomed:
            rows = int(store.rows(DELETE_DOOMED[0], [rows_max])[0][0])
            for sql in DELETE_DOOMED[1:]:
                store.rows(sql)
        features = int(store.rows(THIN_FEATURES, [current_start])[0][0])
        scans = int(store.rows(OLD_SCANS, [_naive(w.scans_from)])[0][0])
        store.rows("DROP TABLE retention_doomed")
    step("retention.deleted")
    if doomed or features or scans:
        store.checkpoint()
    result = RetentionResult(
        snapshots_deleted=int(doomed),
        rows_deleted=rows,
        features_deleted=features,
        scans_deleted=scans,
        duration_ms=round((time.perf_counter() - start) * 1000, 3),
    )
    if doomed or features or scans:
        log_event(
            "retention",
            intraday_from=str(w.intraday_from),
            eod_from=str(w.eod_from),
            snapshots_deleted=result.snapshots_deleted,
            rows_deleted=rows,
            features_deleted=features,
            scans_deleted=scans,
            duration_ms=result.duration_ms,
        )
    return result


def compact_if_dead(
    store: Store, policy: CompactionPolicy, step: Callable[[str], None] = lambda name: None
) -> CompactionResult | None:
    """Rewrite the file when dead space passes ``policy`` — checked once a run, as its last
    write: DuckDB's own checkpoints leave free blocks as tables grow, not only deletions do,
    and later inserts do not always reuse them."""
    store.checkpoint()
    size = store.size()
    if not size.total_blocks or size.free_fraction < policy.free_fraction:
        return None
    if size.free_bytes < policy.min_free_bytes:
        return None
    result = store.compact(step)
    log_event(
        "compaction",
        bytes_before=result.bytes_before,
        bytes_after=result.bytes_after,
        free_fraction=round(size.free_fraction, 3),
        duration_ms=result.duration_ms,
    )
    return result


def _naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)
