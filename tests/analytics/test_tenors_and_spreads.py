"""Fixed-tenor ATM IVs (30/60/90 days, the 30/90 ratio) and IV − HV20 with its history."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pytest
from analyticskit import AS_OF, build_chain

from chalicelib.analytics.features import (
    DailyInputs,
    compute_features,
    historical_volatility,
    historical_volatility_series,
)
from chalicelib.domain import calendar as cal

NO_HISTORY = DailyInputs.empty()
EXPIRIES = [date(2026, 3, 13), date(2026, 4, 17), date(2026, 6, 5), date(2026, 9, 18)]


def years(expiry: date) -> float:
    return (cal.expiry_close(expiry) - AS_OF).total_seconds() / cal.SECONDS_PER_YEAR


def term(k: np.ndarray, t: float) -> np.ndarray:
    """A flat smile whose level rises with maturity (contango)."""
    return np.full(k.size, 0.18 + 0.10 * math.sqrt(t))


def test_fixed_tenors_interpolate_total_variance_between_expiries() -> None:
    chain = build_chain(expiries=EXPIRIES, sigma=term)
    v = compute_features(chain, 100.0, AS_OF, NO_HISTORY, rate=0.0).values
    t = np.array([years(e) for e in EXPIRIES])
    vol = 0.18 + 0.10 * np.sqrt(t)
    for days in (30, 60, 90):
        target = days / 365
        expected = math.sqrt(float(np.interp(target, t, vol * vol * t)) / target)
        assert v[f"atm_iv_{days}d"] == pytest.approx(expected, abs=1e-9)
    assert v["atm_iv"] == v["atm_iv_30d"]  # target_days defaults to 30
    assert v["atm_iv_ratio_30_90"] == pytest.approx(v["atm_iv_30d"] / v["atm_iv_90d"])
    assert v["atm_iv_ratio_30_90"] < 1  # contango


def test_a_tenor_beyond_the_listed_expiries_is_null() -> None:
    chain = build_chain(expiries=[date(2026, 4, 1)], sigma=0.2)  # one expiry, 29.96 days out
    fs = compute_features(chain, 100.0, AS_OF, NO_HISTORY, rate=0.0)
    assert fs.values["atm_iv_30d"] == pytest.approx(0.2)  # within 20 % of 30 days: flat
    for name in ("atm_iv_60d", "atm_iv_90d", "atm_iv_ratio_30_90"):
        assert fs.values[name] is None
    assert "bracket 90 days" in fs.missing["atm_iv_90d"]
    short = build_chain(expiries=[date(2026, 3, 9)], sigma=0.2)  # a weekly only
    fs = compute_features(short, 100.0, AS_OF, NO_HISTORY, rate=0.0)
    assert fs.values["atm_iv"] is None and fs.values["atm_iv_front"] == pytest.approx(0.2)
    assert fs.values["iv_rank"] is None and fs.missing["iv_rank"] == "atm_iv missing"


def _history(n: int, seed: int = 3) -> tuple[DailyInputs, float]:
    rng = np.random.default_rng(seed)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.012, n + 1)))
    days = np.array(cal.last_trading_days(date(2026, 2, 27), n), dtype="datetime64[D]")
    atm = 0.2 + 0.02 * np.sin(np.arange(n) / 9)
    atm[n - 10] = np.nan  # a day without IV
    close = closes[:-1].copy()
    close[n - 30] = np.nan  # a day without a close
    return DailyInputs(days, close, atm, np.full(n, -0.05)), float(closes[-1])


def test_historical_volatility_series_is_the_scalar_at_every_close() -> None:
    closes = 100 * np.exp(np.cumsum(np.random.default_rng(8).normal(0, 0.01, 40)))
    series = historical_volatility_series(closes, 20)
    assert np.isnan(series[:20]).all()
    for i in range(20, 40):
        assert series[i] == pytest.approx(historical_volatility(closes[: i + 1], 20), rel=1e-12)


def test_iv_hv_spread_and_its_history() -> None:
    history, spot = _history(120)
    chain = build_chain(expiries=[date(2026, 3, 20), date(2026, 4, 17)])
    fs = compute_features(chain, spot, AS_OF, history, rate=0.0)
    v = fs.values
    assert v["iv_hv_spread"] == pytest.approx(v["atm_iv"] - v["hv_20"])
    series = v["iv_hv_spread_history"]
    assert len(series["day"]) == 60 == len(series["iv_hv_spread"])
    assert series["day"][-1] == "2026-03-02" and series["day"][0] == str(history.days[-59])
    assert series["atm_iv"][-1] == v["atm_iv"] and series["hv_20"][-1] == v["hv_20"]
    assert series["iv_hv_spread"][-1] == pytest.approx(v["iv_hv_spread"])
    # each past day: hv_20 as computed that day from the closes known up to it
    closes = history.close
    for back in (1, 5, 25, 40):
        i = history.days.size - back
        row = 60 - 1 - back
        expected_hv = historical_volatility(closes[: i + 1], 20)
        if not np.isfinite(closes[i]):
            assert series["hv_20"][row] is None
            continue
        assert series["hv_20"][row] == pytest.approx(expected_hv, rel=1e-12)
        iv = history.atm_iv[i]
        if np.isfinite(iv):
            assert series["iv_hv_spread"][row] == pytest.approx(iv - expected_hv)
        else:
            assert series["iv_hv_spread"][row] is None
    assert series["iv_hv_spread"][60 - 1 - 10] is None  # the day without IV
    assert series["hv_20"][60 - 1 - 30] is None  # the day without a close


def test_iv_hv_spread_history_needs_closes() -> None:
    fs = compute_features(build_chain(), 100.0, AS_OF, NO_HISTORY, rate=0.0)
    assert fs.values["iv_hv_spread"] is None
    assert fs.missing["iv_hv_spread_history"] == "no session with both atm_iv and hv_20"
