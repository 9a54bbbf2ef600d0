"""``ocd.py bench``: measure our design against seed-style baselines, in one run, side by side.

Each phase runs in its own process (spawned), as each scheduled run does on Lambda, so peak RSS
is the phase's own: backfill, collect + flush, compute (features, alerts), export. Nothing here
is asserted: the figures are printed as a table beside the goals (``GOALS``) and written as
JSON. Baselines, written for the benchmark only:
- seed-style exporter: fetch all rows, build dicts, ``json.dump`` one file per kind;
- seed-style reader: ``json.load`` the whole file per request, filter in Python;
- Option B: a reader process opening the DuckDB file read-only per request while a writer runs;
- chain documents built by DuckDB's own JSON functions, against ours (result columns + orjson).
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
class _TimedProvider:
    """The synthetic market, its own time counted apart: how long the collector waited for
    the market data it stores (the data source, not the pipeline)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seconds = 0.0

    def fetch_chains(self, tickers: list[str], now: datetime) -> Any:
        return self._timed(self.inner.fetch_chains(tickers, now))

    def fetch_histories(self, *args: Any, **kwargs: Any) -> Any:
        return self._timed(self.inner.fetch_histories(*args, **kwargs))

    def _timed(self, results: Any) -> Any:
        results = iter(results)
        while True:
            start = time.perf_counter()
            try:
                item = next(results)
            except StopIteration:
                self.seconds += time.perf_counter() - start
                return
            self.seconds += time.perf_counter() - start
            yield item

    def fetch_history(self, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return self.inner.fetch_history(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _scheduler(env: dict[str, str], market: dict[str, Any], analysis: bool) -> Any:
    os.environ.update(env)
    from chalicelib.config import load_settings
    from chalicelib.write.providers.synthetic import SyntheticMarket
    from chalicelib.write.scheduler import Scheduler
    from chalicelib.write.store import Store

    settings = load_settings()
    store = Store(settings.database)
    provider = _TimedProvider(SyntheticMarket(**market))
    return Scheduler(settings, store, provider=provider, analysis=analysis)  # type: ignore[arg-type]


def phase_backfill(env: dict[str, str], market: dict[str, Any]) -> dict[str, Any]:
    """A year of daily history for every ticker (what a new watchlist gets first)."""
    scheduler = _scheduler(env, market, analysis=False)
    try:
        tickers = list(scheduler.settings.watchlist)
        seconds, _ = timed(lambda: scheduler._backfill(tickers, AS_OF))
    finally:
        scheduler.store.close()
    return {"backfill_s": seconds, "backfill_provider_s": scheduler.provider.seconds,
            "backfill_peak_rss_mb": peak_rss_mb()}  # fmt: skip


def phase_collect(env: dict[str, str], market: dict[str, Any]) -> dict[str, Any]:
    """Collect and flush every chain (features and alerts are the compute phase)."""
    scheduler = _scheduler(env, market, analysis=False)
    try:
        seconds, summary = timed(lambda: scheduler.collect(AS_OF))
    finally:
        scheduler.store.close()
    return {"collect_flush_s": seconds, "collect_provider_s": scheduler.provider.seconds,
            "contracts": summary["rows_flushed"], "tickers": summary["chains_collected"],
            "scan_id": summary["scan_id"], "collect_peak_rss_mb": peak_rss_mb()}  # fmt: skip


def phase_compute(env: dict[str, str], market: dict[str, Any], scan_id: str) -> dict[str, Any]:
    """Features and alerts for every ticker's chain."""
    scheduler = _scheduler(env, market, analysis=True)
    try:
        from chalicelib.write.analysis import analyse

        seconds, _ = timed(lambda: analyse(scheduler.store, scheduler.settings,
                                           scheduler.provider, scan_id, AS_OF))  # fmt: skip
        scheduler.store.checkpoint()
    finally:
        scheduler.store.close()
    return {"compute_s": seconds, "compute_peak_rss_mb": peak_rss_mb()}


def phase_export(env: dict[str, str]) -> dict[str, Any]:
    """Export (first: every document), then again with nothing new (delta)."""
    os.environ.update(env)
    from chalicelib.config import load_settings
    from chalicelib.storage.factory import make_storage
    from chalicelib.write.exporter import JSONExporter
    from chalicelib.write.store import Store

    settings = load_settings()
    out: dict[str, Any] = {}
    with Store(settings.database) as store:
        storage = make_storage(settings)
        exporter = JSONExporter(store, storage, settings)
        out["export_s"], results = timed(exporter.export_all)
        out["export_peak_rss_mb"] = peak_rss_mb()
        manifest = _manifest(settings)
        out["export_writes"] = manifest["storage_writes"]
        out["export_bytes"] = dir_bytes(settings.exports)
        out["export_objects"] = sum(1 for p in settings.exports.rglob("*.json*") if p.is_file())
        out["export_ok"] = all(r.ok for r in results.values())
        out.update(_document_sizes(manifest))
        out["delta_export_s"], _ = timed(exporter.export_all)
        out["delta_export_writes"] = _manifest(settings)["storage_writes"]
        out["gzip_chains_s"], out["gzip_chains_bytes"] = _gzip_cost(settings.exports)
    out["writer_peak_rss_mb"] = peak_rss_mb()
    return out


def _document_sizes(manifest: dict[str, Any]) -> dict[str, Any]:
    """Bytes per contract of the chain documents (their contracts and session), and of
    everything per-ticker (with the history and features documents)."""
    docs = manifest["documents"]

    def entries(name: str) -> list[dict[str, Any]]:
        return [docs[k] for k in manifest.get(name, {}).values()]

    chains = entries("chains")
    contracts = sum(e["rows"] for e in chains) or 1
    chain_bytes = sum(e["bytes"] for e in chains)
    history_bytes = sum(e["bytes"] for e in entries("histories"))
    feature_bytes = sum(e["bytes"] for e in entries("feature_sets"))
    return {
        "chain_bytes": chain_bytes,
        "history_bytes": history_bytes,
        "feature_set_bytes": feature_bytes,
        "chain_bytes_per_contract": round(chain_bytes / contracts, 1),
        "ticker_bytes_per_contract": round(
            (chain_bytes + history_bytes + feature_bytes) / contracts, 1
        ),
    }


def phase_build_methods(env: dict[str, str]) -> dict[str, Any]:
    """The contracts of every chain document built two ways, nothing written: DuckDB building
    each ticker's columns as JSON (one aggregate per field, sorted and rounded in SQL), and
    ours (the result columns put in order and rounded in numpy, sliced per ticker, serialized
    with orjson)."""
    os.environ.update(env)
    import numpy as np
    import orjson

    from chalicelib import catalogue
    from chalicelib import exportformat as fmt
    from chalicelib.config import load_settings
    from chalicelib.write import export_queries as q
    from chalicelib.write.exporter import _Plan, contract_columns
    from chalicelib.write.store import Store

    settings = load_settings()
    fields = [f for f in catalogue.CONTRACT_FIELDS if f.name in fmt.CONTRACT_COLUMNS]
    duckdb_json = f"""
        SELECT ticker, encode(to_json(struct_pack({", ".join(
            f"{f.name} := list({f.name})" for f in fields)}))::VARCHAR)
        FROM (SELECT q.ticker, {", ".join(
            f"{q.rounded('q.' + f.name, f.precision)} AS {f.name}" for f in fields)}
              FROM option_quotes q SEMI JOIN wanted w
                ON q.ticker = w.ticker AND q.as_of = w.as_of_ts
              WHERE q.as_of >= ?
              ORDER BY q.ticker, q.expiration, q."right", q.strike)
        GROUP BY ticker
    """  # fmt: skip
    with Store(settings.database, read_only=True) as store:
        snaps = store.columns(q.LATEST_SNAPSHOTS)
        n = len(snaps["ticker"])
        plan = _Plan.of(snaps, n, settings.analytics.iv_window_days)
        oldest = np.min(plan.as_of_ts).item()
        with store.registered("wanted", plan.table(range(n))):
            duck_s, rows = timed(lambda: store.rows(duckdb_json, [oldest]))

            def ours() -> int:  # ordered and rounded in numpy, as the exporter does
                contracts = contract_columns(store, oldest, n)
                cols, cuts = contracts["columns"], contracts["cuts"]
                return sum(len(orjson.dumps({k: v[a:b] for k, v in cols.items()},
                                            option=orjson.OPT_SERIALIZE_NUMPY))
                           for a, b in itertools.pairwise(cuts))  # fmt: skip

            ours_s, ours_bytes = timed(ours)
    return {"build_duckdb_json_s": duck_s, "build_duckdb_json_bytes": sum(len(r[1]) for r in rows),
            "build_orjson_s": ours_s, "build_orjson_bytes": ours_bytes}  # fmt: skip


def phase_import_time(runs: int = 7) -> dict[str, Any]:
    """The API handler's cold import (``python -X importtime -c "import app"``, each run a new
    interpreter), with every module's bytecode compiled beforehand (as Python writes it on a
    first import, and as a package can ship it: the goal's figure), and with none at all (every
    module compiled in the run: a package without ``.pyc``, as ``package.sh`` builds today).
    Each figure has its own bytecode directory (``PYTHONPYCACHEPREFIX``), so neither depends on
    what ``__pycache__`` this checkout holds, nor on ``PYTHONDONTWRITEBYTECODE``."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]

    def once(env: dict[str, str]) -> float:
        command = [sys.executable, "-X", "importtime", "-c", "import app"]
        err = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True,
                             check=True).stderr  # fmt: skip
        line = [x for x in err.splitlines() if x.rstrip().endswith("| app")][-1]
        return int(line.split("|")[1]) / 1000

    def summary(totals: list[float]) -> dict[str, Any]:
        return {"min": round(min(totals), 1), "median": round(statistics.median(totals), 1),
                "n": len(totals)}  # fmt: skip

    base = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory() as compiled, tempfile.TemporaryDirectory() as empty:
        cached = {**base, "PYTHONPYCACHEPREFIX": compiled}
        once(cached)  # writes every module's bytecode
        warm = [once(cached) for _ in range(runs)]
        bare = {**base, "PYTHONPYCACHEPREFIX": empty, "PYTHONDONTWRITEBYTECODE": "1"}
        cold = [once(bare) for _ in range(runs)]
    return {"import_ms": summary(warm), "import_uncompiled_ms": summary(cold)}


def _first_request(env: dict[str, str], ticker: str) -> dict[str, Any]:
    """Import the app and answer one snapshot in a fresh process: a Lambda's cold start."""
    os.environ.update(env)
    start = time.perf_counter()
    from chalice.test import Client

    from app import app

    imported = time.perf_counter()
    with Client(app) as client:
        response = client.http.get(f"/options/{ticker}/snapshot")
    assert response.status_code == 200, response.body[:200]
    return {
        "cold_start_ms": {
            "import": round((imported - start) * 1000, 1),
            "first_request": round((time.perf_counter() - imported) * 1000, 1),
        }
    }


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
        queries = [f"/alerts?ticker={sample[i % len(sample)]}&min_score=50" for i in range(5)]
        queries += ["/alerts?detector=rich_premium", "/alerts?min_score=90&limit=500"]
        for path in queries:  # the first of each builds its filtered list: warm from then on
            client.http.get(path)
        filtered = [timed(lambda p=p: client.http.get(p))[0] for p in queries for _ in range(40)]
        out["alerts_query_warm"] = percentiles(filtered)
        packed = {"Accept-Encoding": "gzip"}
        gz = [
            timed(lambda t=t: client.http.get(f"/options/{t}/snapshot", headers=packed))[0]
            for t in sample[:WARM_TICKERS] for _ in range(10)
        ]  # fmt: skip
        out["snapshot_warm_gzip"] = percentiles(gz)
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
    """Run the collect schedule in a loop (the writer holds the file each run), after the
    benchmark's snapshot (the clock only moves forward); count lock failures."""
    os.environ.update(env)
    from chalicelib.config import load_settings
    from chalicelib.errors import WriterBusy
    from chalicelib.write.scheduler import run_collect

    settings = load_settings()
    minute = 0
    while not stop.is_set():
        minute += 1
        try:
            # the writer's clock only moves forward: after the benchmark's own snapshot
            run_collect(settings, AS_OF + timedelta(minutes=minute))
            cycles.value += 1
        except WriterBusy:  # a read-only reader holds the file: the writer cannot open it
            busy.value += 1
            time.sleep(0.05)


# ---- orchestration --------------------------------------------------------------------
def phase_alert_repeats() -> dict[str, Any]:
    """Issue 17's measure, whatever the size: 30 sessions × 8 tickers of the synthetic market,
    collected and analysed at each close (``alertstats``)."""
    from ocdlib import alertstats

    start = time.perf_counter()
    figures = alertstats.run()
    return {"alert_repeats": {**figures, "seconds": round(time.perf_counter() - start, 1)}}


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
        figures.update(_spawn(phase_backfill, env, preset["market"]))
        figures.update(_spawn(phase_collect, env, preset["market"]))
        figures.update(_spawn(phase_compute, env, preset["market"], figures["scan_id"]))
        figures.update(_spawn(phase_export, env))
        figures.update(_spawn(phase_build_methods, env))
        figures.update(_spawn(phase_alerts, env))
        figures.update(_spawn(phase_seed_export, env))
        figures.update(phase_import_time())
        sample = tickers[:: max(1, len(tickers) // 200)][:200]
        figures.update(_spawn(_first_request, env, sample[-1]))
        figures.update(_spawn(phase_read, env, sample))
        figures.update(_spawn(phase_option_b, env, option_b_seconds))
        figures.update(_spawn(phase_alert_repeats))
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    figures["pipeline_s"] = sum(
        figures[k] for k in ("collect_flush_s", "compute_s", "export_s")
    )  # collect + flush + compute + export
    figures["ratios"] = {
        "export_vs_seed": _ratio(figures.get("seed_export_s"), figures.get("export_s")),
        "snapshot_warm_vs_seed": _ratio(figures["seed_snapshot"]["p50_ms"],
                                        figures["snapshot_warm"]["p50_ms"]),
        "alerts_warm_vs_seed": _ratio(figures["seed_alerts_latest"]["p50_ms"],
                                      figures["alerts_latest_warm"]["p50_ms"]),
        "build_orjson_vs_duckdb_json": _ratio(figures.get("build_duckdb_json_s"),
                                              figures.get("build_orjson_s")),
    }  # fmt: skip
    figures["goals"] = goals(figures)
    return figures


# Issue 13's goals (full size, this 2-core machine): (label, figure, bound, "<=" or ">=").
GOALS: tuple[tuple[str, Callable[[dict[str, Any]], float | None], float, str], ...] = (
    ("backfill", lambda f: f["backfill_s"], 20.0, "<="),
    ("collect + flush + compute + export", lambda f: f["pipeline_s"], 10.0, "<="),
    ("export", lambda f: f["export_s"], 3.0, "<="),
    ("export vs seed-style", lambda f: f["ratios"]["export_vs_seed"], 10.0, ">="),
    ("delta export, nothing new", lambda f: f["delta_export_s"], 0.5, "<="),
    ("chain bytes per contract", lambda f: f["chain_bytes_per_contract"], 120.0, "<="),
    ("snapshot cold p99 (ms)", lambda f: f["snapshot_cold"]["p99_ms"], 10.0, "<="),
    ("/alerts filters warm p99 (ms)", lambda f: f["alerts_query_warm"]["p99_ms"], 1.0, "<="),
    ("API cold import (ms, min)", lambda f: f["import_ms"]["min"], 150.0, "<="),
    # Issue 17's (any size): alerts report changes, and every detector still fires.
    ("alert repeats within 72 h (%)", lambda f: 100 * f["alert_repeats"]["repeat_share"], 15.0,
     "<="),
    ("detectors that fired (of 7)",
     lambda f: sum(1 for n in f["alert_repeats"]["by_detector"].values() if n), 7.0, ">="),
)  # fmt: skip


def goals(figures: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for label, figure, bound, sense in GOALS:
        value = figure(figures)
        met = value is not None and (value <= bound if sense == "<=" else value >= bound)
        out.append({"goal": label, "value": value, "bound": f"{sense} {bound:g}", "met": met})
    return out


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
        ("backfill (history)", f"{f['backfill_s']:.2f} s (market data "
                               f"{f['backfill_provider_s']:.2f} s)"),
        ("collect + flush", f"{f['collect_flush_s']:.2f} s (market data "
                            f"{f['collect_provider_s']:.2f} s)"),
        ("compute (features, alerts)", _s(f.get("compute_s"))),
        ("export (ours)", f"{f['export_s']:.2f} s, {f['export_writes']} writes, "
                          f"{f['export_bytes'] / 1e6:.1f} MB, {f['export_objects']} objects"),
        ("  bytes per contract", f"{f['chain_bytes_per_contract']} (chain documents), "
                                 f"{f['ticker_bytes_per_contract']} (with history documents)"),
        ("export, delta (no change)", f"{f['delta_export_s']:.2f} s, "
                                      f"{f['delta_export_writes']} writes"),
        ("gzip of chain documents", f"+{f['gzip_chains_s']:.2f} s → "
                                    f"{f['gzip_chains_bytes'] / 1e6:.1f} MB"),
        ("chains built by DuckDB JSON", f"{f['build_duckdb_json_s']:.2f} s, "
                                        f"{f['build_duckdb_json_bytes'] / 1e6:.1f} MB"),
        ("chains built by orjson (ours)", f"{f['build_orjson_s']:.2f} s, "
                                          f"{f['build_orjson_bytes'] / 1e6:.1f} MB "
                                          f"({f['ratios']['build_orjson_vs_duckdb_json']}×)"),
        ("export (seed-style)", f"{f['seed_export_s']:.2f} s, {f['seed_export_writes']} writes, "
                                f"{f['seed_export_bytes'] / 1e6:.1f} MB"),
        ("  ratio seed / ours", f"{f['ratios']['export_vs_seed']}×"),
        ("API cold import", f"{f['import_ms']['min']:.0f} ms min, "
                            f"{f['import_ms']['median']:.0f} ms median (n={f['import_ms']['n']})"),
        ("  with no bytecode at all", f"{f['import_uncompiled_ms']['min']:.0f} ms min, "
                                      f"{f['import_uncompiled_ms']['median']:.0f} ms median"),
        ("  new process: import, first snapshot", f"{f['cold_start_ms']['import']:.0f} ms, "
                                                  f"{f['cold_start_ms']['first_request']:.0f} ms"),
        ("snapshot cold p50 / p99", _p(f["snapshot_cold"])),
        ("snapshot warm p50 / p99", _p(f["snapshot_warm"])),
        ("snapshot warm, gzip p50 / p99", _p(f["snapshot_warm_gzip"])),
        ("snapshot seed-style p50 / p99", _p(f["seed_snapshot"])),
        ("  ratio seed / ours (warm p50)", f"{f['ratios']['snapshot_warm_vs_seed']}×"),
        (f"/alerts/latest ({f['alerts_rows']:,} alerts) warm", _p(f["alerts_latest_warm"])),
        ("/alerts?… filters warm", _p(f["alerts_query_warm"])),
        ("/alerts/latest seed-style", _p(f["seed_alerts_latest"])),
        ("  ratio seed / ours (p50)", f"{f['ratios']['alerts_warm_vs_seed']}×"),
        ("peak RSS backfill / collect / compute", f"{f['backfill_peak_rss_mb']:.0f} / "
         f"{f['collect_peak_rss_mb']:.0f} / {f['compute_peak_rss_mb']:.0f} MB"),
        ("peak RSS export / reader", f"{f['export_peak_rss_mb']:.0f} MB (with delta "
         f"{f['writer_peak_rss_mb']:.0f}) / {f['reader_peak_rss_mb']:.0f} MB"),
        ("Option B read-only opens", f"{f['option_b_errors']}/{f['option_b_requests']} failed "
         f"({f['option_b_error_rate']:.1%}) {f['option_b_error_kinds']}"),
        ("Option B writer", f"{f['option_b_writer_cycles']} cycles, "
         f"{f['option_b_writer_busy']} refused (writer busy)"),
    ]  # fmt: skip
    width = max(len(r[0]) for r in rows)
    lines = [f"size: {f['size']}  ({f['machine']['cpus']} CPUs, Python {f['machine']['python']})"]
    lines += [f"{name.ljust(width)}  {value}" for name, value in rows]
    lines += ["", alertstats_report(f["alert_repeats"])]
    lines += ["", "goals (issue 13 at full size; issue 17's alert goals at any):"]
    for g in f["goals"]:
        value = "n/a" if g["value"] is None else f"{g['value']:g}"
        lines.append(f"  {g['goal'].ljust(38)} {value:>10}  {g['bound']:>8}  "
                     f"{'met' if g['met'] else 'NOT met'}")  # fmt: skip
    return "\n".join(lines)


def alertstats_report(figures: dict[str, Any]) -> str:
    from ocdlib import alertstats

    head, _, rest = alertstats.report(figures).partition("\n")
    return f"{head} ({figures['seconds']} s)\n{rest}"


def _s(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} s"


def _p(p: dict[str, float]) -> str:
    return f"{p['p50_ms']:.3f} / {p['p99_ms']:.3f} ms (n={p['n']})"


def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else 0.0
