"""A ticker's daily history (its history document, then its chain's own session) covers the
whole IV-rank window: 252 sessions and today.

Before: 365 calendar days, which hold only about 250 sessions, so the chart of the history missed
days that IV rank and percentile were computed over.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from exportkit import T1, check_document, manifest_of

from chalicelib import exportformat as fmt
from chalicelib.domain import calendar as cal
from chalicelib.storage.base import Storage
from chalicelib.write.exporter import history_start
from chalicelib.write.store import Store


def test_history_start_holds_the_sessions_for_any_day() -> None:
    day, widest = date(2016, 1, 1), 0
    while day < date(2031, 1, 1):
        first = history_start(day, 252)
        sessions = cal.trading_days_between(first, day - timedelta(days=1))
        assert len(sessions) == 252 and cal.is_trading_day(first)
        widest = max(widest, (day - first).days)
        day += timedelta(days=1)
    assert widest > 365  # what the old constant was short of


@pytest.mark.parametrize("window", [252, 300])
def test_the_served_history_reaches_back_over_the_iv_window(
    storage: Storage, store: Store, make_exporter, window: int
) -> None:
    store.rows(
        """
        INSERT OR REPLACE INTO daily_history (ticker, day, close, atm_iv, skew_25d, source,
            close_at)
        SELECT 'SPY', d::DATE, 500.0, 0.2, -0.05, 'backfill', d::TIMESTAMP + INTERVAL 21 HOUR
        FROM generate_series(?::DATE - INTERVAL 500 DAY, ?::DATE - INTERVAL 1 DAY,
                             INTERVAL 1 DAY) AS s(d)
        WHERE dayofweek(d) BETWEEN 1 AND 5
        """,
        [T1.date(), T1.date()],
    )
    make_exporter(analytics=f'{{"iv_window_days": {window}}}').export_all()
    manifest = manifest_of(storage)
    chain = check_document(storage.get(manifest.chains["SPY"]).data, "chain")
    history = check_document(storage.get(manifest.histories["SPY"]).data, "history")
    rows = [*fmt.history_rows(history["columns"]), chain["session"]]
    days = [row["as_of"][:10] for row in rows]
    assert days == sorted(days)
    assert history["since"] == days[0]
    first = history_start(T1.date(), window)
    assert days[0] == first.isoformat()
    sessions = set(cal.trading_days_between(first, T1.date()))
    assert {d.isoformat() for d in sessions} <= set(days)
    assert len(sessions) == window + 1  # the window and the snapshot's own day
