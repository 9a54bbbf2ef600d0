"""Features against reference numbers (reference notes §3–4), hand computations and the
synthetic market's own truth."""

from __future__ import annotations

import math
import statistics
from datetime import UTC, date, datetime

import numpy as np
import pytest

from chalicelib.analytics.features import (
    ContractHistory,
    DailyInputs,
    compute_features,
    constant_maturity_iv,
    contract_keys,
    gamma_exposure,
    historical_volatility,
    iv_percentile,
    iv_rank,
    max_pain,
    max_pain_by_expiry,
    put_call_ratio,
    risk_reversal_25d,
    volume_zscores,
)
from chalicelib.domain.chain import ChainBatch
from chalicelib.domain.pricing import bs_greeks
from chalicelib.write.providers.synthetic import SyntheticMarket

NO_HISTORY = DailyInputs.empty()


# ---- max pain -------------------------------------------------------------------------------
def test_max_pain_reference_vector() -> None:
    # maximum-pain.com: pain 21,500 / 7,000 / 31,500 → 100
    assert max_pain([95, 100, 105], call_oi=[9, 45, 25], put_oi=[21, 33, 5]) == 100.0


def test_max_pain_tie_takes_lowest_strike_and_missing_oi_gives_none() -> None:
    # symmetric OI around 100: strikes 95 and 105 would tie with 100 only if… make an exact tie
    assert max_pain([95, 100], call_oi=[1, 0], put_oi=[0, 1]) == 95.0
    assert max_pain([95, 100], call_oi=[np.nan, np.nan], put_oi=[np.nan, np.nan]) is None


def test_max_pain_grouped_matches_brute_force() -> None:
    rng = np.random.default_rng(3)
    n_exp, strikes = 4, np.arange(50.0, 151.0, 2.5)
    exp_idx = np.repeat(np.arange(n_exp), 2 * strikes.size)
    strike = np.tile(np.r_[strikes, strikes], n_exp)
    is_call = np.tile(np.repeat([True, False], strikes.size), n_exp)
    oi = np.floor(rng.lognormal(5, 1, strike.size))
    oi[exp_idx == 2] = np.nan  # an expiry without OI
    order = rng.permutation(strike.size)  # input order must not matter
    got = max_pain_by_expiry(exp_idx[order], strike[order], is_call[order], oi[order], n_exp)
    for e in range(n_exp):
        on = exp_idx == e
        if e == 2:
            assert math.isnan(got[e])
            continue
        c, p = oi[on & is_call], oi[on & ~is_call]
        pain = [
            float(np.sum(c * np.maximum(x - strikes, 0) + p * np.maximum(strikes - x, 0)))
            for x in strikes
        ]
        assert got[e] == strikes[int(np.argmin(pain))]


# ---- GEX ------------------------------------------------------------------------------------
def test_gex_of_one_atm_contract() -> None:
    gamma = bs_greeks(100.0, 100.0, 30 / 365, 0.0, 0.2, True).gamma
    assert float(gamma) == pytest.approx(0.069548, abs=5e-7)
    call = gamma_exposure(np.array([gamma]), np.array([1.0]), 100.0, np.array([True]))
    put = gamma_exposure(np.array([gamma]), np.array([1.0]), 100.0, np.array([False]))
    assert call[0] == pytest.approx(695.48, abs=0.01)
    assert put[0] == pytest.approx(-695.48, abs=0.01)


def test_gex_walls_and_total_on_a_built_chain(chain_factory, as_of) -> None:
    strikes = [90, 95, 100, 105, 110]
    chain = chain_factory(
        strikes=strikes, call_oi=[0, 0, 100, 5000, 100], put_oi=[100, 4000, 100, 0, 0]
    )
    fs = compute_features(chain, 100.0, as_of, NO_HISTORY, rate=0.0)
    v = fs.values
    assert v["call_wall"] == 105.0
    assert v["put_wall"] == 95.0
    rows = {r["strike"]: r for r in v["gex_by_strike"]}
    assert rows[105.0]["call_gex"] > 0 and rows[95.0]["put_gex"] < 0
    total = sum(r["net_gex"] for r in v["gex_by_strike"])
    assert v["gex_total"] == pytest.approx(total, abs=0.1)


# ---- IV rank / percentile -------------------------------------------------------------------
def test_iv_rank_and_percentile_on_constructed_history() -> None:
    past = np.linspace(0.10, 0.30, 252)
    # rank: 100·(0.25 − 0.10)/(0.30 − 0.10); percentile: 189 of the 252 values lie below 0.25
    assert iv_rank(past, 0.25) == pytest.approx(75.0)
    assert iv_percentile(past, 0.25) == pytest.approx(100 * 189 / 252)
    # only the last 252 days count: an old spike is forgotten
    longer = np.r_[np.full(100, 0.90), past]
    assert iv_rank(longer, 0.25) == pytest.approx(75.0)
    # today outside the range: rank bounded to 0..100
    assert iv_rank(past, 0.35) == 100.0 and iv_percentile(past, 0.35) == 100.0
    assert iv_rank(past, 0.05) == 0.0 and iv_percentile(past, 0.05) == 0.0
    # the window is 252 rows (trading days); a gap (NaN) in it is skipped, not replaced
    assert iv_percentile(np.r_[past, np.nan], 0.25) == pytest.approx(100 * 188 / 251)
    assert iv_rank(np.full(10, 0.2), 0.2) is None


def test_iv_rank_uses_the_tickers_own_history(chain_factory, as_of) -> None:
    chain = chain_factory(expiries=[date(2026, 3, 20), date(2026, 4, 17)])
    days = np.arange(np.datetime64("2025-03-01"), np.datetime64("2026-03-01"))[-252:]
    history = DailyInputs(
        days, np.full(252, 100.0), np.linspace(0.10, 0.30, 252), np.full(252, -0.05)
    )
    v = compute_features(chain, 100.0, as_of, history, rate=0.0).values
    assert v["atm_iv"] == pytest.approx(0.2, abs=1e-6)  # flat 20 % smile
    assert v["iv_rank"] == pytest.approx(50.0, abs=1e-3)
    assert v["iv_percentile"] == pytest.approx(100 * 126 / 252, abs=1e-9)
    short = DailyInputs(days[-30:], np.full(30, 100.0), np.full(30, 0.2), np.full(30, -0.05))
    fs = compute_features(chain, 100.0, as_of, short, rate=0.0)
    assert fs.values["iv_rank"] is None
    assert "30 days of IV history" in fs.missing["iv_rank"]


# ---- historical volatility ------------------------------------------------------------------
def test_hv_against_hand_computation() -> None:
    closes = [100, 101, 99.5, 102, 103.2, 101.1, 100.4, 104, 105.5, 104.9, 106.0, 107.3]
    returns = [math.log(b / a) for a, b in zip(closes[-11:-1], closes[-10:], strict=True)]
    expected = statistics.stdev(returns) * math.sqrt(252)
    assert historical_volatility(np.array(closes), 10) == pytest.approx(expected, rel=1e-12)
    assert historical_volatility(np.array(closes[:5]), 10) is None


def test_hv_features_and_missing_reason(chain_factory, as_of) -> None:
    rng = np.random.default_rng(1)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 80)))
    days = np.arange(np.datetime64("2025-10-01"), np.datetime64("2025-10-01") + 79)
    history = DailyInputs(days, closes[:-1], np.full(79, np.nan), np.full(79, np.nan))
    fs = compute_features(chain_factory(), float(closes[-1]), as_of, history, rate=0.0)
    for window in (10, 20, 60):
        returns = np.diff(np.log(closes[-(window + 1) :]))
        hv = statistics.stdev(returns.tolist()) * math.sqrt(252)
        assert fs.values[f"hv_{window}"] == pytest.approx(hv, rel=1e-9)
    assert fs.values["iv_hv_ratio"] == pytest.approx(fs.values["atm_iv"] / fs.values["hv_20"])
    empty = compute_features(chain_factory(), 100.0, as_of, NO_HISTORY, rate=0.0)
    assert empty.values["hv_10"] is None and "need 11" in empty.missing["hv_10"]


def test_change_since_the_previous_close_and_next_earnings(chain_factory, as_of) -> None:
    days = np.arange(np.datetime64("2025-10-01"), np.datetime64("2025-10-04"))
    closes = np.array([98.0, 100.0, np.nan])  # the last day's close unknown: 100 is the last
    history = DailyInputs(days, closes, np.full(3, np.nan), np.full(3, np.nan))
    earnings = date(2026, 4, 30)
    fs = compute_features(chain_factory(), 102.5, as_of, history, next_earnings=earnings, rate=0.0)
    assert fs.values["previous_close"] == 100.0
    assert fs.values["change_pct"] == pytest.approx(2.5, rel=1e-12)
    assert fs.values["next_earnings"] == "2026-04-30"
    empty = compute_features(chain_factory(), 102.5, as_of, NO_HISTORY, rate=0.0)
    assert empty.values["change_pct"] is None and "previous close" in empty.missing["change_pct"]
    assert empty.values["next_earnings"] is None and "calendar" in empty.missing["next_earnings"]


# ---- put/call ratios ------------------------------------------------------------------------
def test_put_call_ratio_cboe_figure() -> None:
    assert put_call_ratio(946_247, 2_612_897) == pytest.approx(0.3621, abs=1e-4)
    assert put_call_ratio(10, 0) is None


def test_pcr_on_constructed_chain(chain_factory, as_of) -> None:
    strikes = [95, 100, 105]
    chain = chain_factory(
        strikes=strikes,
        call_volume=[100, 200, 100],
        put_volume=[50, 60, 70],
        call_oi=[1000, 2000, 1000],
        put_oi=[300, 900, 0],
    )
    v = compute_features(chain, 100.0, as_of, NO_HISTORY, rate=0.0).values
    assert v["put_call_volume_ratio"] == pytest.approx(180 / 400)
    assert v["put_call_oi_ratio"] == pytest.approx(1200 / 4000)
    no_oi = chain_factory(strikes=strikes, call_oi=np.nan, put_oi=np.nan)
    fs = compute_features(no_oi, 100.0, as_of, NO_HISTORY, rate=0.0)
    assert fs.values["put_call_oi_ratio"] is None
    assert fs.missing["put_call_oi_ratio"] == "open interest missing for every contract"
    assert fs.values["max_pain"] is None and fs.values["gex_total"] is None
    assert fs.values["put_call_volume_ratio"] == pytest.approx(1.0)


# ---- smile ----------------------------------------------------------------------------------
def test_risk_reversal_interpolates_in_delta_both_wings() -> None:
    # strikes ascending: call delta falls, put delta falls too (from ~0 to ~-1)
    call_delta = np.array([0.8, 0.5, 0.3, 0.2, 0.1])
    put_delta = np.array([-0.1, -0.2, -0.3, -0.5, -0.8])
    call_iv = np.array([0.30, 0.25, 0.22, 0.20, 0.19])
    put_iv = np.array([0.40, 0.35, 0.31, 0.26, 0.24])
    c25, p25 = risk_reversal_25d(
        np.r_[call_delta, put_delta], np.r_[call_iv, put_iv], np.repeat([True, False], 5)
    )
    assert c25 == pytest.approx(0.21)  # halfway between 0.3 (0.22) and 0.2 (0.20)
    assert p25 == pytest.approx(0.33)  # halfway between -0.2 (0.35) and -0.3 (0.31)


def test_skew_on_constructed_smile(chain_factory, as_of) -> None:
    """Linear smile in log-moneyness: RR25 and BF25 match a direct solve for the 25Δ strikes."""
    spot, expiry, slope, curve = 100.0, date(2026, 4, 1), -0.25, 0.4

    def smile(k: np.ndarray, t: float) -> np.ndarray:
        x = np.log(k / spot)
        return 0.25 + slope * x + curve * x * x

    chain = chain_factory(expiries=[expiry], strikes=np.arange(60.0, 140.5, 0.5), sigma=smile)
    v = compute_features(chain, spot, as_of, NO_HISTORY, rate=0.0).values
    t = chain_t(expiry, as_of)
    fine = np.linspace(60.0, 140.0, 200_001)
    vol = smile(fine, t)
    call_d = bs_greeks(spot, fine, t, 0.0, vol, True).delta
    put_d = bs_greeks(spot, fine, t, 0.0, vol, False).delta
    c25 = vol[np.argmin(np.abs(call_d - 0.25))]
    p25 = vol[np.argmin(np.abs(put_d + 0.25))]
    assert v["skew_expiration"] == "2026-04-01"
    assert v["skew_25d"] == pytest.approx(c25 - p25, abs=2e-4)
    assert v["skew_25d"] < 0  # puts over calls, as slope < 0
    assert v["butterfly_25d"] == pytest.approx((c25 + p25) / 2 - 0.25, abs=2e-4)


def chain_t(expiry: date, as_of: datetime) -> float:
    from chalicelib.domain import calendar as cal

    return (cal.expiry_close(expiry) - as_of).total_seconds() / cal.SECONDS_PER_YEAR


# ---- term structure and expected move ------------------------------------------------------
def test_constant_maturity_interpolates_total_variance() -> None:
    t = np.array([20, 40]) / 365
    iv = np.array([0.2, 0.3])
    expected = math.sqrt((0.04 * 20 + 0.5 * (0.09 * 40 - 0.04 * 20)) / 30)
    assert constant_maturity_iv(t, iv, 30 / 365) == pytest.approx(expected)
    assert constant_maturity_iv(t, iv, 20 / 365) == pytest.approx(0.2)  # an end is bracketed
    # outside the expiries: no extrapolation, unless the nearest lies within the tolerance
    assert constant_maturity_iv(t, iv, 10 / 365) is None
    assert constant_maturity_iv(t, iv, 90 / 365) is None
    assert constant_maturity_iv(t, iv, 17 / 365, tolerance=0.2) == 0.2  # 3 days ≤ 20 % of 17
    assert constant_maturity_iv(t, iv, 45 / 365, tolerance=0.2) == 0.3  # 5 days ≤ 9 days
    assert constant_maturity_iv(t, iv, 90 / 365, tolerance=0.2) is None  # 50 days > 18 days
    assert constant_maturity_iv(t, np.array([np.nan, np.nan]), 30 / 365) is None


def test_term_structure_front_back_and_slope(chain_factory) -> None:
    expiries = [date(2026, 3, 2), date(2026, 3, 6), date(2026, 3, 27), date(2026, 4, 17)]
    expiries += [date(2026, 6, 5), date(2026, 9, 18)]

    def term(k: np.ndarray, t: float) -> np.ndarray:  # contango: 15 % short, 25 % long
        return np.full(k.size, 0.25 - 0.10 * math.exp(-t / 0.2))

    midday = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    chain = chain_factory(expiries=expiries, sigma=term, as_of=midday)
    v = compute_features(chain, 100.0, midday, NO_HISTORY, rate=0.0).values
    # the same-day expiry closes 6 hours later: below min_dte_days, left out
    assert v["term_structure"][0]["expiration"] == "2026-03-06"
    assert v["front_expiration"] == "2026-03-06"
    assert v["back_expiration"] == "2026-06-05"  # 95 days: nearest to 90
    assert v["term_slope"] == pytest.approx(v["atm_iv_back"] - v["atm_iv_front"])
    assert v["term_slope"] > 0.03
    t30 = 30 / 365
    assert v["atm_iv"] == pytest.approx(0.25 - 0.10 * math.exp(-t30 / 0.2), abs=2e-3)


def test_expected_move_from_front_straddle(chain_factory, as_of) -> None:
    chain = chain_factory(
        expiries=[date(2026, 3, 13), date(2026, 4, 17)],
        strikes=np.arange(80.0, 121.0, 1.0),
        half_spread=0.01,  # two-sided, and the mid is the model price
    )
    move = compute_features(chain, 100.0, as_of, NO_HISTORY, rate=0.0).values["expected_move"]
    t = chain_t(date(2026, 3, 13), as_of)
    assert move["expiration"] == "2026-03-13" and move["dte"] == 11 and move["strike"] == 100.0
    assert move["sigma_move"] == pytest.approx(100 * 0.2 * math.sqrt(t), rel=1e-9)
    # straddle ≈ √(2/π)·S·σ√T (ratio 0.7978 in the notes)
    assert move["straddle"] / move["sigma_move"] == pytest.approx(math.sqrt(2 / math.pi), abs=2e-3)


# ---- unusual activity and spreads ----------------------------------------------------------
def test_volume_zscore_against_own_history() -> None:
    exp = np.array(["2026-03-20"], dtype="datetime64[D]")
    key = contract_keys(exp, np.array([105.0]), np.array([True]))
    past = np.array([10.0, 12, 8, 11, 9])
    hist_keys = np.repeat(key, 5)
    other = contract_keys(exp, np.array([105.0]), np.array([False]))  # the put: another contract
    z, n = volume_zscores(
        key, np.array([500.0]), np.r_[hist_keys, other], np.r_[past, 5000.0], min_obs=5
    )
    assert n[0] == 5
    # on ln(1 + volume); the log stdev here (0.15) is below the floor, 0.25
    logs = np.log1p(past).tolist()
    assert z[0] == pytest.approx((math.log1p(500) - statistics.mean(logs)) / 0.25)
    z, _ = volume_zscores(key, np.array([500.0]), hist_keys, past, min_obs=5, std_floor=0.01)
    assert z[0] == pytest.approx((math.log1p(500) - statistics.mean(logs)) / statistics.stdev(logs))
    z, n = volume_zscores(key, np.array([500.0]), hist_keys[:4], past[:4], min_obs=5)
    assert math.isnan(z[0]) and n[0] == 4


def test_unusual_contracts_listed_with_zscore_or_reason(chain_factory, as_of) -> None:
    strikes = [95, 100, 105]
    chain = chain_factory(
        strikes=strikes,
        call_volume=[10, 20, 900],  # 105C: 900 traded on 300 open
        call_oi=[1000, 1000, 300],
        put_volume=[600, 20, 10],  # 95P: busy, but 600 < its 1000 OI
        put_oi=[1000, 1000, 1000],
    )
    exp = np.full(6, np.datetime64("2026-04-01"))
    history = ContractHistory(
        exp, np.full(6, 105.0), np.ones(6, dtype=bool), np.array([10.0, 14, 9, 11, 12, 8])
    )
    fs = compute_features(chain, 100.0, as_of, NO_HISTORY, history, rate=0.0)
    [row] = fs.values["unusual_contracts"]
    assert (row["strike"], row["right"], row["volume"]) == (105.0, "C", 900)
    assert row["vol_oi"] == pytest.approx(3.0)
    logs = np.log1p([10, 14, 9, 11, 12, 8]).tolist()
    spread = max(statistics.stdev(logs), 0.25)
    assert row["zscore"] == pytest.approx((math.log1p(900) - statistics.mean(logs)) / spread)
    assert row["history_days"] == 6
    bare = compute_features(chain, 100.0, as_of, NO_HISTORY, None, rate=0.0)
    [row] = bare.values["unusual_contracts"]
    assert row["zscore"] is None and "need 5" in row["zscore_missing"]


def test_spread_pct_is_median_relative_spread(chain_factory, as_of) -> None:
    chain = chain_factory(strikes=[100], half_spread=0.05)
    mids = (chain["bid"] + chain["ask"]) / 2
    expected = 100 * float(np.median(0.10 / mids))
    v = compute_features(chain, 100.0, as_of, NO_HISTORY, rate=0.0).values
    assert v["spread_pct"] == pytest.approx(expected)


# ---- missing inputs never crash -------------------------------------------------------------
def test_empty_chain_gives_reasons_not_errors(as_of) -> None:
    fs = compute_features(ChainBatch.empty(), 100.0, as_of, NO_HISTORY, ticker="EMPTY")
    assert fs.ticker == "EMPTY"
    for name in ("atm_iv", "max_pain", "gex_total", "expected_move", "skew_25d"):
        assert fs.values[name] is None
        assert fs.missing[name] == "empty chain"
    assert fs.values["iv_rank"] is None and fs.missing["iv_rank"] == "atm_iv missing"


def test_chain_without_ivs_is_solved_from_quotes(chain_factory, as_of) -> None:
    # a spread narrow enough that every quote keeps a bid: all are two-sided
    with_iv = chain_factory(call_oi=2000.0, half_spread=1e-6)
    with_iv = compute_features(with_iv, 100.0, as_of, NO_HISTORY, rate=0.0).values
    chain = chain_factory(call_oi=2000.0, with_iv=False, half_spread=1e-6)
    assert (chain["bid"] > 0).all()
    v = compute_features(chain, 100.0, as_of, NO_HISTORY, rate=0.0).values
    assert v["atm_iv"] == pytest.approx(with_iv["atm_iv"], abs=1e-6)
    assert v["gex_total"] == pytest.approx(with_iv["gex_total"], rel=1e-6)


def test_expired_lines_and_bad_spot_are_tolerated(chain_factory, as_of) -> None:
    chain = chain_factory(expiries=[date(2026, 2, 27), date(2026, 4, 1)])  # first one expired
    v = compute_features(chain, 100.0, as_of, NO_HISTORY, rate=0.0).values
    assert [p["expiration"] for p in v["term_structure"]] == ["2026-04-01"]
    fs = compute_features(chain, float("nan"), as_of, NO_HISTORY, rate=0.0)
    assert fs.values["atm_iv"] is None and fs.missing["atm_iv"]


# ---- agreement with the synthetic market's own numbers ------------------------------------
@pytest.mark.parametrize("ticker", ["SPY", "AAPL", "JPM"])
def test_synthetic_chain_matches_provider_truth(ticker: str) -> None:
    market = SyntheticMarket(seed=7)
    now = datetime(2026, 3, 2, 21, 0, tzinfo=UTC)
    result = market.fetch_chain(ticker, now)
    truth = market.fetch_history(ticker, date(2026, 3, 2), 1)
    fs = compute_features(
        result.contracts,
        result.underlying.price,
        result.underlying.as_of,
        NO_HISTORY,
        rate=market.rate,
        div_yield=result.underlying.dividend_yield,
    )
    assert fs.values["atm_iv"] == pytest.approx(truth.atm_iv[-1], abs=0.003)
    assert fs.values["skew_25d"] == pytest.approx(truth.skew_25d[-1], abs=0.003)
    assert fs.values["skew_25d"] < 0
    no_history = {"iv_rank", "iv_percentile", "hv_10", "hv_20", "hv_60", "iv_hv_ratio"}
    no_history |= {"iv_hv_spread", "iv_hv_spread_history", "skew_25d_zscore", "skew_25d_mean"}
    no_history |= {"sma_50", "sma_200", "sma_recent", "previous_close", "change_pct"}
    no_history |= {"next_earnings"}  # no calendar passed
    no_previous_session = {"oi_previous_as_of", "oi_change_by_strike"}
    no_previous_session |= {"oi_change_total", "oi_change_call", "oi_change_put"}
    # the synthetic market's net GEX may keep one sign over ±10 %: null, with that reason
    assert set(fs.missing) - {"zero_gamma"} == no_history | no_previous_session
    assert "zero_gamma" not in fs.missing or "keeps one sign" in fs.missing["zero_gamma"]
