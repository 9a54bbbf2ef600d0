"""US equity-options calendar: NYSE trading days, session times and listed expirations.

Expirations follow listing practice: weeklies on Fridays for the next several weeks, monthlies on
the third Friday out to about a year; an expiry on an exchange holiday moves to the Thursday before.
Options expire at 16:00 New York time, which is when ``time_to_expiry`` reaches zero.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")
SESSION_OPEN = time(9, 30)
SESSION_CLOSE = time(16, 0)
SECONDS_PER_YEAR = 365.0 * 24 * 3600


def _easter(year: int) -> date:
    """Anonymous Gregorian algorithm (Meeus/Jones/Butcher)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    lx = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * lx) // 451
    month, day = divmod(h + lx - 7 * m + 114, 31)
    return date(year, month, day + 1)


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    first = date(year, month, 1)
    offset = (weekday - first.weekday()) % 7
    if n > 0:
        return first + timedelta(days=offset + 7 * (n - 1))
    nxt = date(year + month // 12, month % 12 + 1, 1)
    back = (nxt.weekday() - weekday - 1) % 7 + 1
    return nxt - timedelta(days=back)


def _observed(day: date) -> date:
    if day.weekday() == 5:
        return day - timedelta(days=1)
    if day.weekday() == 6:
        return day + timedelta(days=1)
    return day


@lru_cache(maxsize=64)
def nyse_holidays(year: int) -> frozenset[date]:
    """Full-day NYSE closures for ``year`` (rules in force since 2022)."""
    days = {
        _nth_weekday(year, 1, 0, 3),  # Martin Luther King Jr. Day
        _nth_weekday(year, 2, 0, 3),  # Washington's Birthday
        _easter(year) - timedelta(days=2),  # Good Friday
        _nth_weekday(year, 5, 0, -1),  # Memorial Day
        _observed(date(year, 6, 19)),
        _observed(date(year, 7, 4)),
        _nth_weekday(year, 9, 0, 1),  # Labor Day
        _nth_weekday(year, 11, 3, 4),  # Thanksgiving
        _observed(date(year, 12, 25)),
    }
    new_year = date(year, 1, 1)
    if new_year.weekday() != 5:  # a Saturday New Year is not observed on the Friday before
        days.add(_observed(new_year))
    return frozenset(days)


def is_trading_day(day: date) -> bool:
    return day.weekday() < 5 and day not in nyse_holidays(day.year)


def previous_trading_day(day: date) -> date:
    day -= timedelta(days=1)
    while not is_trading_day(day):
        day -= timedelta(days=1)
    return day


def trading_days_between(start: date, end: date) -> list[date]:
    """Trading days in [start, end]."""
    out, day = [], start
    while day <= end:
        if is_trading_day(day):
            out.append(day)
        day += timedelta(days=1)
    return out


def last_trading_days(end: date, count: int) -> list[date]:
    """The ``count`` trading days ending at ``end`` (inclusive if it trades), oldest first."""
    out, day = [], end
    while len(out) < count:
        if is_trading_day(day):
            out.append(day)
        day -= timedelta(days=1)
    return out[::-1]


def session_bounds(day: date) -> tuple[datetime, datetime]:
    """Regular session open and close of ``day`` in UTC."""
    open_ = datetime.combine(day, SESSION_OPEN, NEW_YORK).astimezone(UTC)
    close = datetime.combine(day, SESSION_CLOSE, NEW_YORK).astimezone(UTC)
    return open_, close


def market_clock(now: datetime) -> tuple[date, float, datetime]:
    """Map a wall-clock instant to (session day, fraction of session elapsed, quote time).

    Outside regular hours the market shows the last session's close, so a snapshot taken on a
    weekend or at night is the previous close and re-running it is idempotent.
    """
    now = now.astimezone(UTC)
    day = now.astimezone(NEW_YORK).date()
    if is_trading_day(day):
        open_, close = session_bounds(day)
        if now >= close:
            return day, 1.0, close
        if now >= open_:
            fraction = (now - open_) / (close - open_)
            return day, fraction, now.replace(second=0, microsecond=0)
    day = previous_trading_day(day)
    return day, 1.0, session_bounds(day)[1]


def expiry_close(expiration: date) -> datetime:
    return datetime.combine(expiration, SESSION_CLOSE, NEW_YORK).astimezone(UTC)


def _roll_for_holiday(day: date) -> date:
    while not is_trading_day(day):
        day -= timedelta(days=1)
    return day


def third_friday(year: int, month: int) -> date:
    return _nth_weekday(year, month, 4, 3)


def listed_expirations(
    today: date, weeklies: int = 8, horizon_days: int = 370, dailies: int = 0
) -> list[date]:
    """Expirations listed on ``today``: the next ``weeklies`` Fridays plus monthlies to horizon,
    and, for products with daily expiries (SPY, QQQ, IWM), the next ``dailies`` trading days."""
    out: set[date] = set()
    day = today
    while len(out) < dailies:
        if is_trading_day(day):
            out.add(day)
        day += timedelta(days=1)
    friday = today + timedelta(days=(4 - today.weekday()) % 7)
    for week in range(weeklies):
        out.add(_roll_for_holiday(friday + timedelta(weeks=week)))
    year, month = today.year, today.month
    limit = today + timedelta(days=horizon_days)
    while True:
        monthly = _roll_for_holiday(third_friday(year, month))
        if monthly > limit:
            break
        out.add(monthly)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return sorted(day for day in out if day >= today)
