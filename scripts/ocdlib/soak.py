"""``ocd.py soak``: many simulated sessions through the scheduled handlers, with a pinned clock.

Day thirty, not day one: the app's own ``collect`` and ``export`` handlers run in this process
every ``--every`` minutes of each simulated session (from the open to the close, plus one run
after it), on the synthetic market, in a temp data dir (local disk, or moto's S3 server with
``--storage s3``). After each session it prints the DuckDB file's size, the rows in the hot
store, the sealed partitions and their bytes, the cycle and export p50 and, on S3, the bytes
restored and persisted per run. The sessions end with the last one closed before today, so the
clock never runs ahead of the present.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from chalicelib.config import DEFAULT_WATCHLIST
from chalicelib.domain import calendar as cal


@dataclass
class SessionFigures:
    session: str
    runs: int
    db_bytes: int
    db_used_bytes: int  # the file less the free blocks DuckDB will reuse
    hot_rows: int
    hot_snapshots: int
    sealed_files: int
    sealed_bytes: int
    cycle_p50_ms: float
    export_p50_ms: float
    restored_bytes_per_run: float
    persisted_bytes_per_run: float
    compactions: int


def run_times(day: date, every_minutes: float) -> list[datetime]:
    """The collect times of one session: every ``every_minutes`` from the open, then one run
    after the close (which collects the closing chain)."""
    open_, close = cal.session_bounds(day)
    step = timedelta(minutes=every_minutes)
    times, t = [], open_
    while t < close:
        times.append(t)
        t += step
    times.append(close + timedelta(minutes=1))
    return times


def sessions_ending_before(today: date, count: int) -> list[date]:
    return cal.last_trading_days(cal.previous_trading_day(today), count)


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run(
    sessions: int,
    every_minutes: float,
    tickers: tuple[str, ...] = DEFAULT_WATCHLIST,
    storage: str = "local",
    *,
    data_dir: Path | None = None,
    extra_env: dict[str, str] | None = None,
    report: Any = None,
    last_session: date | None = None,
) -> list[SessionFigures]:
    from chalicelib import historyformat as hf
    from chalicelib.storage.factory import make_storage
    from chalicelib.write import schedules
    from chalicelib.write.store import Store

    figures: list[SessionFigures] = []
    with ExitStack() as stack:
        root = data_dir or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="ocd-soak-"))
        )
        env = {
            "OCD_DATA_DIR": str(root),
            "OCD_WATCHLIST": ",".join(tickers),
            "OCD_LOG_LEVEL": "WARNING",
            **(extra_env or {}),
        }
        if storage == "s3":
            from ocdlib.serve import start_s3

            start_s3(stack, "ocd-soak")
            env.update(OCD_STORAGE="s3", OCD_BUCKET="ocd-soak")
        stack.enter_context(_environment(env))
        from chalicelib.config import load_settings

        settings = load_settings()
        store_storage = make_storage(settings)
        days = (
            cal.last_trading_days(last_session, sessions)
            if last_session
            else sessions_ending_before(datetime.now(UTC).date(), sessions)
        )
        for day in days:
            cycles, exports, restored, persisted, compactions = [], [], [], [], 0
            times = run_times(day, every_minutes)
            for t in times:
                as_of = t.strftime("%Y-%m-%dT%H:%M:%SZ")
                start = time.perf_counter()
                summary = schedules.collect({"as_of": as_of})
                mid = time.perf_counter()
                schedules.export({"as_of": as_of})
                end = time.perf_counter()
                cycles.append((end - start) * 1000)
                exports.append((end - mid) * 1000)
                compactions += bool((summary.get("lifecycle") or {}).get("compacted"))
                db = summary.get("db") or {}
                restored.append(db.get("restored_bytes", 0))
                persisted.append(db.get("persisted_bytes", 0))
            with Store(settings.database, read_only=True) as store:
                hot_rows = store.count("option_quotes")
                hot_snapshots = store.count("chain_snapshots")
                size = store.size()
            manifest = hf.load_history_manifest(store_storage)
            files = manifest.files if manifest else []
            row = SessionFigures(
                session=str(day),
                runs=len(times),
                db_bytes=size.bytes,
                db_used_bytes=size.bytes - size.free_bytes,
                hot_rows=hot_rows,
                hot_snapshots=hot_snapshots,
                sealed_files=len(files),
                sealed_bytes=sum(f.bytes for f in files),
                cycle_p50_ms=round(statistics.median(cycles), 1),
                export_p50_ms=round(statistics.median(exports), 1),
                restored_bytes_per_run=round(statistics.mean(restored)),
                persisted_bytes_per_run=round(statistics.mean(persisted)),
                compactions=compactions,
            )
            figures.append(row)
            if report is not None:
                report(row)
    return figures


HEADER = (
    f"{'#':>3} {'session':10} {'runs':>4} {'db MB':>8} {'used MB':>8} {'hot rows':>10} "
    f"{'snaps':>6} "
    f"{'sealed':>6} {'sealed MB':>9} {'cycle p50':>9} {'export p50':>10} "
    f"{'restored MB':>11} {'persisted MB':>12} {'compact':>7}"
)


def line(n: int, f: SessionFigures) -> str:
    mb = 1 / (1 << 20)
    return (
        f"{n:>3} {f.session:10} {f.runs:>4} {f.db_bytes * mb:>8.1f} "
        f"{f.db_used_bytes * mb:>8.1f} {f.hot_rows:>10,} "
        f"{f.hot_snapshots:>6} {f.sealed_files:>6} {f.sealed_bytes * mb:>9.1f} "
        f"{f.cycle_p50_ms:>7.0f}ms {f.export_p50_ms:>8.0f}ms "
        f"{f.restored_bytes_per_run * mb:>11.1f} {f.persisted_bytes_per_run * mb:>12.1f} "
        f"{f.compactions:>7}"
    )


def plateau(figures: list[SessionFigures], start: int) -> dict[str, Any]:
    """From session ``start`` (1-based) on, how far size, cycle p50 and persisted bytes stray
    from that session's (the goal: within ±20 %)."""
    base = figures[start - 1]
    later = figures[start - 1 :]

    def spread(name: str) -> float | None:
        ref = getattr(base, name)
        if not ref:
            return None
        return round(max(abs(getattr(f, name) / ref - 1) for f in later), 3)

    return {
        "from_session": start,
        "db_bytes_max_deviation": spread("db_bytes"),
        "db_used_bytes_max_deviation": spread("db_used_bytes"),
        "cycle_p50_max_deviation": spread("cycle_p50_ms"),
        "persisted_bytes_max_deviation": spread("persisted_bytes_per_run"),
    }


def as_json(figures: list[SessionFigures]) -> list[dict[str, Any]]:
    return [asdict(f) for f in figures]
