"""Thirty simulated trading days driven like the scheduler: collect at 21:00 UTC, then analyse.

Checks that every detector fires on the default seed, that scores spread over the range, and that
the throttling rules hold across the whole run. Run with ``-s`` to see the score histogram.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from chalicelib.analytics.detectors import DETECTORS
from chalicelib.config import load_settings
from chalicelib.domain import calendar as cal
from chalicelib.write.analysis import AnalysisResult, analyse
from chalicelib.write.providers.synthetic import SyntheticMarket
from chalicelib.write.scheduler import Scheduler
from chalicelib.write.store import Store

WATCHLIST = "SPY,QQQ,IWM,AAPL,MSFT,TSLA,NVDA,JPM"  # three ETFs, five single names
START = date(2025, 12, 8)  # spans the year end: holidays, earnings season ahead
DAYS = 30


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp: Path = tmp_path_factory.mktemp("month")
    settings = load_settings({"OCD_DATA_DIR": str(tmp), "OCD_WATCHLIST": WATCHLIST})
    # Fewer listed expiries than the default only to keep the run short; the market's events
    # (regimes, IV spikes, earnings, volume bursts) are those of the default seed.
    market = SyntheticMarket(
        seed=settings.seed, rate=settings.risk_free_rate, weeklies=4, horizon_days=200
    )
    days = cal.trading_days_between(START, START + timedelta(days=60))[:DAYS]
    results: list[AnalysisResult] = []
    with Store(settings.database) as store:
        scheduler = Scheduler(settings, store, market, analysis=False)
        for day in days:
            now = datetime(day.year, day.month, day.day, 21, 0, tzinfo=UTC)
            scan = scheduler.collect(now)
            results.append(analyse(store, settings, market, scan["scan_id"], now))
        alerts = store.rows(
            "SELECT ticker, detector_name, score, created_at, metrics FROM alerts "
            "ORDER BY created_at, score DESC"
        )
        features = store.count("features")
    return {
        "settings": settings,
        "days": days,
        "results": results,
        "alerts": alerts,
        "features": features,
    }


def test_every_cycle_computes_every_ticker_without_errors(month) -> None:
    assert len(month["results"]) == DAYS
    assert all(r.errors == [] for r in month["results"]), [r.errors for r in month["results"]]
    assert all(r.features_computed == 8 for r in month["results"])
    assert month["features"] == 8 * DAYS


def test_every_detector_fires_and_scores_spread(month) -> None:
    alerts = month["alerts"]
    by_detector = Counter(a[1] for a in alerts)
    deciles = Counter(min(int(a[2] // 10) * 10, 90) for a in alerts)
    print(
        f"\n{len(alerts)} alerts over {DAYS} days; by detector: {dict(sorted(by_detector.items()))}"
    )
    for low in range(0, 100, 10):
        if deciles[low]:
            print(f"  {low:>3}-{low + 9:<3} {deciles[low]:>4} {'#' * deciles[low]}")
    assert set(by_detector) == {d.name for d in DETECTORS}
    assert len(deciles) >= 3
    assert sum(1 for a in alerts if a[2] >= 99.95) < len(alerts) / 10  # not all 100


def test_throttling_holds_over_the_month(month) -> None:
    settings = month["settings"]
    alerts = month["alerts"]
    assert all(a[2] >= settings.min_alert_score for a in alerts)
    per_day = Counter(a[3].date() for a in alerts)
    assert max(per_day.values()) <= settings.alert_daily_cap
    last: dict[tuple[str, str], datetime] = {}
    for ticker, detector, _, created, _ in alerts:
        key = (ticker, detector)
        if key in last:
            assert created - last[key] >= timedelta(hours=settings.alert_cooldown_hours)
        last[key] = created


def test_unusual_activity_is_scored_against_contract_history(month) -> None:
    unusual = [json.loads(a[4]) for a in month["alerts"] if a[1] == "unusual_activity"]
    assert any(m["zscore"] is not None for m in unusual)
