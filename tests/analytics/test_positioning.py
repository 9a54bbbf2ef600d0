"""Positioning features against independent computations: zero gamma, the per-expiry table,
the 0DTE share of GEX, and the day-over-day change of open interest."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime

import numpy as np
import pytest
from analyticskit import AS_OF, build_chain

from chalicelib.analytics.exposure import gamma_exposure, net_gex_curve, zero_gamma_level
from chalicelib.analytics.features import (
    DailyInputs,
    PreviousOpenInterest,
    compute_features,
    contract_keys,
    max_pain_by_expiry,
    open_interest_change,
)
from chalicelib.domain import calendar as cal
from chalicelib.domain.pricing import bs_greeks

NO_HISTORY = DailyInputs.empty()
STRIKES = np.arange(80.0, 121.0, 2.5)


def flip_chain(**kw):
    """Put OI heavy below spot, call OI heavy above: net GEX negative low, positive high."""
    call_oi = np.where(STRIKES >= 102.5, 5000.0, 100.0)
    put_oi = np.where(STRIKES <= 97.5, 5000.0, 100.0)
    kw.setdefault("expiries", [date(2026, 3, 20), date(2026, 4, 17)])
    return build_chain(strikes=STRIKES, call_oi=call_oi, put_oi=put_oi, **kw)


def brute_net_gex(chain, spot: float, as_of: datetime) -> float:
    """Net GEX at ``spot`` with the textbook greeks, contract by contract."""
    total = 0.0
    for i in range(len(chain)):
        expiry = chain["expiration"][i].astype("datetime64[D]").item()
        t = (cal.expiry_close(expiry) - as_of).total_seconds() / cal.SECONDS_PER_YEAR
        is_call = chain["right"][i] == "C"
        gamma = float(
            bs_greeks(
                spot, chain["strike"][i], t, 0.0, chain["implied_volatility"][i], is_call
            ).gamma
        )
        total += (1 if is_call else -1) * gamma * chain["open_interest"][i] * 100 * spot**2 * 0.01
    return total


# ---- zero gamma ---------------------------------------------------------------------------
def test_zero_gamma_is_where_the_brute_force_net_gex_changes_sign() -> None:
    chain = flip_chain()
    fs = compute_features(chain, 100.0, AS_OF, NO_HISTORY, rate=0.0)
    level = fs.values["zero_gamma"]
    assert 90.0 < level < 110.0
    low, high = 90.0, 110.0  # bisection on the textbook net GEX
    assert brute_net_gex(chain, low, AS_OF) < 0 < brute_net_gex(chain, high, AS_OF)
    for _ in range(40):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if brute_net_gex(chain, mid, AS_OF) < 0 else (low, mid)
    assert level == pytest.approx(0.5 * (low + high), abs=0.02)  # 81 spots over ±10 %: linear


def test_net_gex_curve_at_spot_is_gex_total() -> None:
    chain = flip_chain()
    fs = compute_features(chain, 100.0, AS_OF, NO_HISTORY, rate=0.0)
    t = np.array(
        [
            (cal.expiry_close(e.astype("datetime64[D]").item()) - AS_OF).total_seconds()
            / cal.SECONDS_PER_YEAR
            for e in chain["expiration"]
        ]
    )
    curve = net_gex_curve(
        np.array([100.0]),
        chain["strike"],
        t,
        chain["implied_volatility"],
        chain["open_interest"],
        chain["right"] == "C",
        0.0,
    )
    assert curve[0] == pytest.approx(fs.values["gex_total"], rel=1e-9)


def test_zero_gamma_is_null_when_net_gex_keeps_its_sign() -> None:
    chain = build_chain(strikes=STRIKES, call_oi=5000.0, put_oi=10.0)  # calls dominate
    fs = compute_features(chain, 100.0, AS_OF, NO_HISTORY, rate=0.0)
    assert fs.values["gex_total"] > 0
    assert fs.values["zero_gamma"] is None
    assert "keeps one sign" in fs.missing["zero_gamma"]
    assert (
        zero_gamma_level(
            100.0,
            np.array([100.0]),
            np.array([0.1]),
            np.array([0.2]),
            np.array([0.0]),  # no OI: nothing to flip
            np.array([True]),
            0.0,
        )
        is None
    )


# ---- the per-expiry table ------------------------------------------------------------------
def test_by_expiry_matches_the_chain_wide_features_and_hand_sums() -> None:
    expiries = [date(2026, 3, 13), date(2026, 4, 17), date(2026, 6, 18)]
    rng = np.random.default_rng(5)
    call_oi, put_oi = rng.integers(0, 3000, STRIKES.size), rng.integers(0, 3000, STRIKES.size)
    chain = build_chain(
        expiries=expiries,
        strikes=STRIKES,
        sigma=lambda k, t: 0.25 - 0.1 * np.log(k / 100.0) + 0.02 * t,
        call_oi=call_oi.astype(float),
        put_oi=put_oi.astype(float),
        call_volume=rng.integers(0, 500, STRIKES.size),
        put_volume=rng.integers(0, 500, STRIKES.size),
    )
    fs = compute_features(chain, 100.0, AS_OF, NO_HISTORY, rate=0.0)
    v = fs.values
    rows = v["by_expiry"]
    assert [r["expiration"] for r in rows] == [str(e) for e in expiries]
    assert [r["atm_iv"] for r in rows] == pytest.approx([p["atm_iv"] for p in v["term_structure"]])
    assert {r["expiration"]: r["max_pain"] for r in rows} == {
        p["expiration"]: p["strike"] for p in v["max_pain_by_expiry"]
    }
    assert sum(r["net_gex"] for r in rows) == pytest.approx(v["gex_total"], abs=0.05)
    assert sum(r["call_volume"] for r in rows) == v["call_volume"]
    for row, expiry in zip(rows, expiries, strict=True):
        on = chain["expiration"].astype("datetime64[D]") == np.datetime64(expiry)
        calls, puts = on & (chain["right"] == "C"), on & (chain["right"] == "P")
        assert row["contracts"] == int(on.sum())
        pcr = chain["volume"][puts].sum() / chain["volume"][calls].sum()
        assert row["put_call_volume_ratio"] == pytest.approx(pcr)
        oi_pcr = chain["open_interest"][puts].sum() / chain["open_interest"][calls].sum()
        assert row["put_call_oi_ratio"] == pytest.approx(oi_pcr)
        t = (cal.expiry_close(expiry) - AS_OF).total_seconds() / cal.SECONDS_PER_YEAR
        assert row["years"] == pytest.approx(t)
        assert row["sigma_move"] == pytest.approx(100.0 * row["atm_iv"] * math.sqrt(t))
        assert row["atm_strike"] == 100.0
        mids = (chain["bid"] + chain["ask"]) / 2
        at = on & (chain["strike"] == 100.0)
        assert row["straddle"] == pytest.approx(float(mids[at].sum()))
        gex = gamma_exposure(chain["gamma"], chain["open_interest"], 100.0, chain["right"] == "C")
        assert row["call_gex"] == pytest.approx(float(gex[calls].sum()), abs=0.01)
        assert row["put_gex"] == pytest.approx(float(gex[puts].sum()), abs=0.01)
        pain = max_pain_by_expiry(
            np.zeros(int(on.sum()), dtype=np.intp),
            chain["strike"][on],
            chain["right"][on] == "C",
            chain["open_interest"][on],
            1,
        )
        assert row["max_pain"] == pain[0]
        assert row["oi_change"] is None
        assert row["missing"]["oi_change"] == "no snapshot of an earlier session"
    front = rows[0]
    move = v["expected_move"]
    assert (move["expiration"], move["strike"], move["straddle"]) == (
        front["expiration"],
        front["atm_strike"],
        front["straddle"],
    )
    assert move["sigma_move"] == front["sigma_move"]


def test_a_same_day_expiry_is_listed_but_left_out_of_volatility() -> None:
    midday = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    chain = flip_chain(expiries=[date(2026, 3, 2), date(2026, 3, 20)], as_of=midday)
    fs = compute_features(chain, 100.0, midday, NO_HISTORY, rate=0.0)
    today, later = fs.values["by_expiry"]
    assert today["dte"] == 0 and today["atm_iv"] is None and today["sigma_move"] is None
    assert "closer than 0.5 days" in today["missing"]["atm_iv"]
    assert today["net_gex"] is not None and later["atm_iv"] is not None
    gross = [abs(r["call_gex"]) + abs(r["put_gex"]) for r in (today, later)]
    assert fs.values["gex_0dte_share"] == pytest.approx(gross[0] / sum(gross), rel=1e-6)
    assert 0.0 < fs.values["gex_0dte_share"] < 1.0


def test_no_same_day_expiry_has_a_zero_0dte_share() -> None:
    fs = compute_features(flip_chain(), 100.0, AS_OF, NO_HISTORY, rate=0.0)
    assert fs.values["gex_0dte_share"] == 0.0


# ---- day-over-day open interest -------------------------------------------------------------
def test_open_interest_change_matches_contracts_and_ignores_listings() -> None:
    exp = np.array(["2026-03-20", "2026-03-20", "2026-04-17"], dtype="datetime64[D]")
    keys = contract_keys(exp, np.array([100.0, 100.0, 105.0]), np.array([True, False, True]))
    prev_keys = contract_keys(
        np.array(["2026-03-20", "2026-03-20", "2026-02-27"], dtype="datetime64[D]"),
        np.array([100.0, 100.0, 95.0]),
        np.array([False, True, True]),
    )
    change = open_interest_change(
        keys, np.array([1200.0, np.nan, 50.0]), prev_keys, np.array([700.0, 1000.0, 9.0])
    )
    # 100C +200; 100P unknown today; 105C newly listed; the expired 95C is not a change
    assert change[0] == 200.0 and np.isnan(change[1]) and np.isnan(change[2])


def test_oi_change_features_against_the_previous_session() -> None:
    today_oi = np.linspace(1000, 3000, STRIKES.size)
    chain = build_chain(strikes=STRIKES, call_oi=today_oi, put_oi=today_oi[::-1])
    calls = chain["right"] == "C"
    prev_oi = chain["open_interest"] - np.where(calls, 100.0, -40.0)
    drop = chain["strike"] == 80.0  # 80C and 80P were not listed yesterday
    previous = PreviousOpenInterest(
        as_of=datetime(2026, 2, 27, 21, 0, tzinfo=UTC),
        expiration=chain["expiration"][~drop].astype("datetime64[D]"),
        strike=chain["strike"][~drop],
        is_call=calls[~drop],
        open_interest=prev_oi[~drop],
    )
    fs = compute_features(chain, 100.0, AS_OF, NO_HISTORY, previous_oi=previous, rate=0.0)
    v = fs.values
    n = STRIKES.size - 1
    assert v["oi_previous_as_of"] == "2026-02-27T21:00:00Z"
    assert (v["oi_change_call"], v["oi_change_put"]) == (100 * n, -40 * n)
    assert v["oi_change_total"] == 60 * n
    rows = {r["strike"]: r for r in v["oi_change_by_strike"]}
    assert 80.0 not in rows and rows[100.0] == {
        "strike": 100.0,
        "call_change": 100,
        "put_change": -40,
        "net_change": 60,
    }
    assert v["by_expiry"][0]["oi_change"] == 60 * n


def test_oi_change_is_null_without_an_earlier_session() -> None:
    chain = build_chain(strikes=STRIKES)
    fs = compute_features(chain, 100.0, AS_OF, NO_HISTORY, rate=0.0)
    assert fs.values["oi_change_total"] is None
    assert fs.missing["oi_change_total"] == "no snapshot of an earlier session"
    same_day = PreviousOpenInterest(
        AS_OF.replace(hour=15),
        chain["expiration"].astype("datetime64[D]"),
        chain["strike"],
        chain["right"] == "C",
        chain["open_interest"],
    )
    fs = compute_features(chain, 100.0, AS_OF, NO_HISTORY, previous_oi=same_day, rate=0.0)
    assert fs.values["oi_change_total"] is None
    assert "not from an earlier session" in fs.missing["oi_change_total"]
