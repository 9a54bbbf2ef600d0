"""US equity-options calendar: NYSE trading days, session times and listed expirations.

Expirations follow listing practice: weeklies on Fridays for the next several weeks, monthlies on
the third Friday out to about a year; an expiry on an exchange holiday moves to the Thursday before.
Options expire at 16:00 New York time, which is when ``time_to_expiry`` reaches zero.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays
from holidays.constants import HALF_DAY

NEW_YORK = ZoneInfo("America/New_York")
SESSION_OPEN = time(9, 30)
SESSION_CLOSE = time(16, 0)
EARLY_CLOSE = time(13, 0)
SECONDS_PER_YEAR = 365.0 * 24 * 3600


@lru_cache(maxsize=128)
def nyse_holidays(year: int) -> frozenset[date]:
    """Full-day NYSE closures in ``year``, special closures included (2018-12-05, 2025-01-09).

    From the ``holidays`` package's NYSE calendar rather than hand-kept rules: those got
    Juneteenth wrong before 2022 and knew no special closures.
    """
    return frozenset(holidays.financial_holidays("NYSE", years=year))


@lru_cache(maxsize=128)
def nyse_early_closes(year: int) -> frozenset[date]:
    """Sessions that close at 13:00 New York (the days around Independence Day, Thanksgiving
    and Christmas)."""
    return frozenset(holidays.financial_holidays("NYSE", years=year, categories=(HALF_DAY,)))


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


def close_time(day: date) -> time:
    """New York wall-clock time at which ``day``'s session closes (13:00 on early closes)."""
    return EARLY_CLOSE if day in nyse_early_closes(day.year) else SESSION_CLOSE


def session_bounds(day: date) -> tuple[datetime, datetime]:
    """Open and close of ``day``'s session in UTC (DST-aware; early closes at 13:00)."""
    open_ = datetime.combine(day, SESSION_OPEN, NEW_YORK).astimezone(UTC)
    close = datetime.combine(day, close_time(day), NEW_YORK).astimezone(UTC)
    return open_, close


def session_close(day: date) -> datetime:
    """When ``day``'s session closes, in UTC: what a daily history row is stamped with."""
    return session_bounds(day)[1]


def session_of(instant: datetime) -> date:
    """The New York calendar date of ``instant``: the session a snapshot belongs to."""
    aware = instant if instant.tzinfo else instant.replace(tzinfo=UTC)
    return aware.astimezone(NEW_YORK).date()


def next_trading_day(day: date) -> date:
    day += timedelta(days=1)
    while not is_trading_day(day):
        day += timedelta(days=1)
    return day


def next_open(now: datetime) -> datetime:
    """The next session open strictly after ``now`` (UTC)."""
    day = now.astimezone(NEW_YORK).date()
    if not is_trading_day(day) or now >= session_bounds(day)[0]:
        day = next_trading_day(day)
    return session_bounds(day)[0]


def is_open(now: datetime) -> bool:
    """Whether a regular session is under way at ``now``."""
    day = now.astimezone(NEW_YORK).date()
    if not is_trading_day(day):
        return False
    open_, close = session_bounds(day)
    return open_ <= now < close


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
    """Options stop trading at the session's close (13:00 New York on an early close)."""
    return session_close(expiration)


def _roll_for_holiday(day: date) -> date:
    while not is_trading_day(day):
        day -= timedelta(days=1)
    return day


def third_friday(year: int, month: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(4 - first.weekday()) % 7 + 14)


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
