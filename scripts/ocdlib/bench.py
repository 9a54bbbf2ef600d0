"""``ocd.py bench``: measure our design against seed-style baselines, in one run, side by side.

Each phase runs in its own process (spawned) so peak RSS is the phase's own. Nothing here is
asserted: the figures are printed as a table and written as JSON. Baselines, written for the
benchmark only:
- seed-style exporter: fetch all rows, build dicts, ``json.dump`` one file per kind;
- seed-style reader: ``json.load`` the whole file per request, filter in Python;
- Option B: a reader process opening the DuckDB file read-only per request while a writer runs.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing as mp
import os
import resource
import shutil
import statistics
import string
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

AS_OF = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
SIZES: dict[str, dict[str, Any]] = {
    "small": {"tickers": 0, "market": {}},
    "medium": {"tickers": 500, "market": {"weeklies": 8, "strike_sigmas": 3.6}},
    "full": {"tickers": 5000, "market": {"weeklies": 3, "horizon_days": 200,
                                         "strike_sigmas": 2.2}},
}  # fmt: skip
ALERTS = 10_000
SEED_REQUESTS = 10
WARM_TICKERS = 20


def tickers_for(count: int) -> list[str]:
    """Letter-only symbols AAAA, AAAB, … (the default watchlist when count is 0)."""
    if not count:
        from chalicelib.config import DEFAULT_WATCHLIST

        return list(DEFAULT_WATCHLIST)
    combos = itertools.product(string.ascii_uppercase, repeat=4)
    return ["".join(c) for c in itertools.islice(combos, count)]


def environment(root: Path, tickers: list[str]) -> dict[str, str]:
    return {
        "OCD_DATA_DIR": str(root),
        "OCD_WATCHLIST": ",".join(tickers),
        "OCD_BACKFILL_DAYS": "260",
        "OCD_STORAGE": "local",
        "OCD_LOG_LEVEL": "WARNING",
    }


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"p50_ms": round(pick(0.5) * 1000, 4), "p99_ms": round(pick(0.99) * 1000, 4),
            "n": len(ordered)}  # fmt: skip


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# ---- phases (each in a fresh process) --------------------------------------------------
def phase_write(env: dict[str, str], market: dict[str, Any]) -> dict[str, Any]:
    """Backfill, collect + flush, compute, export (twice: full, then delta)."""
    os.environ.update(env)
    from chalicelib.config import load_settings
    from chalicelib.storage.factory import make_storage
    from chalicelib.write.exporter import JSONExporter
    from chalicelib.write.providers.synthetic import SyntheticMarket
    from chalicelib.write.scheduler import Scheduler
    from chalicelib.write.store import Store

    settings = load_settings()
    out: dict[str, Any] = {}
    with Store(settings.database) as store:
        scheduler = Scheduler(settings, store, provider=SyntheticMarket(**market))
        out["backfill_s"], _ = timed(lambda: scheduler._backfill(list(settings.watchlist), AS_OF))
        out["collect_flush_s"], summary = timed(lambda: scheduler.collect(AS_OF))
        out["contracts"] = summary["rows_flushed"]
        out["tickers"] = summary["chains_collected"]
        out["compute_s"] = _compute(store, settings, scheduler, summary)
        storage = make_storage(settings)
        exporter = JSONExporter(store, storage, settings)
        out["export_s"], results = timed(exporter.export_all)
        manifest = _manifest(settings)
        out["export_writes"] = manifest["storage_writes"]
        out["export_bytes"] = dir_bytes(settings.exports)
        out["export_objects"] = sum(1 for p in settings.exports.rglob("*.json*") if p.is_file())
        out["export_ok"] = all(r.ok for r in results.values())
        out["delta_export_s"], _ = timed(exporter.export_all)
        out["delta_export_writes"] = _manifest(settings)["storage_writes"]
        out["gzip_chains_s"], out["gzip_chains_bytes"] = _gzip_cost(settings.exports)
    out["writer_peak_rss_mb"] = peak_rss_mb()
    return out


def _compute(store: Any, settings: Any, scheduler: Any, summary: dict[str, Any]) -> float | None:
    try:
        from chalicelib.write.analysis import analyse
    except ImportError:
        return None
    seconds, _ = timed(lambda: analyse(store, settings, scheduler.provider,
                                       summary["scan_id"], AS_OF))  # fmt: skip
    return seconds


def _manifest(settings: Any) -> dict[str, Any]:
    return json.loads((settings.exports / "manifest.json").read_bytes())


def _gzip_cost(exports: Path) -> tuple[float, int]:
    """What compressing every chain document (level 6) would add to an export."""
    import gzip

    start, total = time.perf_counter(), 0
    for path in (exports / "chains").rglob("*.json"):
        total += len(gzip.compress(path.read_bytes(), compresslevel=6))
    return time.perf_counter() - start, total


def phase_seed_export(env: dict[str, str]) -> dict[str, Any]:
    """The seed's exporter: fetchall → dicts → json.dump, one file per kind, no shards."""
    os.environ.update(env)
    import duckdb

    from chalicelib.config import load_settings

    settings = load_settings()
    target = settings.data_dir / "seed_exports"
    target.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(settings.database), read_only=True)
    start = time.perf_counter()
    for kind, sql in {
        "chains": "SELECT * FROM option_quotes "
        "WHERE as_of = (SELECT max(as_of) FROM option_quotes)",
        "alerts": "SELECT * FROM alerts",
        "scans": "SELECT * FROM scans",
        "features": "SELECT * FROM features",
    }.items():
        cursor = con.execute(sql)
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        with open(target / f"{kind}.json", "w") as f:
            json.dump({"kind": kind, "rows": rows}, f, default=str)
    seconds = time.perf_counter() - start
    con.close()
    return {"seed_export_s": seconds, "seed_export_bytes": dir_bytes(target),
            "seed_export_writes": 4}  # fmt: skip


def phase_read(env: dict[str, str], sample: list[str]) -> dict[str, Any]:
    """Our API in-process (chalice.test.Client) against the seed-style reader."""
    os.environ.update(env)
    from chalice.test import Client

    from app import app
    from chalicelib.config import load_settings

    settings = load_settings()
    out: dict[str, Any] = {}
    with Client(app) as client:
        cold, warm = [], []
        for ticker in sample:
            t, r = timed(lambda t=ticker: client.http.get(f"/options/{t}/snapshot"))
            assert r.status_code == 200, (ticker, r.status_code, r.body[:200])
            cold.append(t)
        for ticker in sample[:WARM_TICKERS]:  # repeat requests for tickers already read
            for _ in range(10):
                t, _r = timed(lambda t=ticker: client.http.get(f"/options/{t}/snapshot"))
                warm.append(t)
        out["snapshot_cold"] = percentiles(cold)
        out["snapshot_warm"] = percentiles(warm)
        alerts = [timed(lambda: client.http.get("/alerts/latest"))[0] for _ in range(300)]
        out["alerts_latest_warm"] = percentiles(alerts)
    out["reader_peak_rss_mb"] = peak_rss_mb()
    seed = settings.data_dir / "seed_exports"
    seed_snap = []
    for ticker in sample[:SEED_REQUESTS]:  # each parses the whole market: keep the count small
        t, _ = timed(lambda t=ticker: _seed_snapshot(seed / "chains.json", t))
        seed_snap.append(t)
    out["seed_snapshot"] = percentiles(seed_snap)
    seed_alerts = [
        timed(lambda: _seed_alerts(seed / "alerts.json"))[0] for _ in range(SEED_REQUESTS)
    ]
    out["seed_alerts_latest"] = percentiles(seed_alerts)
    return out


def _seed_snapshot(path: Path, ticker: str) -> list[dict[str, Any]]:
    with open(path) as f:
        rows = json.load(f)["rows"]
    return [r for r in rows if r["ticker"] == ticker]


def _seed_alerts(path: Path) -> list[dict[str, Any]]:
    with open(path) as f:
        rows = json.load(f)["rows"]
    return sorted(rows, key=lambda r: r["created_at"], reverse=True)[:50]


def phase_alerts(env: dict[str, str]) -> dict[str, Any]:
    """Give the store 10k alerts and re-export them (for the /alerts/latest figures)."""
    os.environ.update(env)
    from chalicelib.config import load_settings
    from chalicelib.storage.factory import make_storage
    from chalicelib.write.exporter import JSONExporter
    from chalicelib.write.store import Store

    settings = load_settings()
    tickers = list(settings.watchlist)
    detectors = ["low_iv", "rich_premium", "earnings_crush", "term_kink", "skew_anomaly",
                 "regime_shift", "unusual_activity"]  # fmt: skip
    with Store(settings.database) as store:
        store.rows("DELETE FROM alerts")
        store.rows(
            """INSERT INTO alerts SELECT 'bench-' || i, 'scan_bench', ?[1 + i % ?],
                      ?[1 + i % 7], (i * 37) % 100, '{"iv_percentile": 12.5}',
                      '{"summary": "bench", "rationale": "bench", "key_metrics": {},
                        "risk_factors": []}', '["short strangle"]',
                      ?::TIMESTAMP - INTERVAL (i) SECOND
               FROM range(?) t(i)""",
            [tickers, len(tickers), detectors, AS_OF.replace(tzinfo=None), ALERTS],
        )
        seconds, result = timed(lambda: JSONExporter(store, make_storage(settings),
                                                     settings).export_alerts())  # fmt: skip
    return {"alerts_export_s": seconds, "alerts_rows": result.rows, "alerts_bytes": result.bytes}


def phase_option_b(env: dict[str, str], seconds: float) -> dict[str, Any]:
    """Readers opening DuckDB read-only per request while a writer process runs cycles."""
    os.environ.update(env)
    import duckdb

    from chalicelib.config import load_settings

    settings = load_settings()
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    cycles, busy = ctx.Value("i", 0), ctx.Value("i", 0)
    writer = ctx.Process(target=_writer_loop, args=(env, stop, cycles, busy))
    writer.start()
    time.sleep(1.0)
    attempts = errors = 0
    kinds: dict[str, int] = {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        attempts += 1
        try:
            con = duckdb.connect(str(settings.database), read_only=True)
            con.execute("SELECT count(*) FROM chain_snapshots").fetchall()
            con.close()
        except duckdb.Error as exc:
            errors += 1
            kind = "lock" if "lock" in str(exc).lower() else type(exc).__name__
            kinds[kind] = kinds.get(kind, 0) + 1
        time.sleep(0.01)
    stop.set()
    writer.join(60)
    return {"option_b_requests": attempts, "option_b_errors": errors,
            "option_b_error_rate": round(errors / max(attempts, 1), 4),
            "option_b_error_kinds": kinds, "option_b_writer_cycles": cycles.value,
            "option_b_writer_busy": busy.value}  # fmt: skip


def _writer_loop(env: dict[str, str], stop: Any, cycles: Any, busy: Any) -> None:
    """Collect a new intraday snapshot each loop, like a live market; count lock failures."""
    os.environ.update(env)
    from chalicelib.config import load_settings
    from chalicelib.errors import WriterBusy
    from chalicelib.write.scheduler import run_collect

    settings = load_settings()
    minute = 0
    while not stop.is_set():
        minute += 1
        try:
            run_collect(settings, AS_OF - timedelta(hours=6) + timedelta(minutes=minute))
            cycles.value += 1
        except WriterBusy:  # a read-only reader holds the file: the writer cannot open it
            busy.value += 1
            time.sleep(0.05)


# ---- orchestration --------------------------------------------------------------------
def _spawn(fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """Run one phase in a fresh process (its peak RSS is then its own)."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def run(size: str, option_b_seconds: float = 10.0, keep: bool = False) -> dict[str, Any]:
    preset = SIZES[size]
    tickers = tickers_for(preset["tickers"])
    root = Path(tempfile.mkdtemp(prefix=f"ocd-bench-{size}-"))
    env = environment(root, tickers)
    figures: dict[str, Any] = {"size": size, "machine": _machine()}
    try:
        figures.update(_spawn(phase_write, env, preset["market"]))
        figures.update(_spawn(phase_alerts, env))
        figures.update(_spawn(phase_seed_export, env))
        sample = tickers[:: max(1, len(tickers) // 200)][:200]
        figures.update(_spawn(phase_read, env, sample))
        figures.update(_spawn(phase_option_b, env, option_b_seconds))
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    figures["ratios"] = {
        "export_vs_seed": _ratio(figures.get("seed_export_s"), figures.get("export_s")),
        "snapshot_warm_vs_seed": _ratio(figures["seed_snapshot"]["p50_ms"],
                                        figures["snapshot_warm"]["p50_ms"]),
        "alerts_warm_vs_seed": _ratio(figures["seed_alerts_latest"]["p50_ms"],
                                      figures["alerts_latest_warm"]["p50_ms"]),
    }  # fmt: skip
    return figures


def _ratio(baseline: float | None, ours: float | None) -> float | None:
    if not baseline or not ours:
        return None
    return round(baseline / ours, 1)


def _machine() -> dict[str, Any]:
    import platform

    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform()}  # fmt: skip


def table(figures: dict[str, Any]) -> str:
    f = figures
    rows = [
        ("tickers / contracts", f"{f['tickers']:,} / {f['contracts']:,}"),
        ("backfill (history)", f"{f['backfill_s']:.2f} s"),
        ("collect + flush", f"{f['collect_flush_s']:.2f} s"),
        ("compute (features, alerts)", _s(f.get("compute_s"))),
        ("export (ours)", f"{f['export_s']:.2f} s, {f['export_writes']} writes, "
                          f"{f['export_bytes'] / 1e6:.1f} MB, {f['export_objects']} objects"),
        ("export, delta (no change)", f"{f['delta_export_s']:.2f} s, "
                                      f"{f['delta_export_writes']} writes"),
        ("gzip of chain documents", f"+{f['gzip_chains_s']:.2f} s → "
                                    f"{f['gzip_chains_bytes'] / 1e6:.1f} MB"),
        ("export (seed-style)", f"{f['seed_export_s']:.2f} s, {f['seed_export_writes']} writes, "
                                f"{f['seed_export_bytes'] / 1e6:.1f} MB"),
        ("  ratio seed / ours", f"{f['ratios']['export_vs_seed']}×"),
        ("snapshot cold p50 / p99", _p(f["snapshot_cold"])),
        ("snapshot warm p50 / p99", _p(f["snapshot_warm"])),
        ("snapshot seed-style p50 / p99", _p(f["seed_snapshot"])),
        ("  ratio seed / ours (warm p50)", f"{f['ratios']['snapshot_warm_vs_seed']}×"),
        (f"/alerts/latest ({f['alerts_rows']:,} alerts) warm", _p(f["alerts_latest_warm"])),
        ("/alerts/latest seed-style", _p(f["seed_alerts_latest"])),
        ("  ratio seed / ours (p50)", f"{f['ratios']['alerts_warm_vs_seed']}×"),
        ("peak RSS writer / reader", f"{f['writer_peak_rss_mb']:.0f} MB / "
                                     f"{f['reader_peak_rss_mb']:.0f} MB"),
        ("Option B read-only opens", f"{f['option_b_errors']}/{f['option_b_requests']} failed "
         f"({f['option_b_error_rate']:.1%}) {f['option_b_error_kinds']}"),
        ("Option B writer", f"{f['option_b_writer_cycles']} cycles, "
         f"{f['option_b_writer_busy']} refused (writer busy)"),
    ]  # fmt: skip
    width = max(len(r[0]) for r in rows)
    lines = [f"size: {f['size']}  ({f['machine']['cpus']} CPUs, Python {f['machine']['python']})"]
    lines += [f"{name.ljust(width)}  {value}" for name, value in rows]
    return "\n".join(lines)


def _s(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} s"


def _p(p: dict[str, float]) -> str:
    return f"{p['p50_ms']:.3f} / {p['p99_ms']:.3f} ms (n={p['n']})"


def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else 0.0
