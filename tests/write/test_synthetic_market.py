"""The synthetic market looks like a real one to the analytics: arbitrage-free quotes, listed
strikes and expirations, plausible volume and open interest, a skewed smile, and determinism."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import pytest

from chalicelib.domain import calendar as cal
from chalicelib.domain.chain import ChainBatch, reject_reasons
from chalicelib.write.providers.base import ChainResult
from chalicelib.write.providers.synthetic import (
    DAILY_EXPIRIES,
    LIQUID,
    SyntheticMarket,
    _generators,
)

TICKERS = ("SPY", "AAPL", "JPM", "TSLA", "QXYZ")  # QXYZ: a generated profile, not a known one
DAYS = (date(2026, 3, 4), date(2026, 6, 17), date(2026, 9, 22), date(2026, 11, 27))
CLOSE = {day: cal.session_bounds(day)[1] for day in DAYS}


@pytest.fixture(scope="module")
def chains(market: SyntheticMarket) -> dict[tuple[str, date], ChainResult]:
    return {(t, d): market.fetch_chain(t, CLOSE[d]) for t in TICKERS for d in DAYS}


def _tick(price: np.ndarray) -> np.ndarray:
    return np.where(price < 3, 0.01, 0.05)


def _years(result: ChainResult, expiry: np.datetime64) -> float:
    close = cal.expiry_close(expiry.astype("datetime64[D]").item())
    return (close - result.underlying.as_of).total_seconds() / cal.SECONDS_PER_YEAR


def _expiries(batch: ChainBatch) -> np.ndarray:
    return np.unique(batch["expiration"])


def _side(batch: ChainBatch, expiry: np.datetime64, right: str) -> ChainBatch:
    side = batch.filter((batch["expiration"] == expiry) & (batch["right"] == right))
    return side.filter(np.argsort(side["strike"], kind="stable"))


def _key(batch: ChainBatch) -> dict[tuple[object, float, str], float]:
    return {
        (e, s, r): oi
        for e, s, r, oi in zip(
            batch["expiration"].tolist(),
            batch["strike"].tolist(),
            batch["right"].tolist(),
            batch["open_interest"].tolist(),
            strict=True,
        )
    }


def test_every_chain_passes_validation(chains: dict[tuple[str, date], ChainResult]):
    for (ticker, day), result in chains.items():
        batch = result.contracts
        keep, counts = reject_reasons(batch)
        assert keep.all(), (ticker, day, counts)
        assert 100 <= len(batch) <= 30_000
        assert set(batch["ticker"]) == {ticker}
        assert set(batch["as_of"].tolist()) == {CLOSE[day].replace(tzinfo=None)}
        assert result.underlying.as_of == CLOSE[day]


def test_calls_fall_and_puts_rise_with_strike(chains: dict[tuple[str, date], ChainResult]):
    checked = 0
    for result in chains.values():
        batch = result.contracts
        for expiry in _expiries(batch):
            for right, sign in (("C", 1.0), ("P", -1.0)):
                side = _side(batch, expiry, right)
                mid = (side["bid"] + side["ask"]) / 2
                rise = sign * np.diff(mid)  # calls: how much the mid rises to the next strike
                assert (rise <= _tick(mid[1:]) + 1e-9).all(), (side["ticker"][0], expiry, right)
                checked += rise.size
    assert checked > 10_000


def test_put_call_parity_holds_within_the_spread(
    chains: dict[tuple[str, date], ChainResult], market: SyntheticMarket
):
    for result in chains.values():
        batch, spot = result.contracts, result.underlying.price
        q, r = result.underlying.dividend_yield, market.rate
        for expiry in _expiries(batch):
            calls, puts = _side(batch, expiry, "C"), _side(batch, expiry, "P")
            np.testing.assert_array_equal(calls["strike"], puts["strike"])
            t = _years(result, expiry)
            parity = spot * np.exp(-q * t) - calls["strike"] * np.exp(-r * t)
            slack = 2 * np.maximum(_tick(calls["ask"]), _tick(puts["ask"]))
            assert (calls["bid"] - puts["ask"] <= parity + slack).all()
            assert (parity <= calls["ask"] - puts["bid"] + slack).all()


def test_quotes_are_ordered_and_trades_print_inside_them(
    chains: dict[tuple[str, date], ChainResult],
):
    for result in chains.values():
        b = result.contracts
        mid = (b["bid"] + b["ask"]) / 2
        assert (b["bid"] >= 0).all()
        assert (b["bid"] <= mid).all() and (mid <= b["ask"]).all()
        assert (b["ask"] > b["bid"]).all()  # never locked: at least a tick wide
        traded = b["volume"] > 0
        assert np.isnan(b["last"][~traded]).all()
        assert (
            (b["last"][traded] >= b["bid"][traded]) & (b["last"][traded] <= b["ask"][traded])
        ).all()
        u = result.underlying
        assert u.bid is not None and u.ask is not None
        assert u.bid < u.price < u.ask
        assert u.volume and u.volume > 0


def test_strikes_follow_occ_spacing(
    chains: dict[tuple[str, date], ChainResult], market: SyntheticMarket
):
    fine_seen = set()
    for (ticker, _), result in chains.items():
        spot = result.underlying.price
        liquid = market.profile(ticker).liquidity >= LIQUID
        strikes = np.unique(result.contracts["strike"])
        step = np.where(strikes < 25, 2.5, np.where(strikes <= 200, 5.0, 10.0))
        on_grid = np.isclose(strikes / step, np.round(strikes / step))
        fine_step = 0.5 if spot < 25 else 1.0
        near = np.abs(np.log(strikes / spot)) <= 0.08 + 1e-9
        fine = np.isclose(strikes / fine_step, np.round(strikes / fine_step)) & near
        assert (on_grid | (fine & liquid)).all(), (ticker, strikes[~(on_grid | fine)])
        if liquid:
            fine_seen.add(ticker)
            assert (~on_grid & fine).any()  # $1 strikes near the money
        else:
            assert on_grid.all()
            for expiry in _expiries(result.contracts):
                ks = _side(result.contracts, expiry, "C")["strike"]
                gaps = np.diff(ks)
                expected = np.where(ks[1:] <= 25, 2.5, np.where(ks[1:] <= 200, 5.0, 10.0))
                np.testing.assert_allclose(gaps, expected)  # a complete ladder, no holes
    assert {"SPY", "AAPL", "TSLA"} <= fine_seen
    assert "JPM" not in fine_seen


def test_expirations_are_listed_fridays_with_monthlies_out_to_a_year(
    chains: dict[tuple[str, date], ChainResult], market: SyntheticMarket
):
    for (ticker, day), result in chains.items():
        expiries = [e.item().date() for e in _expiries(result.contracts)]
        # SPY, QQQ and IWM also list every trading day of the next couple of weeks
        dailies = market.dailies if ticker in DAILY_EXPIRIES else 0
        daily_window = cal.trading_days_between(day, day + timedelta(days=3 * dailies))[:dailies]
        for e in expiries:
            friday = e + timedelta(days=(4 - e.weekday()) % 7)
            weekly = e.weekday() == 4 or (e.weekday() == 3 and not cal.is_trading_day(friday))
            assert weekly or e in daily_window, (ticker, day, e)
        assert expiries[0] > day  # at the close, an expiry of today has expired
        assert (expiries[0] - day).days <= 7
        assert 330 <= (expiries[-1] - day).days <= 375, (ticker, day)
        third_fridays = set()
        month = date(day.year, day.month, 1)
        while month <= expiries[-1]:
            third = cal.third_friday(month.year, month.month)
            third = third if cal.is_trading_day(third) else third - timedelta(days=1)
            if day < third <= expiries[-1]:
                third_fridays.add(third)
            month = (month + timedelta(days=32)).replace(day=1)
        assert third_fridays <= set(expiries), (ticker, day, sorted(third_fridays - set(expiries)))
        assert len(third_fridays) >= 11


def test_june_2026_monthly_expires_on_thursday(market: SyntheticMarket):
    result = market.fetch_chain("SPY", CLOSE[date(2026, 6, 17)])
    expiries = {e.item().date() for e in _expiries(result.contracts)}
    assert date(2026, 6, 18) in expiries and date(2026, 6, 19) not in expiries


def test_daily_volume_is_a_small_fraction_of_open_interest(
    chains: dict[tuple[str, date], ChainResult],
):
    ratios = np.array(
        [
            r.contracts["volume"].sum() / np.nansum(r.contracts["open_interest"])
            for r in chains.values()
        ]
    )
    # unusual-volume bursts lift single days; the typical day sits in the band
    assert 0.005 <= float(np.median(ratios)) <= 0.03
    assert np.mean((ratios >= 0.005) & (ratios <= 0.03)) >= 0.75
    assert (ratios > 0).all()


def test_volume_accrues_through_the_session(market: SyntheticMarket):
    day = date(2026, 11, 24)
    open_, close = cal.session_bounds(day)
    at_open = market.fetch_chain("SPY", open_).contracts
    midday = market.fetch_chain("SPY", open_ + (close - open_) / 3).contracts
    at_close = market.fetch_chain("SPY", close).contracts
    assert at_open["volume"].sum() == 0
    assert 0 < midday["volume"].sum() < at_close["volume"].sum()


def test_implied_vols_are_positive_and_the_smile_skews_to_puts(
    chains: dict[tuple[str, date], ChainResult],
):
    skewed = 0
    for result in chains.values():
        b = result.contracts
        iv = b["implied_volatility"]
        assert np.isfinite(iv).mean() >= 0.85  # far wings quoted 0.00 bid carry no IV
        assert (iv[np.isfinite(iv)] > 0).all()
        priced = np.isfinite(iv)
        assert np.array_equal(np.isfinite(b["delta"]), priced)  # greeks wherever an IV is
        delta, calls = b["delta"], b["right"] == "C"
        assert ((delta[calls & priced] >= 0) & (delta[calls & priced] <= 1)).all()
        assert ((delta[~calls & priced] >= -1) & (delta[~calls & priced] <= 0)).all()
        day = result.underlying.as_of.date()
        expiry = min(_expiries(b), key=lambda e: abs((e.item().date() - day).days - 30))
        c = _side(b, expiry, "C").filter(np.isfinite(_side(b, expiry, "C")["delta"]))
        p = _side(b, expiry, "P").filter(np.isfinite(_side(b, expiry, "P")["delta"]))
        call_iv = np.interp(0.25, c["delta"][::-1], c["implied_volatility"][::-1])
        put_iv = np.interp(-0.25, p["delta"][::-1], p["implied_volatility"][::-1])
        skewed += put_iv > call_iv
    assert skewed >= 0.8 * len(chains)


def _same(a: ChainBatch, b: ChainBatch) -> bool:
    if len(a) != len(b):
        return False
    for name in a.columns:
        x, y = a[name], b[name]
        if x.dtype.kind == "f":
            if not np.array_equal(x, y, equal_nan=True):
                return False
        elif not (x == y).all():
            return False
    return True


def test_same_seed_and_clock_give_identical_chains():
    when = CLOSE[date(2026, 11, 27)]
    fresh = SyntheticMarket(seed=11).fetch_chain("AAPL", when)
    # markets that have already served other dates or history must agree with a fresh one
    after_history = SyntheticMarket(seed=11)
    after_history.fetch_history("AAPL", date(2026, 6, 1), 50)
    after_later = SyntheticMarket(seed=11)
    after_later.fetch_chain("AAPL", datetime(2028, 1, 5, 21, tzinfo=when.tzinfo))
    for used in (after_history, after_later):
        again = used.fetch_chain("AAPL", when)
        assert fresh.underlying == again.underlying
        assert _same(fresh.contracts, again.contracts)


def test_a_different_seed_gives_a_different_market():
    when = CLOSE[date(2026, 11, 27)]
    one = SyntheticMarket(seed=11).fetch_chain("AAPL", when)
    two = SyntheticMarket(seed=12).fetch_chain("AAPL", when)
    assert one.underlying.price != two.underlying.price
    assert not _same(one.contracts, two.contracts)


def test_history_and_chains_tell_the_same_story():
    # as in production: a backfill in one process, chains of later days in another
    day = date(2026, 11, 25)
    history = SyntheticMarket(seed=11).fetch_history("JPM", day, 5)
    later = SyntheticMarket(seed=11)
    later.fetch_chain("JPM", cal.session_bounds(date(2026, 12, 14))[1])
    chain = later.fetch_chain("JPM", cal.session_bounds(day)[1])
    assert history.dates[-1] == day
    assert chain.underlying.price == pytest.approx(history.close[-1], abs=1e-4)


def test_open_interest_is_fixed_within_a_session_and_changes_overnight(market: SyntheticMarket):
    day = date(2026, 11, 24)
    open_, close = cal.session_bounds(day)
    morning = _key(market.fetch_chain("TSLA", open_ + timedelta(minutes=20)).contracts)
    afternoon = _key(market.fetch_chain("TSLA", close - timedelta(minutes=30)).contracts)
    common = morning.keys() & afternoon.keys()
    assert len(common) >= 0.6 * min(len(morning), len(afternoon))  # listings follow the spot
    assert all(morning[k] == afternoon[k] for k in common)
    next_day = _key(market.fetch_chain("TSLA", close + timedelta(days=1)).contracts)
    overnight = afternoon.keys() & next_day.keys()
    assert len(overnight) >= 0.5 * len(afternoon)
    # positions change a little every night; far wings holding a handful may keep their count
    held = [k for k in overnight if afternoon[k] >= 100]
    assert len(held) >= 0.3 * len(overnight)
    changed = sum(afternoon[k] != next_day[k] for k in held)
    assert changed >= 0.8 * len(held)


def test_history_covers_a_year_of_trading_days_with_finite_iv(market: SyntheticMarket):
    end = date(2026, 11, 25)
    for ticker in ("SPY", "NVDA", "QXYZ"):
        history = market.fetch_history(ticker, end, 300)
        assert history.dates == cal.last_trading_days(end, 300)
        assert np.isfinite(history.atm_iv).sum() >= 252
        assert (history.atm_iv > 0.03).all() and (history.atm_iv < 3).all()
        assert (history.close > 0).all()
        assert np.mean(history.skew_25d < 0) >= 0.9  # 25Δ call IV below 25Δ put IV


def test_generated_profiles_make_valid_chains(market: SyntheticMarket):
    when = CLOSE[date(2026, 9, 22)]
    sizes = []
    for i in range(12):
        ticker = "ZZ" + chr(ord("A") + i) * 2
        result = market.fetch_chain(ticker, when)
        keep, counts = reject_reasons(result.contracts)
        assert keep.all(), (ticker, counts)
        sizes.append(len(result.contracts))
    assert min(sizes) >= 50


def test_generators_seeded_together_draw_numpys_own_streams():
    # entropies of one to seven 32-bit words, zeros among them, mixed in one call
    rng = np.random.default_rng(3)
    entropies = [(0,), (7, 0), (2**64 - 1,), (7, 2**63 + 5, 12), (1, 2, 3, 4, 2**32)]
    entropies += [tuple(int(x) for x in rng.integers(0, 2**62, size)) for size in (1, 2, 3, 4) * 5]
    together = _generators(entropies)
    for entropy, generator in zip(entropies, together, strict=True):
        words = []
        for n in entropy:
            words += [(n >> s) & 0xFFFFFFFF for s in range(0, max(n.bit_length(), 1), 32)]
        alone = np.random.default_rng(words)
        assert generator.standard_normal(50).tobytes() == alone.standard_normal(50).tobytes()
        assert generator.random(50).tobytes() == alone.random(50).tobytes()
