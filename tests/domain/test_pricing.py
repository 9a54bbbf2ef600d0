"""Black–Scholes–Merton core against textbook numbers and against vollib (a dev dependency).

Tolerances on the random grid are ``|ours - vollib| <= 1e-8 * max(1, |vollib|)``: absolute for
values below 1, relative above, since a 400-dollar price cannot be expected to agree to 1e-8
absolute with a library that computes it another way.
"""

from __future__ import annotations

import math
import subprocess
import sys
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from chalicelib.domain.normal import erfc, norm_cdf
from chalicelib.domain.pricing import (
    IV_ABOVE_BOUND,
    IV_BAD_INPUT,
    IV_BELOW_INTRINSIC,
    IV_NO_CONVERGENCE,
    IV_OK,
    IV_REASONS,
    bs_greeks,
    bs_price,
    implied_volatility,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def assert_scaled_close(actual: NDArray[np.float64], expected: NDArray[np.float64], tol: float):
    error = np.abs(np.asarray(actual) - np.asarray(expected))
    allowed = tol * np.maximum(1.0, np.abs(expected))
    assert np.all(error <= allowed), f"worst excess {np.max(error / allowed):.3g}x of {tol:g}"


# --- textbook and doctest reference values ------------------------------------------------------


def test_hull_example_15_6_call_and_put():
    call, put = bs_price(42.0, 40.0, 0.5, 0.10, 0.20, np.array([True, False]))
    assert call == pytest.approx(4.759422, abs=1e-6)
    assert put == pytest.approx(0.808599, abs=1e-6)


def test_hull_greek_letters_example():
    call = bs_greeks(49.0, 50.0, 0.3846, 0.05, 0.20, True)
    put = bs_greeks(49.0, 50.0, 0.3846, 0.05, 0.20, False)
    assert call.delta == pytest.approx(0.521602, abs=1e-6)
    assert call.gamma == pytest.approx(0.065545, abs=1e-6)
    assert call.vega == pytest.approx(0.121052, abs=1e-6)  # per vol point
    assert call.theta * 365 == pytest.approx(-4.30539, abs=1e-5)  # theta is per calendar day
    assert call.rho == pytest.approx(0.089066, abs=1e-6)  # per rate point
    assert put.theta * 365 == pytest.approx(-1.8530057, abs=1e-6)
    assert put.delta == pytest.approx(call.delta - 1.0, abs=1e-12)


def test_hull_implied_volatility_example():
    result = implied_volatility(1.875, 21.0, 20.0, 0.25, 0.10, True)
    assert result.reason == IV_OK
    assert result.iv == pytest.approx(0.2345129, abs=1e-6)


def test_vollib_doctest_values():
    call, put = bs_price(100.0, 90.0, 0.5, 0.01, 0.2, np.array([True, False]))
    assert call == pytest.approx(12.111581435, abs=1e-8)
    assert put == pytest.approx(1.66270456231, abs=1e-8)
    # vollib black_scholes.implied_volatility doctest: S=K=100, t=.5, r=.01, call.
    assert bs_price(100.0, 100.0, 0.5, 0.01, 0.2, True) == pytest.approx(5.87602423383, abs=1e-10)
    assert implied_volatility(5.87602423383, 100.0, 100.0, 0.5, 0.01, True).iv == pytest.approx(
        0.2, abs=1e-9
    )
    # vollib black_scholes_merton doctest (Haug p. 4): S=100, K=95, t=.5, r=.1, q=.05, put.
    haug_put = bs_price(100.0, 95.0, 0.5, 0.1, 0.2, False, div_yield=0.05)
    assert haug_put == pytest.approx(2.4647876, abs=1e-6)


def test_gex_reference_gamma():
    """The GEX worked example in the analytics notes: S=K=100, 30 days, 20 % vol, no rates."""
    assert bs_greeks(100.0, 100.0, 30 / 365, 0.0, 0.2, True).gamma == pytest.approx(
        0.069548, abs=1e-6
    )


# --- the normal CDF that replaces scipy ---------------------------------------------------------


def test_erfc_matches_math_erfc_to_machine_precision():
    x = np.concatenate([np.linspace(-6.0, 26.0, 6401), [0.0, 0.46875, -0.46875, 4.0, -4.0]])
    expected = np.array([math.erfc(v) for v in x])
    assert np.max(np.abs(erfc(x) - expected) / expected) < 4e-15


def test_norm_cdf_keeps_relative_accuracy_in_the_lower_tail():
    """Deep out-of-the-money prices are differences of tiny CDF values; 1 - erf would give 0.

    The bound is 1e-12, not 1e-16: rounding x / sqrt(2) alone moves erfc by ~x^2 ulps at x = -37.
    """
    x = np.linspace(-37.0, 8.0, 4501)
    expected = np.array([0.5 * math.erfc(-v / math.sqrt(2.0)) for v in x])
    assert np.max(np.abs(norm_cdf(x) - expected) / expected) < 1e-12
    assert norm_cdf(-np.inf) == 0.0 and norm_cdf(np.inf) == 1.0
    assert np.isnan(norm_cdf(np.nan))


def test_pricing_module_imports_no_scipy():
    """The Lambda bundle carries numpy only; scipy sneaking in would break the deploy size."""
    code = "import sys, chalicelib.domain.pricing; sys.exit('scipy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT).returncode == 0


# --- random grid against vollib -----------------------------------------------------------------


class Grid(NamedTuple):
    spot: NDArray[np.float64]
    strike: NDArray[np.float64]
    t: NDArray[np.float64]
    rate: NDArray[np.float64]
    div: NDArray[np.float64]
    sigma: NDArray[np.float64]
    is_call: NDArray[np.bool_]


@pytest.fixture(scope="module")
def grid() -> Grid:
    rng = np.random.default_rng(20240611)
    n = 400
    spot = rng.uniform(10.0, 500.0, n)
    return Grid(
        spot=spot,
        strike=spot * rng.uniform(0.5, 1.5, n),
        t=rng.uniform(0.02, 2.0, n),
        rate=rng.uniform(0.0, 0.08, n),
        div=rng.uniform(0.0, 0.04, n),
        sigma=rng.uniform(0.05, 1.5, n),
        is_call=rng.random(n) < 0.5,
    )


def _vollib_each(func, g: Grid, *, with_sigma: bool = True) -> NDArray[np.float64]:
    rows = zip(g.is_call, g.spot, g.strike, g.t, g.rate, g.sigma, g.div, strict=True)
    out = []
    for call, s, k, t, r, sigma, q in rows:
        args = (s, k, t, r, sigma, q) if with_sigma else (s, k, t, r, q)
        out.append(func("c" if call else "p", *map(float, args)))
    return np.array(out, dtype=np.float64)


def test_prices_match_vollib_on_grid(grid: Grid):
    from vollib.black_scholes_merton import black_scholes_merton

    expected = _vollib_each(black_scholes_merton, grid)
    ours = bs_price(grid.spot, grid.strike, grid.t, grid.rate, grid.sigma, grid.is_call, grid.div)
    assert ours.dtype == np.float64 and ours.shape == expected.shape
    assert_scaled_close(ours, expected, 1e-8)


def test_greeks_match_vollib_on_grid(grid: Grid):
    from vollib.black_scholes_merton.greeks import analytical

    ours = bs_greeks(grid.spot, grid.strike, grid.t, grid.rate, grid.sigma, grid.is_call, grid.div)
    for name in ("delta", "gamma", "theta", "vega", "rho"):
        expected = _vollib_each(getattr(analytical, name), grid)
        assert_scaled_close(getattr(ours, name), expected, 1e-8)


def test_implied_volatility_round_trips_vollib_prices(grid: Grid):
    from vollib.black_scholes_merton import black_scholes_merton
    from vollib.black_scholes_merton.implied_volatility import implied_volatility as vollib_iv

    prices = _vollib_each(black_scholes_merton, grid)
    spot_pv = grid.spot * np.exp(-grid.div * grid.t)
    strike_pv = grid.strike * np.exp(-grid.rate * grid.t)
    lower = np.maximum(np.where(grid.is_call, 1.0, -1.0) * (spot_pv - strike_pv), 0.0)
    vega = bs_greeks(grid.spot, grid.strike, grid.t, grid.rate, grid.sigma, grid.is_call, grid.div)
    solvable = (vega.vega > 1e-4) & (prices > lower + 1e-6)
    assert solvable.sum() > 0.8 * solvable.size  # the filter must not hollow out the test

    result = implied_volatility(
        prices, grid.spot, grid.strike, grid.t, grid.rate, grid.is_call, grid.div
    )
    assert np.all(result.reason[solvable] == IV_OK)
    assert np.max(np.abs(result.iv[solvable] - grid.sigma[solvable])) < 1e-6

    theirs = np.array(
        [
            vollib_iv(float(p), float(s), float(k), float(t), float(r), float(q), "c" if c else "p")
            for p, s, k, t, r, q, c in zip(
                prices[solvable],
                grid.spot[solvable],
                grid.strike[solvable],
                grid.t[solvable],
                grid.rate[solvable],
                grid.div[solvable],
                grid.is_call[solvable],
                strict=True,
            )
        ]
    )
    assert np.max(np.abs(result.iv[solvable] - theirs)) < 1e-6


def test_put_call_parity_on_grid(grid: Grid):
    args = (grid.spot, grid.strike, grid.t, grid.rate, grid.sigma)
    calls = bs_price(*args, True, grid.div)
    puts = bs_price(*args, False, grid.div)
    forward_gap = grid.spot * np.exp(-grid.div * grid.t) - grid.strike * np.exp(-grid.rate * grid.t)
    assert np.max(np.abs(calls - puts - forward_gap)) < 1e-10


# --- shapes, edges and bad inputs ---------------------------------------------------------------


def test_scalar_spot_broadcasts_against_strike_and_expiry_grid():
    strikes = np.array([80.0, 90.0, 100.0, 110.0, 120.0])
    expiries = np.array([[0.1], [0.5], [1.0]])
    prices = bs_price(100.0, strikes, expiries, 0.03, 0.25, True, 0.01)
    assert prices.shape == (3, 5) and prices.dtype == np.float64
    assert prices[1, 3] == pytest.approx(float(bs_price(100.0, 110.0, 0.5, 0.03, 0.25, True, 0.01)))
    assert np.all(np.diff(prices, axis=1) < 0)  # calls cheapen with strike
    assert np.all(np.diff(prices, axis=0) > 0)  # and gain value with time

    greeks = bs_greeks(100.0, strikes, expiries, 0.03, 0.25, True, 0.01)
    assert all(g.shape == (3, 5) for g in greeks)

    result = implied_volatility(prices, 100.0, strikes, expiries, 0.03, True, 0.01)
    assert result.iv.shape == result.reason.shape == (3, 5)
    assert result.reason.dtype == np.int8
    np.testing.assert_allclose(result.iv, 0.25, atol=1e-10)


def test_scalar_inputs_give_zero_dimensional_arrays():
    price = bs_price(100.0, 100.0, 1.0, 0.0, 0.2, True)
    assert isinstance(price, np.ndarray) and price.shape == ()
    result = implied_volatility(price, 100.0, 100.0, 1.0, 0.0, True)
    assert isinstance(result.iv, np.ndarray) and result.iv.shape == ()


def test_expiry_and_zero_vol_prices_and_undefined_greeks():
    flags = np.array([True, False])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        at_expiry = bs_price(105.0, 100.0, 0.0, 0.05, 0.2, flags)
        no_vol = bs_price(105.0, 100.0, 1.0, 0.05, 0.0, flags, div_yield=0.02)
        greeks = bs_greeks(105.0, 100.0, np.array([0.0, 1.0]), 0.05, np.array([0.2, 0.0]), True)
    np.testing.assert_array_equal(at_expiry, [5.0, 0.0])
    forward_gap = 105.0 * math.exp(-0.02) - 100.0 * math.exp(-0.05)
    np.testing.assert_allclose(no_vol, [forward_gap, 0.0], atol=1e-12)
    assert all(np.isnan(g).all() for g in greeks)


def test_bad_quotes_get_reasons_not_exceptions_or_warnings():
    cases = [
        # (price, spot, strike, t, is_call, expected reason)
        (5.0, 100.0, 90.0, 1.0, True, IV_BELOW_INTRINSIC),  # intrinsic is 10
        (0.0, 100.0, 120.0, 1.0, True, IV_BELOW_INTRINSIC),  # zero time value
        (101.0, 100.0, 90.0, 1.0, True, IV_ABOVE_BOUND),  # a call is worth less than the spot
        (100.0, 100.0, 90.0, 1.0, True, IV_ABOVE_BOUND),  # exactly at the bound
        (95.0, 100.0, 90.0, 1.0, False, IV_ABOVE_BOUND),  # a put less than the strike's PV
        (5.0, 100.0, 100.0, 0.0, True, IV_BAD_INPUT),  # expired
        (5.0, 100.0, 0.0, 1.0, True, IV_BAD_INPUT),  # zero strike
        (np.nan, 100.0, 100.0, 1.0, True, IV_BAD_INPUT),
        (5.0, np.inf, 100.0, 1.0, True, IV_BAD_INPUT),
        (5.0, 0.0, 100.0, 1.0, True, IV_BAD_INPUT),
        (-1.0, 100.0, 100.0, 1.0, False, IV_BAD_INPUT),
        (8.0, 100.0, 100.0, 1.0, True, IV_OK),  # a good quote among bad ones still solves
    ]
    price, spot, strike, t, is_call, expected = (np.array(c) for c in zip(*cases, strict=True))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = implied_volatility(price, spot, strike, t, 0.0, is_call.astype(bool))
    np.testing.assert_array_equal(result.reason, expected.astype(np.int8))
    assert np.isnan(result.iv[expected != IV_OK]).all()
    assert result.iv[-1] == pytest.approx(0.2015, abs=1e-3)
    assert set(IV_REASONS) == {IV_BELOW_INTRINSIC, IV_ABOVE_BOUND, IV_BAD_INPUT, IV_NO_CONVERGENCE}


def test_price_exactly_at_forward_intrinsic_is_below_intrinsic_not_zero_vol():
    spot_pv, strike_pv = 100.0 * math.exp(-0.02), 90.0 * math.exp(-0.05)
    result = implied_volatility(spot_pv - strike_pv, 100.0, 90.0, 1.0, 0.05, True, 0.02)
    assert result.reason == IV_BELOW_INTRINSIC and np.isnan(result.iv)


def test_iteration_cap_reports_no_convergence():
    result = implied_volatility(0.5, 100.0, 130.0, 1.0, 0.0, True, max_iter=1)
    assert result.reason == IV_NO_CONVERGENCE and np.isnan(result.iv)
    assert implied_volatility(0.5, 100.0, 130.0, 1.0, 0.0, True).reason == IV_OK


def test_string_flags_are_refused():
    with pytest.raises(TypeError, match="is_call"):
        bs_price(100.0, 100.0, 1.0, 0.0, 0.2, "p")


# --- property: the solver inverts the pricer ----------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    sigma=st.floats(0.05, 2.0),
    t=st.floats(0.05, 3.0),
    moneyness=st.floats(0.6, 1.6),
    spot=st.floats(5.0, 1000.0),
    rate=st.floats(0.0, 0.1),
    div=st.floats(0.0, 0.06),
    is_call=st.booleans(),
)
def test_implied_volatility_inverts_price(sigma, t, moneyness, spot, rate, div, is_call):
    strike = spot * moneyness
    assume(bs_greeks(spot, strike, t, rate, sigma, is_call, div).vega > 1e-3)
    price = bs_price(spot, strike, t, rate, sigma, is_call, div)
    result = implied_volatility(price, spot, strike, t, rate, is_call, div)
    assert result.reason == IV_OK
    assert abs(result.iv - sigma) < 1e-6
