"""NYSE calendar: holidays, the market clock and listed expirations."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from chalicelib.domain import calendar as cal

HOLIDAYS_2026 = {
    date(2026, 1, 1),  # New Year's Day
    date(2026, 1, 19),  # Martin Luther King Jr. Day
    date(2026, 2, 16),  # Washington's Birthday
    date(2026, 4, 3),  # Good Friday
    date(2026, 5, 25),  # Memorial Day
    date(2026, 6, 19),  # Juneteenth
    date(2026, 7, 3),  # Independence Day, observed (July 4 is a Saturday)
    date(2026, 9, 7),  # Labor Day
    date(2026, 11, 26),  # Thanksgiving
    date(2026, 12, 25),  # Christmas
}


def test_nyse_holidays_2026():
    assert cal.nyse_holidays(2026) == HOLIDAYS_2026


@pytest.mark.parametrize(
    ("year", "expected"),
    [
        (2022, {date(2022, 4, 15), date(2022, 6, 20), date(2022, 12, 26)}),  # Sunday rules
        (2027, {date(2027, 3, 26), date(2027, 7, 5), date(2027, 12, 24)}),
    ],
)
def test_observed_and_easter_rules_other_years(year: int, expected: set[date]):
    assert expected <= cal.nyse_holidays(year)


def test_a_saturday_new_year_is_not_observed_on_the_friday_before():
    assert date(2027, 12, 31) not in cal.nyse_holidays(2027)  # 2028-01-01 is a Saturday
    assert cal.is_trading_day(date(2027, 12, 31))


def test_trading_days_skip_weekends_and_holidays():
    assert not cal.is_trading_day(date(2026, 11, 26))  # Thanksgiving
    assert cal.is_trading_day(date(2026, 11, 27))
    assert not cal.is_trading_day(date(2026, 11, 28))  # Saturday
    assert cal.previous_trading_day(date(2026, 11, 27)) == date(2026, 11, 25)
    assert len(cal.trading_days_between(date(2026, 1, 1), date(2026, 12, 31))) == 251
    days = cal.last_trading_days(date(2026, 11, 29), 3)
    assert days == [date(2026, 11, 24), date(2026, 11, 25), date(2026, 11, 27)]


def _utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "day", "quote_time"),
    [
        # Saturday afternoon -> Friday's close (the day after Thanksgiving closes at 13:00
        # New York = 18:00 UTC)
        (_utc(2026, 11, 28, 15), date(2026, 11, 27), _utc(2026, 11, 27, 18)),
        # Sunday night
        (_utc(2026, 11, 30, 2), date(2026, 11, 27), _utc(2026, 11, 27, 18)),
        # Monday 08:00 New York, before the open -> Friday's close
        (_utc(2026, 11, 30, 13), date(2026, 11, 27), _utc(2026, 11, 27, 18)),
        # Friday 22:00 New York (Saturday in UTC) -> that Friday's close
        (_utc(2026, 11, 28, 3), date(2026, 11, 27), _utc(2026, 11, 27, 18)),
        # Saturday after a regular Friday (EST: 16:00 New York = 21:00 UTC)
        (_utc(2026, 12, 5, 15), date(2026, 12, 4), _utc(2026, 12, 4, 21)),
        # Thanksgiving midday -> Wednesday's close
        (_utc(2026, 11, 26, 17), date(2026, 11, 25), _utc(2026, 11, 25, 21)),
        # July 3 2026 (holiday, EDT) -> Thursday's close at 20:00 UTC
        (_utc(2026, 7, 3, 16), date(2026, 7, 2), _utc(2026, 7, 2, 20)),
        # exactly at the close, and after an early close
        (_utc(2026, 11, 24, 21), date(2026, 11, 24), _utc(2026, 11, 24, 21)),
        (_utc(2026, 11, 27, 19), date(2026, 11, 27), _utc(2026, 11, 27, 18)),
    ],
)
def test_market_clock_maps_closed_hours_to_the_previous_close(
    now: datetime, day: date, quote_time: datetime
):
    assert cal.market_clock(now) == (day, 1.0, quote_time)


def test_market_clock_during_the_session():
    day, fraction, quote_time = cal.market_clock(_utc(2026, 11, 24, 17, 45, 31))
    assert day == date(2026, 11, 24)
    assert fraction == pytest.approx((17.75 + 31 / 3600 - 14.5) / 6.5)
    assert quote_time == _utc(2026, 11, 24, 17, 45)


def test_market_clock_at_the_open():
    assert cal.market_clock(_utc(2026, 11, 24, 14, 30)) == (
        date(2026, 11, 24),
        0.0,
        _utc(2026, 11, 24, 14, 30),
    )


def test_expirations_roll_back_from_holiday_fridays():
    listed = cal.listed_expirations(date(2026, 3, 30))
    assert date(2026, 4, 2) in listed  # Good Friday week expires Thursday
    assert date(2026, 4, 3) not in listed
    june = cal.listed_expirations(date(2026, 6, 1))
    assert date(2026, 6, 18) in june  # the June monthly: third Friday is Juneteenth
    assert date(2026, 6, 19) not in june


def test_expirations_are_fridays_weeklies_then_monthlies_to_a_year():
    today = date(2026, 11, 27)
    listed = cal.listed_expirations(today, weeklies=8)
    for day in listed:
        friday = day + timedelta(days=(4 - day.weekday()) % 7)
        assert day.weekday() == 4 or (day.weekday() == 3 and not cal.is_trading_day(friday))
    # the next 8 Fridays (this one included), Christmas and New Year's Day rolled to Thursday
    fridays = [today + timedelta(weeks=w) for w in range(8)]
    rolled = [f if cal.is_trading_day(f) else f - timedelta(days=1) for f in fridays]
    assert date(2026, 12, 24) in rolled and date(2026, 12, 31) in rolled
    assert listed[:8] == rolled
    # ... then third Fridays only (Juneteenth 2027 is observed on the third Friday), to a year
    later = listed[8:]
    assert date(2027, 6, 17) in later
    for day in later:
        third = cal.third_friday(day.year, day.month)
        assert day == (third if cal.is_trading_day(third) else third - timedelta(days=1))
    months = {(d.year, d.month) for d in later}
    assert len(months) == len(later) >= 10
    assert 330 <= (listed[-1] - today).days <= 370
    assert listed == sorted(set(listed))


def test_expiry_close_is_four_pm_new_york():
    assert cal.expiry_close(date(2026, 12, 18)) == _utc(2026, 12, 18, 21)
    assert cal.expiry_close(date(2026, 6, 18)) == _utc(2026, 6, 18, 20)


def test_special_closures_and_juneteenth_follow_the_exchange():
    assert not cal.is_trading_day(date(2018, 12, 5))  # national day of mourning (G. H. W. Bush)
    assert not cal.is_trading_day(date(2025, 1, 9))  # national day of mourning (J. Carter)
    assert cal.is_trading_day(date(2021, 6, 18))  # Juneteenth closures start in 2022
    assert not cal.is_trading_day(date(2022, 6, 20))


def test_early_closes_end_the_session_at_one_pm_new_york():
    assert cal.session_close(date(2026, 11, 27)) == _utc(2026, 11, 27, 18)
    assert cal.session_close(date(2026, 12, 24)) == _utc(2026, 12, 24, 18)
    assert cal.session_close(date(2025, 7, 3)) == _utc(2025, 7, 3, 17)  # EDT
    assert cal.session_close(date(2026, 7, 2)) == _utc(2026, 7, 2, 20)  # a full day, EDT
    assert cal.expiry_close(date(2026, 12, 24)) == _utc(2026, 12, 24, 18)


def test_next_open_and_is_open():
    assert cal.next_open(_utc(2026, 11, 27, 19)) == _utc(2026, 11, 30, 14, 30)
    assert cal.next_open(_utc(2026, 11, 30, 14, 29)) == _utc(2026, 11, 30, 14, 30)
    assert cal.next_open(_utc(2026, 11, 30, 14, 30)) == _utc(2026, 12, 1, 14, 30)
    assert cal.is_open(_utc(2026, 11, 27, 17, 59))
    assert not cal.is_open(_utc(2026, 11, 27, 18))
    assert not cal.is_open(_utc(2026, 11, 28, 16))


def test_session_of_is_the_new_york_date():
    assert cal.session_of(_utc(2026, 11, 25, 1)) == date(2026, 11, 24)  # 20:00 New York
    assert cal.session_of(datetime(2026, 11, 24, 21)) == date(2026, 11, 24)  # naive = UTC


def test_sessions_and_closes_match_exchange_calendars_2000_to_2030():
    """exchange_calendars (a dev-only dependency) is the oracle for every session since 2000."""
    import exchange_calendars as xc

    oracle = xc.get_calendar("XNYS", start="2000-01-01", end="2030-12-31").schedule
    expected = {
        ts.date(): (row.open.to_pydatetime(), row.close.to_pydatetime())
        for ts, row in oracle.iterrows()
    }
    ours = {
        day: cal.session_bounds(day)
        for day in cal.trading_days_between(date(2000, 1, 1), date(2030, 12, 31))
    }
    assert set(ours) == set(expected), sorted(set(ours) ^ set(expected))[:10]
    wrong = {day: (ours[day], expected[day]) for day in ours if ours[day] != expected[day]}
    assert not wrong, list(wrong.items())[:5]
