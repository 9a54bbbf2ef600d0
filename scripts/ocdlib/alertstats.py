"""Alert repeats over simulated sessions: the bench's (and a test's) measure of whether alerts
report changes rather than states.

Drives the real write path — the scheduler's collect, then ``analyse`` — over consecutive
sessions of the synthetic market, one snapshot per session at the close, in a data dir of its
own, and measures the alerts with :func:`chalicelib.analytics.alertstats.alert_stats`. The
defaults are the issue's measure: 30 sessions × 8 tickers (three ETFs, five single names) from
2025-12-08 (across the year end and into the earnings season), seed 7.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from chalicelib.analytics.alertstats import AlertStats, alert_stats
from chalicelib.domain import calendar as cal

TICKERS = ("SPY", "QQQ", "IWM", "AAPL", "MSFT", "TSLA", "NVDA", "JPM")
START = date(2025, 12, 8)
SESSIONS = 30


@dataclass
class Simulation:
    settings: Any
    sessions: list[date]
    results: list[Any]  # one AnalysisResult per session
    alerts: list[tuple[Any, ...]]  # ticker, detector, score, created_at, metrics, explanation
    features: int  # rows in the features table
    stats: AlertStats


def simulate(
    data_dir: Path,
    *,
    sessions: int = SESSIONS,
    tickers: tuple[str, ...] = TICKERS,
    start: date = START,
    seed: int = 7,
    weeklies: int = 4,
    horizon_days: int = 200,
) -> Simulation:
    """Collect and analyse once per session, a minute after the close, for ``sessions``
    trading days from ``start``. Fewer listed expiries than the market's default
    (``weeklies``, ``horizon_days``) only keep the run short; its events are the seed's."""
    from chalicelib.analytics.detectors import DETECTORS
    from chalicelib.config import load_settings
    from chalicelib.write.analysis import analyse
    from chalicelib.write.providers.synthetic import SyntheticMarket
    from chalicelib.write.scheduler import Scheduler
    from chalicelib.write.store import Store

    settings = load_settings(
        {
            "OCD_DATA_DIR": str(data_dir),
            "OCD_WATCHLIST": ",".join(tickers),
            "OCD_SEED": str(seed),
            "OCD_LOG_LEVEL": "WARNING",
        }
    )
    market = SyntheticMarket(
        seed=seed, rate=settings.risk_free_rate, weeklies=weeklies, horizon_days=horizon_days
    )
    days = cal.trading_days_between(start, start + timedelta(days=2 * sessions + 14))[:sessions]
    results = []
    with Store(settings.database) as store:
        scheduler = Scheduler(settings, store, market, analysis=False)
        for day in days:
            now = cal.session_close(day) + timedelta(minutes=1)
            scan = scheduler.collect(now)
            results.append(
                analyse(store, settings, market, scan["scan_id"], now, config=settings.analytics)
            )
        alerts = store.rows(
            "SELECT ticker, detector_name, score, created_at, metrics, explanation FROM alerts "
            "ORDER BY created_at, score DESC"
        )
        features = store.count("features")
    stats = alert_stats([(a[0], a[1], a[3]) for a in alerts], detectors=[d.name for d in DETECTORS])
    return Simulation(settings, days, results, alerts, features, stats)


def run(
    sessions: int = SESSIONS, tickers: tuple[str, ...] = TICKERS, seed: int = 7
) -> dict[str, Any]:
    """The figures of one simulation in a temp dir, for ``ocd.py bench``."""
    with tempfile.TemporaryDirectory(prefix="ocd-alertstats-") as tmp:
        return figures(simulate(Path(tmp), sessions=sessions, tickers=tickers, seed=seed))


def figures(sim: Simulation) -> dict[str, Any]:
    return {
        "sessions": len(sim.sessions),
        "tickers": len(sim.settings.watchlist),
        "seed": sim.settings.seed,
        **sim.stats.as_dict(),
    }


def report(figures: dict[str, Any]) -> str:
    """The figures as the lines the bench prints."""
    stats = AlertStats(
        alerts=figures["alerts"],
        repeats=figures["repeats"],
        window_hours=figures["window_hours"],
        by_detector=figures["by_detector"],
        repeats_by_detector=figures["repeats_by_detector"],
    )
    head = f"alert repeats, {figures['sessions']} sessions × {figures['tickers']} tickers"
    return "\n".join([head, *stats.lines()])
