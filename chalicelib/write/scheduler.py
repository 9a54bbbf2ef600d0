"""The writer's state machine: COLLECTING → FLUSHING → (COMPUTING → SCANNING) → EXPORTING → IDLE,
and DELIVERING (alerts to their sinks) from IDLE, as the collect's last step before compaction.

Each scheduled handler opens the store, runs its phases and closes it again, so the DuckDB lock is
held only while work is being done. Every phase logs one structured line with counts, bytes and
duration. One failing ticker does not abort a cycle: the scan records it and becomes ``partial``.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from chalicelib.config import Settings
from chalicelib.domain import calendar as cal
from chalicelib.errors import ClockRefused
from chalicelib.logs import log_event, timed
from chalicelib.storage.base import Storage
from chalicelib.write.analysis import AnalysisResult, analyse
from chalicelib.write.collector import ChainBuffer
from chalicelib.write.delivery.deliverer import deliver
from chalicelib.write.lifecycle import LifecycleResult, compact, maintain
from chalicelib.write.providers.base import MarketDataProvider
from chalicelib.write.providers.factory import make_provider
from chalicelib.write.store import CompactionResult, FlushResult, Store


class Phase(StrEnum):
    IDLE = "idle"
    COLLECTING = "collecting"
    FLUSHING = "flushing"
    COMPUTING = "computing"
    SCANNING = "scanning"
    SEALING = "sealing"
    EXPORTING = "exporting"
    DELIVERING = "delivering"


_ALLOWED = {
    Phase.IDLE: {Phase.COLLECTING, Phase.EXPORTING, Phase.DELIVERING},
    Phase.COLLECTING: {Phase.FLUSHING},
    Phase.FLUSHING: {Phase.COLLECTING, Phase.COMPUTING, Phase.SEALING, Phase.EXPORTING,
                     Phase.IDLE},
    Phase.COMPUTING: {Phase.SCANNING},
    Phase.SCANNING: {Phase.SEALING, Phase.EXPORTING, Phase.IDLE},
    Phase.SEALING: {Phase.IDLE},
    Phase.EXPORTING: {Phase.IDLE},
    Phase.DELIVERING: {Phase.IDLE},
}  # fmt: skip
MAX_CLOCK_LEAD = timedelta(minutes=5)  # how far ahead of the wall clock a pinned run may be


def check_clock(
    store: Store,
    now: datetime,
    provider: str,
    wall: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> None:
    """Refuse a run before the newest stored snapshot or past the present (``ClockRefused``):
    a replayed past would publish a generation older than the one it replaces, and a future
    one would take over the live dashboard with invented quotes."""
    present = wall()
    if now > present + MAX_CLOCK_LEAD:
        raise ClockRefused(
            f"refusing a writer run at {_iso(now)}: it is {now - present} ahead of the wall "
            f"clock ({_iso(present)}); at most {MAX_CLOCK_LEAD} ahead is accepted"
        )
    newest = store.newest_snapshot()
    if newest is not None and now < newest:
        hint = (
            "; to replay imported history, use a data directory of its own (OCD_DATA_DIR)"
            if provider == "file"
            else ""
        )
        raise ClockRefused(
            f"refusing a writer run at {_iso(now)}: the store already holds a snapshot at "
            f"{_iso(newest)}, and its clock only moves forward{hint}"
        )


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Scheduler:
    """Runs the scheduled work against one open store."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        provider: MarketDataProvider | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        *,
        analysis: bool = True,
        history: Storage | None = None,
        lifecycle_step: Callable[[str], None] = lambda name: None,
        published: Storage | None = None,
    ) -> None:
        self.analysis = analysis  # features and alerts after the flush (off: collect only)
        self.history = history  # where sealed sessions go; None: no sealing, no retention
        self.published = published  # its published generation releases alerts; None: no delivery
        self.lifecycle_step = lifecycle_step
        self.settings = settings
        self.store = store
        self.provider = provider or make_provider(settings, store)
        self.clock = clock
        self.phase = Phase.IDLE

    def _enter(self, phase: Phase) -> None:
        if phase not in _ALLOWED[self.phase]:
            raise RuntimeError(f"illegal transition {self.phase} → {phase}")
        self.phase = phase

    def collect(self, now: datetime | None = None) -> dict[str, Any]:
        """Collect every watchlist chain, flushing at the row threshold and at the end."""
        now = now or self.clock()
        check_clock(self.store, now, self.settings.provider)
        started = time.perf_counter()
        scan: dict[str, Any] = {
            "scan_id": f"scan_{now:%Y%m%dT%H%M%S}_{uuid.uuid4().hex[:6]}",
            "started_at": now,
            "status": "running",
            "errors": [],
        }
        tickers = list(self.settings.watchlist)
        backfilled = self._backfill(tickers, now)
        buffer = ChainBuffer(self.settings.flush_rows)
        flushes: list[FlushResult] = []
        collected, rows_in = 0, 0
        market_as_of: datetime | None = None
        quote_time = self.provider.quote_time(now)
        stored = self.store.tickers_with_snapshot(quote_time)
        wanted = [t for t in tickers if t not in stored]  # markets close; schedules don't
        self._enter(Phase.COLLECTING)
        with timed("collect", tickers=len(wanted), unchanged=len(tickers) - len(wanted)) as log:
            for ticker, result in self.provider.fetch_chains(wanted, now):
                if isinstance(result, Exception):  # one ticker's failure must not abort
                    scan["errors"].append(f"{ticker}: {type(result).__name__}: {result}")
                    log_event("collect_failed", ticker=ticker, error=str(result))
                    continue
                rows_in += len(result.contracts)
                market_as_of = max(market_as_of or result.underlying.as_of, result.underlying.as_of)
                buffer.add(result.underlying, result.contracts)
                collected += 1
                if buffer.full:
                    flushes.append(self._flush(buffer))
                    self._enter(Phase.COLLECTING)
            log.update(
                chains=collected,
                rows=rows_in,
                rejected=dict(buffer.rejected),
                bytes=sum(b.nbytes for b in buffer.batches),
            )
        flushes.append(self._flush(buffer))
        analysis = self._analyse(scan, now) if collected and self.analysis else None
        lifecycle = self._maintain(scan, now) if self.history is not None else None
        self._enter(Phase.IDLE)
        runtime = time.perf_counter() - started
        scan.update(
            finished_at=now + timedelta(seconds=runtime),
            tickers_scanned=len(tickers),
            chains_collected=collected,
            alerts_generated=analysis.alerts_generated if analysis else 0,
            runtime_seconds=round(runtime, 3),
        )
        ok = collected or len(wanted) < len(tickers)
        scan["status"] = "completed" if not scan["errors"] else "partial" if ok else "failed"
        self.store.record_scan(scan)
        delivery = self._deliver(now) if self.published is not None else None
        if lifecycle is not None:
            lifecycle.compaction = self._compact()
        return {
            "scan_id": scan["scan_id"],
            "status": scan["status"],
            "as_of": (market_as_of or quote_time).isoformat(),
            "tickers": len(tickers),
            "chains_collected": collected,
            "chains_unchanged": len(tickers) - len(wanted),
            "rows_collected": rows_in,
            "rows_rejected": dict(buffer.rejected),
            "rows_flushed": sum(f.rows for f in flushes),
            "rows_skipped": sum(f.rows_skipped for f in flushes),
            "snapshots_flushed": sum(f.snapshots for f in flushes),
            "flushes": len([f for f in flushes if f.rows or f.rows_skipped]),
            "history_backfilled": backfilled,
            "features_computed": analysis.features_computed if analysis else 0,
            "alerts_generated": scan["alerts_generated"],
            "lifecycle": lifecycle.summary() if lifecycle else None,
            "delivery": delivery,
            "errors": scan["errors"],
            "runtime_seconds": scan["runtime_seconds"],
        }

    def _analyse(self, scan: dict[str, Any], now: datetime) -> AnalysisResult | None:
        """COMPUTING (features) then SCANNING (detectors, scoring): one call, two phases."""
        self._enter(Phase.COMPUTING)
        try:
            result = analyse(self.store, self.settings, self.provider, scan["scan_id"], now,
                             config=self.settings.analytics)  # fmt: skip
        except Exception as exc:  # analytics failing must not lose the collected chains
            scan["errors"].append(f"analysis: {type(exc).__name__}: {exc}")
            log_event("analysis_failed", error=str(exc))
            result = None
        else:
            scan["errors"].extend(result.errors)
        self._enter(Phase.SCANNING)
        return result

    def _maintain(self, scan: dict[str, Any], now: datetime) -> LifecycleResult | None:
        """SEALING: seal settled sessions, then retention; a failure loses nothing (the rows
        stay in the hot store) and is retried next run."""
        assert self.history is not None
        self._enter(Phase.SEALING)
        try:
            return maintain(self.store, self.history, self.settings, now, step=self.lifecycle_step)
        except Exception as exc:
            scan["errors"].append(f"lifecycle: {type(exc).__name__}: {exc}")
            log_event("lifecycle_failed", level=logging.ERROR, error=f"{type(exc).__name__}: {exc}")
            return None

    # ---- delivery (chalicelib/write/delivery): after the scan is recorded, before compaction
    def _deliver(self, now: datetime) -> dict[str, Any] | None:
        """DELIVERING: alerts the published generation released go to their sinks, within the
        delivery budget. The collect is where acknowledgements last: on Lambda it is the run
        that persists the database. A failure here never fails the collect."""
        assert self.published is not None
        self._enter(Phase.DELIVERING)
        try:
            return deliver(self.store, self.published, self.settings, now,
                           step=self.lifecycle_step).summary()  # fmt: skip
        except Exception as exc:
            log_event("delivery_failed", level=logging.ERROR, error=f"{type(exc).__name__}: {exc}")
            return {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            self._enter(Phase.IDLE)

    def _compact(self) -> CompactionResult | None:
        try:
            return compact(self.store, self.settings, self.lifecycle_step)
        except Exception as exc:  # the old file stays in place; the next run tries again
            log_event("compaction_failed", level=logging.ERROR,
                      error=f"{type(exc).__name__}: {exc}")  # fmt: skip
            return None

    def _flush(self, buffer: ChainBuffer) -> FlushResult:
        self._enter(Phase.FLUSHING)
        batch, underlyings = buffer.drain()
        with timed("flush", rows_in=len(batch), bytes=batch.nbytes) as log:
            result = self.store.flush_chains(batch, underlyings)
            log.update(
                rows=result.rows, rows_skipped=result.rows_skipped, snapshots=result.snapshots
            )
        return result

    def _backfill(self, tickers: list[str], now: datetime) -> int:
        """Give tickers without enough daily history a backfill, so features work on day one."""
        wanted = self.settings.backfill_days
        if not wanted:
            return 0
        have = self.store.history_days(tickers)
        missing = [t for t in tickers if have.get(t, 0) < wanted * 0.9]
        if not missing:
            return 0
        session_day = cal.market_clock(now)[0]
        end = cal.previous_trading_day(session_day)
        with timed("backfill", tickers=len(missing), days=wanted) as log:
            histories = []
            for ticker, result in self.provider.fetch_histories(missing, end, wanted):
                if isinstance(result, Exception):
                    log_event("backfill_failed", ticker=ticker, error=str(result))
                else:
                    histories.append(result)
            log["rows"] = self.store.upsert_history(histories, source="backfill")
        return len(histories)


def run_collect(settings: Settings, now: datetime | None = None) -> dict[str, Any]:
    """One collect pass with its own store connection (what the schedule runs): collect →
    flush → features and alerts → seal settled sessions into the export storage → retention →
    delivery of the alerts the published generation released."""
    from chalicelib.storage.factory import make_storage

    storage = make_storage(settings)
    with Store(settings.database) as store:
        return Scheduler(settings, store, history=storage, published=storage).collect(now)
