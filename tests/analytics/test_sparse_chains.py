"""Sparse and odd chains, as real imports produce them daily (issue 17, part 1).

Crafted chains: Black–Scholes prices on the smile IV = 0.30 − 0.15·ln(K/S), S = 100, r = 0, one
expiry 30 days out. A value the chain cannot support must be null with a reason, never a number,
and never an alert. The "before" figures in the docstrings are what the old code served.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest
from analyticskit import AS_OF, build_chain

from chalicelib.analytics.detectors import DetectorContext, run_detectors
from chalicelib.analytics.features import (
    DailyInputs,
    compute_features,
    max_pain_by_expiry,
    unusual_mask,
)
from chalicelib.domain import calendar as cal
from chalicelib.domain.chain import ChainBatch
from chalicelib.domain.models import FeatureSet
from chalicelib.domain.pricing import bs_greeks

SPOT = 100.0
EXPIRY = date(2026, 4, 1)
NO_HISTORY = DailyInputs.empty()
T = (cal.expiry_close(EXPIRY) - AS_OF).total_seconds() / cal.SECONDS_PER_YEAR


def smile(k: np.ndarray, t: float = T) -> np.ndarray:
    return 0.30 - 0.15 * np.log(k / SPOT)


def true_25d() -> tuple[float, float]:
    """IV of the 25Δ call and the −25Δ put on the smile, solved on a fine strike grid."""
    fine = np.linspace(40.0, 250.0, 400_001)
    vol = smile(fine)
    call = bs_greeks(SPOT, fine, T, 0.0, vol, True).delta
    put = bs_greeks(SPOT, fine, T, 0.0, vol, False).delta
    return float(vol[np.argmin(np.abs(call - 0.25))]), float(vol[np.argmin(np.abs(put + 0.25))])


def features(chain: ChainBatch) -> FeatureSet:
    return compute_features(chain, SPOT, AS_OF, NO_HISTORY, rate=0.0)


def crafted(strikes: np.ndarray, **kw) -> ChainBatch:
    return build_chain(expiries=[EXPIRY], strikes=strikes, sigma=smile, **kw)


def only(chain: ChainBatch, keep: np.ndarray) -> ChainBatch:
    return chain.filter(keep)


# ---- delta- and strike-interpolated values need brackets ------------------------------------
def test_skew_on_a_wide_chain_matches_the_true_smile() -> None:
    call25, put25 = true_25d()
    v = features(crafted(np.arange(50.0, 200.5, 1.0))).values
    assert v["iv_25d_call"] == pytest.approx(call25, abs=2e-4)
    assert v["iv_25d_put"] == pytest.approx(put25, abs=2e-4)
    assert v["skew_25d"] == pytest.approx(call25 - put25, abs=2e-4)  # −0.0173
    assert v["atm_iv"] == pytest.approx(0.30, abs=1e-3)  # F = S at r = 0: ln(K/S) = 0


def test_strikes_98_to_102_give_an_atm_iv_but_no_25_delta_skew() -> None:
    """Before: skew_25d −0.0060 (true −0.0173), flat from the 0.40Δ and 0.60Δ strikes."""
    fs = features(crafted(np.arange(98.0, 102.5, 1.0)))
    v = fs.values
    assert v["atm_iv"] == pytest.approx(0.30, abs=1e-3)  # the forward is bracketed within 10 %
    for name in ("skew_25d", "butterfly_25d", "iv_25d_call", "iv_25d_put"):
        assert v[name] is None
    assert "do not bracket 0.25" in fs.missing["iv_25d_call"]
    assert "do not bracket −0.25" in fs.missing["iv_25d_put"]
    assert "no 25Δ call IV" in fs.missing["skew_25d"]


def test_one_bracketed_wing_is_served_alone() -> None:
    """Strikes 98–130: calls reach below 0.25Δ, puts stop near −0.45Δ."""
    call25, _ = true_25d()
    fs = features(crafted(np.arange(98.0, 130.5, 1.0)))
    assert fs.values["iv_25d_call"] == pytest.approx(call25, abs=2e-4)
    assert fs.values["iv_25d_put"] is None and fs.values["skew_25d"] is None
    assert "no 25Δ put IV" in fs.missing["skew_25d"]


def test_deep_in_the_money_contracts_only_support_nothing_at_the_money() -> None:
    """Before: skew_25d +0.078 from a 0.99Δ call, atm_iv 0.304 from strikes 26 % from spot."""
    chain = crafted(np.r_[np.arange(50.0, 75.5, 1.0), np.arange(126.0, 151.0, 1.0)])
    right, k = chain["right"], chain["strike"]
    fs = features(only(chain, ((right == "C") & (k < SPOT)) | ((right == "P") & (k > SPOT))))
    for name in ("atm_iv", "skew_25d", "iv_25d_call", "iv_25d_put", "expected_move"):
        assert fs.values[name] is None, name
        assert fs.missing[name]
    assert "within 10% of it" in fs.missing["atm_iv"]
    assert all(r["atm_iv"] is None for r in fs.values["by_expiry"])


@pytest.mark.parametrize(
    ("strikes", "has_atm"),
    [
        ([85.0, 115.0], False),  # both sides of F, but 15 % away
        ([80.0, 91.0], False),  # within 10 % on one side only
        ([91.0, 109.0], True),  # 9 % each side
        ([100.0], True),  # a quote at the forward brackets it exactly
    ],
)
def test_atm_iv_needs_usable_quotes_within_10pct_on_each_side(strikes, has_atm) -> None:
    fs = features(crafted(np.array(strikes)))
    if has_atm:
        k = np.array(strikes)
        expected = np.interp(0.0, np.log(k / SPOT), smile(k)) if k.size > 1 else 0.30
        assert fs.values["atm_iv"] == pytest.approx(expected, abs=1e-9)
    else:
        assert fs.values["atm_iv"] is None and fs.values["expected_move"] is None
        assert "10%" in fs.missing["atm_iv"]


def test_an_out_of_the_money_only_chain_still_has_an_atm_iv() -> None:
    """Puts below the forward, calls above it: neither side alone straddles F, together they do."""
    chain = crafted(np.arange(80.0, 120.5, 2.5))
    right, k = chain["right"], chain["strike"]
    otm = ((right == "P") & (k < SPOT)) | ((right == "C") & (k > SPOT))
    fs = features(only(chain, otm))
    assert fs.values["atm_iv"] == pytest.approx(0.30, abs=1e-3)
    call25, put25 = true_25d()
    assert fs.values["skew_25d"] == pytest.approx(call25 - put25, abs=5e-4)


# ---- IVs are solved from two-sided quotes only ---------------------------------------------
def test_a_zero_bid_chain_without_ivs_has_no_atm_iv() -> None:
    """Before: IV solved from (0 + ask)/2 gave ATM IV 0.152 where the smile says 0.30."""
    chain = crafted(np.arange(50.0, 150.5, 1.0), with_iv=False)
    cols = dict(chain.columns)
    cols["bid"] = np.zeros(len(chain))
    fs = features(ChainBatch(cols))
    assert fs.values["atm_iv"] is None and fs.values["spread_pct"] is None
    assert fs.missing["spread_pct"] == "no two-sided quotes"
    assert fs.values["gex_total"] is None  # no IV, so no gamma
    assert (
        fs.missing["gex_total"] == "no contract with open interest > 0 has a gamma (no usable IV)"
    )


def test_only_the_two_sided_quotes_of_a_chain_without_ivs_are_solved() -> None:
    chain = crafted(np.arange(80.0, 120.5, 1.0), with_iv=False, half_spread=0.01)
    cols = dict(chain.columns)
    far = np.abs(chain["strike"] - SPOT) > 5
    cols["bid"] = np.where(far, 0.0, chain["bid"])  # the wings lose their bids
    fs = features(ChainBatch(cols))
    assert fs.values["atm_iv"] == pytest.approx(0.30, abs=1e-4)
    assert fs.values["skew_25d"] is None  # the 25Δ strikes (~±10 %) are one-sided now


# ---- no open interest is no open interest ---------------------------------------------------
@pytest.mark.parametrize("oi", [0.0, np.nan], ids=["zero", "blank"])
def test_a_chain_without_open_interest_has_no_oi_features_and_no_alert(oi) -> None:
    """Before (all zero): max pain 50 (the lowest strike), 102/102 contracts unusual, and an
    unusual_activity alert scoring 88.3."""
    chain = crafted(
        np.arange(50.0, 150.5, 2.0), call_oi=oi, put_oi=oi, call_volume=600, put_volume=600
    )
    assert len(chain) == 102
    fs = features(chain)
    v = fs.values
    for name in ("max_pain", "max_pain_by_expiry", "put_call_oi_ratio", "unusual_count"):
        assert v[name] is None, name
    for name in ("unusual_contracts", "gex_total", "call_wall", "put_wall", "zero_gamma"):
        assert v[name] is None, name
    expected = "no contract with open interest > 0" if oi == 0 else "missing for every contract"
    assert expected in fs.missing["max_pain"]
    assert expected in fs.missing["unusual_count"]
    assert not unusual_mask(chain["volume"], chain["open_interest"]).any()
    [row] = v["by_expiry"]
    assert row["max_pain"] is None and row["put_call_oi_ratio"] is None and row["net_gex"] is None
    assert set(row["missing"]) >= {"max_pain", "put_call_oi_ratio", "net_gex"}
    readings, errors = run_detectors(fs, DetectorContext("TEST", AS_OF))
    assert errors == [] and [d.name for d, r in readings if r.active] == []
    assert v["atm_iv"] == pytest.approx(0.30, abs=1e-3)  # the rest of the chain is still served


def test_max_pain_of_an_expiry_with_zero_oi_is_nan_and_others_are_kept() -> None:
    strikes = np.array([95.0, 100.0, 105.0])
    exp_idx = np.repeat([0, 1], 6)
    strike = np.tile(np.r_[strikes, strikes], 2)
    is_call = np.tile(np.repeat([True, False], 3), 2)
    oi = np.r_[[9, 45, 25, 21, 33, 5], np.zeros(6)]  # maximum-pain.com vector, then all zero
    pain = max_pain_by_expiry(exp_idx, strike, is_call, oi.astype(float), 2)
    assert pain[0] == 100.0 and np.isnan(pain[1])


def test_zero_oi_contracts_are_never_unusual_whatever_they_trade() -> None:
    volume = np.array([5000, 5000, 600, 499, 600])
    oi = np.array([0.0, np.nan, 1.0, 1.0, 600.0])
    assert unusual_mask(volume, oi).tolist() == [False, False, True, False, True]


def test_unusual_rows_on_a_chain_with_some_zero_oi() -> None:
    chain = crafted(
        np.array([95.0, 100.0, 105.0]),
        call_oi=[0.0, 1000.0, 200.0],
        call_volume=[5000, 10, 900],
        put_oi=1000.0,
        put_volume=10,
    )
    rows = features(chain).values["unusual_contracts"]
    assert [(r["strike"], r["right"]) for r in rows] == [(105.0, "C")]
    assert rows[0]["vol_oi"] == pytest.approx(4.5)
