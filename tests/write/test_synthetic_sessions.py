"""The synthetic market over simulated sessions behaves like a market (issue 17, part 3).

Statistics over a dozen sessions, snapshot every 30 minutes, a few tickers, fixed seed. Each test
pins one defect the old generator had: volume that fell between snapshots, overnight OI changes
no trade explains, fixed put/call ratios and GEX signs, call wall = put wall, intraday noise
unrelated to daily vol, weekly-only SPY, wide SPY quotes, and an earnings jump in the wrong
session with the event still priced after it.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from chalicelib.analytics.features import DailyInputs, compute_features
from chalicelib.domain import calendar as cal
from chalicelib.domain.chain import ChainBatch
from chalicelib.write.providers.base import ChainResult
from chalicelib.write.providers.synthetic import SyntheticMarket, max_quote_width

TICKERS = ("SPY", "IWM", "AAPL", "JPM")  # two ETFs (one with SPY's liquidity), two stocks
SESSIONS = cal.trading_days_between(date(2026, 3, 2), date(2026, 3, 31))[:12]
STEP = timedelta(minutes=30)
FEATURE_SNAPSHOTS = (1, 7, 13)  # 10:00, 13:00 and the close


def snapshot_times(day: date) -> list[datetime]:
    open_, close = cal.session_bounds(day)
    return [open_ + k * STEP for k in range((close - open_) // STEP + 1)]


def contract_key(batch: ChainBatch) -> np.ndarray:
    """One integer per contract: expiry day, strike in cents, right."""
    days = batch["expiration"].astype("datetime64[D]").astype(np.int64)
    cents = np.round(batch["strike"] * 100).astype(np.int64)
    return (days * 10_000_000 + cents) * 2 + (batch["right"] == "C")


@dataclass(frozen=True)
class Snapshot:
    key: np.ndarray
    volume: np.ndarray
    open_interest: np.ndarray
    price: float
    features: dict[str, Any] | None  # computed at FEATURE_SNAPSHOTS only


def features_of(result: ChainResult, market: SyntheticMarket) -> dict[str, Any]:
    u = result.underlying
    return compute_features(
        result.contracts,
        u.price,
        u.as_of,
        DailyInputs.empty(),
        rate=market.rate,
        div_yield=u.dividend_yield or 0.0,
    ).values


@pytest.fixture(scope="module")
def sessions(market: SyntheticMarket) -> dict[tuple[str, date], list[Snapshot]]:
    out: dict[tuple[str, date], list[Snapshot]] = {(t, d): [] for t in TICKERS for d in SESSIONS}
    for day in SESSIONS:
        for n, when in enumerate(snapshot_times(day)):
            for ticker, result in market.fetch_chains(TICKERS, when):  # as a collect does
                assert isinstance(result, ChainResult), result
                b = result.contracts
                key = contract_key(b)
                order = np.argsort(key)
                out[ticker, day].append(
                    Snapshot(
                        key[order],
                        b["volume"][order],
                        b["open_interest"][order],
                        result.underlying.price,
                        features_of(result, market) if n in FEATURE_SNAPSHOTS else None,
                    )
                )
    return out


def matched(a: Snapshot, b: Snapshot) -> tuple[np.ndarray, np.ndarray]:
    """Indices into a and b of the contracts both snapshots list."""
    _, ia, ib = np.intersect1d(a.key, b.key, assume_unique=True, return_indices=True)
    return ia, ib


def test_cumulative_volume_never_falls_within_a_session(sessions):
    pairs = rises = 0
    for snaps in sessions.values():
        assert snaps[0].volume.sum() == 0  # nothing has traded at 9:30:00
        for a, b in itertools.pairwise(snaps):
            ia, ib = matched(a, b)
            assert (b.volume[ib] >= a.volume[ia]).all()
            pairs += ia.size
            rises += int((b.volume[ib] > a.volume[ia]).sum())
    assert pairs > 100_000
    assert rises > 0.3 * pairs  # volume does accrue (most contracts trade most half-hours)


def test_overnight_open_interest_change_is_covered_by_the_prior_session_volume(sessions):
    checked = changed = 0
    for ticker in TICKERS:
        for before, after in itertools.pairwise(SESSIONS):
            close = sessions[ticker, before][-1]
            for snap in sessions[ticker, after]:  # OI is the same all session
                ia, ib = matched(close, snap)
                change = np.abs(snap.open_interest[ib] - close.open_interest[ia])
                assert (change <= close.volume[ia]).all(), (ticker, after)
                checked += ia.size
                changed += int((change > 0).sum())
    assert checked > 50_000
    assert changed > 0.4 * checked  # positions do move overnight


def test_put_call_oi_ratio_drifts_from_day_to_day(sessions):
    means = {}
    for ticker in TICKERS:
        ratios = np.array([sessions[ticker, d][-1].features["put_call_oi_ratio"] for d in SESSIONS])
        assert len(np.unique(np.round(ratios, 3))) >= len(SESSIONS) - 2, ticker
        assert ratios.max() / ratios.min() >= 1.06, (ticker, ratios)
        assert ((ratios > 0.25) & (ratios < 3.0)).all(), (ticker, ratios)
        means[ticker] = float(ratios.mean())
    # each name has its own positioning, not one level per kind of name
    assert max(means["AAPL"], means["JPM"]) / min(means["AAPL"], means["JPM"]) > 1.2, means


def test_gex_sign_is_not_fixed_per_ticker_type(sessions):
    signs = {
        ticker: {np.sign(sessions[ticker, d][-1].features["gex_total"]) for d in SESSIONS}
        for ticker in TICKERS
    }
    assert any(s == {-1.0, 1.0} for s in signs.values()), signs
    # an ETF and a stock can share a sign: it is set by positioning, not by the kind of name
    assert signs["IWM"] & signs["AAPL"] or signs["SPY"] & signs["JPM"], signs


def test_call_wall_and_put_wall_differ_in_most_snapshots(sessions):
    walls = [
        (s.features["call_wall"], s.features["put_wall"])
        for snaps in sessions.values()
        for s in snaps
        if s.features
    ]
    same = sum(call == put for call, put in walls)
    assert len(walls) == len(TICKERS) * len(SESSIONS) * len(FEATURE_SNAPSHOTS)
    assert same <= 0.35 * len(walls), same


def test_thirty_minute_returns_carry_the_daily_volatility(sessions, market: SyntheticMarket):
    ratios = {}
    for ticker in TICKERS:
        prices = np.log([[s.price for s in sessions[ticker, d]] for d in SESSIONS])
        intraday = np.diff(prices, axis=1)
        per_day = intraday.shape[1]
        rv_30 = math.sqrt(np.mean(intraday**2) * per_day * 252)
        closes = market.fetch_history(ticker, SESSIONS[-1], 61).close
        hv = float(np.std(np.diff(np.log(closes)), ddof=1) * math.sqrt(252))
        ratios[ticker] = rv_30 / hv
        # the last 30-minute snapshot is the close the daily history reports
        assert prices[-1, -1] == pytest.approx(math.log(closes[-1]), abs=1e-6)
    assert all(0.5 <= r <= 1.6 for r in ratios.values()), ratios
    assert 0.6 <= float(np.median(list(ratios.values()))) <= 1.5, ratios


def test_spy_qqq_iwm_list_daily_expiries(market: SyntheticMarket):
    monday = date(2026, 3, 9)
    when = cal.session_bounds(monday)[0] + timedelta(hours=2)
    next_two_weeks = cal.trading_days_between(monday, monday + timedelta(days=13))
    for ticker in ("SPY", "QQQ", "IWM"):
        expiries = {
            e.item().date()
            for e in np.unique(market.fetch_chain(ticker, when).contracts["expiration"])
        }
        assert set(next_two_weeks) <= expiries, (ticker, sorted(set(next_two_weeks) - expiries))
    aapl = {
        e.item().date() for e in np.unique(market.fetch_chain("AAPL", when).contracts["expiration"])
    }
    assert {e.weekday() for e in aapl if e in next_two_weeks} == {4}  # single names: Fridays


def test_daily_listings_skip_holidays():
    # Good Friday 2026 is April 3: the dailies run Mon 30 Mar .. Thu 2 Apr, then Mon 6 Apr
    listed = cal.listed_expirations(date(2026, 3, 30), weeklies=2, horizon_days=30, dailies=6)
    march, april = (date(2026, 3, d) for d in (30, 31)), (date(2026, 4, d) for d in (1, 2, 6, 7))
    assert listed[:6] == [*march, *april]
    without = cal.listed_expirations(date(2026, 3, 30), weeklies=2, horizon_days=30)
    assert set(without) < set(listed)
    assert date(2026, 3, 31) not in without


def atm_widths(result: ChainResult, expiries: int) -> np.ndarray:
    b, spot = result.contracts, result.underlying.price
    out = []
    for expiry in np.unique(b["expiration"])[:expiries]:
        on = b["expiration"] == expiry
        atm = b["strike"][on][np.argmin(np.abs(b["strike"][on] - spot))]
        at = on & (b["strike"] == atm)
        out.extend(b["ask"][at] - b["bid"][at])
    return np.array(out)


def test_spy_at_the_money_quotes_are_a_few_cents_wide(market: SyntheticMarket):
    spy, jpm = [], []
    for day in SESSIONS[:6]:
        when = cal.session_bounds(day)[0] + timedelta(hours=3)
        spy.extend(atm_widths(market.fetch_chain("SPY", when), 6))
        jpm.extend(atm_widths(market.fetch_chain("JPM", when), 6))
    assert max(spy) <= 0.10 + 1e-9, max(spy)
    assert float(np.median(spy)) <= 0.05 + 1e-9
    assert float(np.median(jpm)) > float(np.median(spy))  # thinner names quote wider


def test_quotes_widen_in_the_wings_and_respect_the_exchange_maximum(market: SyntheticMarket):
    when = cal.session_bounds(SESSIONS[3])[0] + timedelta(hours=3)
    for ticker in ("SPY", "AAPL", "JPM"):
        b = market.fetch_chain(ticker, when).contracts
        mid, width = (b["bid"] + b["ask"]) / 2, b["ask"] - b["bid"]
        tick = np.where(mid < 3, 0.01, 0.05)
        assert (width <= max_quote_width(mid) + 2 * tick + 1e-9).all(), ticker
        delta = np.abs(b["delta"])
        priced = (b["bid"] > 0) & np.isfinite(delta)
        near = priced & (delta > 0.4) & (delta < 0.6)
        wing = priced & (delta > 0.03) & (delta < 0.12)
        relative = width / mid
        assert np.median(relative[wing]) > 2 * np.median(relative[near]), ticker


@pytest.fixture(scope="module")
def earnings_events(market: SyntheticMarket) -> list[dict[str, float]]:
    events = []
    for ticker in ("AAPL", "TSLA", "JPM", "NVDA", "MSFT", "META", "QXYZ"):
        closes = market.fetch_history(ticker, date(2026, 12, 31), 320)
        returns = np.diff(np.log(closes.close))
        daily_sd = float(np.median(np.abs(returns)) / 0.6745)  # robust to the jumps
        for report in market.earnings_dates(ticker, date(2025, 7, 1), date(2026, 12, 10)):
            before = cal.previous_trading_day(report)
            after = cal.trading_days_between(report + timedelta(days=1), report + timedelta(7))[0]
            day_before = market.fetch_chain(ticker, cal.session_bounds(before)[1])
            at_close = market.fetch_chain(ticker, cal.session_bounds(report)[1])
            at_open = market.fetch_chain(ticker, cal.session_bounds(after)[0])
            before_iv, close_iv, open_iv = (
                term_iv(r, market) for r in (day_before, at_close, at_open)
            )
            spanning = min(e for e in close_iv if e > report.isoformat() and e in open_iv)
            price = {
                name: r.underlying.price
                for name, r in (("before", day_before), ("close", at_close), ("open", at_open))
            }
            events.append(
                {
                    "report_day": abs(math.log(price["close"] / price["before"])) / daily_sd,
                    "next_open": abs(math.log(price["open"] / price["close"])) / daily_sd,
                    "crush": open_iv[spanning] / close_iv[spanning],
                    "priced_day_before": before_iv[spanning] / open_iv[spanning],
                }
            )
    return events


def term_iv(result: ChainResult, market: SyntheticMarket) -> dict[str, float]:
    values = features_of(result, market)
    return {p["expiration"]: p["atm_iv"] for p in values["term_structure"]}


def test_the_earnings_jump_lands_at_the_next_open(earnings_events):
    assert len(earnings_events) >= 30
    report_day = np.median([e["report_day"] for e in earnings_events])
    next_open = np.median([e["next_open"] for e in earnings_events])
    # the report comes after the close: that session is an ordinary day, the gap is the jump
    assert report_day < 0.9, report_day
    assert next_open > 1.0, next_open
    assert next_open > 1.6 * report_day


def test_iv_of_expiries_spanning_the_report_crushes_at_the_next_open(earnings_events):
    crush = np.array([e["crush"] for e in earnings_events])
    assert (crush < 0.97).all()
    assert float(np.median(crush)) < 0.8
    # the event was priced through the report day's close, and on the days before it too
    day_before = np.array([e["priced_day_before"] for e in earnings_events])
    assert float(np.median(day_before)) > 1.15
    assert np.mean(day_before > 1.0) >= 0.9


def test_a_collect_at_any_minute_is_reproducible_whatever_came_before():
    when = cal.session_bounds(date(2026, 3, 11))[0] + timedelta(minutes=65, seconds=12)
    fresh = SyntheticMarket(seed=7).fetch_chain("AAPL", when)
    used = SyntheticMarket(seed=7)
    for earlier in (when + timedelta(days=9), when - timedelta(days=40), when + STEP):
        used.fetch_chain("AAPL", earlier)
    again = used.fetch_chain("AAPL", when.replace(second=48))  # same minute, same quote time
    assert again.underlying == fresh.underlying
    for name in ("strike", "bid", "ask", "volume", "open_interest", "implied_volatility"):
        np.testing.assert_array_equal(again.contracts[name], fresh.contracts[name])
