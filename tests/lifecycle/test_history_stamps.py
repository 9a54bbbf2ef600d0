"""Daily history rows carry the session's real close (New York, DST-aware, early closes) and
say when they are still provisional (from an intraday snapshot)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import orjson
import pytest
from lifekit import Life, after_close, ny

from chalicelib import exportformat as fmt
from chalicelib.write.exporter import JSONExporter
from chalicelib.write.store import Store

SUMMER, WINTER, EARLY = date(2026, 7, 14), date(2026, 11, 24), date(2026, 11, 27)


@pytest.mark.parametrize(
    ("day", "close_utc"),
    [
        (SUMMER, datetime(2026, 7, 14, 20)),
        (WINTER, datetime(2026, 11, 24, 21)),
        (EARLY, datetime(2026, 11, 27, 18)),
    ],
    ids=["edt", "est", "early-close"],
)
def test_a_row_is_provisional_until_the_close_is_collected(
    life: Life, day: date, close_utc: datetime
) -> None:
    life.collect(ny(day, time(11, 0)))
    ((close_at, as_of, provisional),) = life.rows(
        "SELECT close_at, as_of, provisional FROM daily_history "
        "WHERE ticker = 'SPY' AND day = ? AND source = 'snapshot'",
        [day],
    )
    assert close_at == close_utc and as_of == ny(day, time(11)).replace(tzinfo=None)
    assert provisional
    life.collect(after_close(day))
    ((close_at, as_of, provisional),) = life.rows(
        "SELECT close_at, as_of, provisional FROM daily_history "
        "WHERE ticker = 'SPY' AND day = ? AND source = 'snapshot'",
        [day],
    )
    assert close_at == close_utc == as_of and not provisional


def test_backfilled_rows_are_stamped_at_each_sessions_real_close(life: Life) -> None:
    life.collect(ny(WINTER, time(11)))
    stamps = dict(
        life.rows(
            "SELECT day, close_at FROM daily_history WHERE ticker = 'SPY' AND source = 'backfill'"
        )
    )
    assert stamps  # the backfill ran
    for day, close_at in stamps.items():
        hour = (
            18
            if day in (date(2026, 11, 27), date(2026, 12, 24))
            else (21 if day >= date(2026, 11, 2) or day < date(2026, 3, 9) else 20)
        )
        assert close_at == datetime.combine(day, time(hour)), day


def test_exported_history_says_when_and_whether_final(life: Life) -> None:
    life.collect(ny(WINTER, time(11)))
    with Store(life.db) as store:
        JSONExporter(store, life.storage, life.settings).export_all()
    manifest = fmt.load_manifest(life.storage)
    assert manifest is not None and manifest.provider == "synthetic"
    assert manifest.market is not None
    assert manifest.market.quotes_as_of == ny(WINTER, time(11))
    assert manifest.market.closes_at == datetime(2026, 11, 24, 21, tzinfo=UTC)
    assert manifest.market.next_open == datetime(2026, 11, 25, 14, 30, tzinfo=UTC)
    chain = orjson.loads(life.storage.get(manifest.chains["SPY"]).data)
    daily = orjson.loads(life.storage.get(manifest.histories["SPY"]).data)
    history = [*fmt.history_rows(daily["columns"]), chain["session"]]
    today = history[-1]
    assert today["provisional"] is True and today["close_at"] == "2026-11-24T21:00:00Z"
    assert today["as_of"] == "2026-11-24T16:00:00Z"
    assert all(not h["provisional"] and h["as_of"] == h["close_at"] for h in history[:-1])
