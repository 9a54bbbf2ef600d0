"""Black–Scholes–Merton prices, greeks and implied volatility for whole option chains.

Every function takes arrays (or scalars) that broadcast together and returns float64 arrays of
the broadcast shape: a chain of thousands of contracts costs a few numpy passes, not a Python
loop per contract. Only numpy is imported, because the Lambda bundle carries no scipy; the normal
CDF comes from :mod:`chalicelib.domain.normal`.

Conventions match :mod:`chalicelib.domain.models`: ``t`` in years; ``rate`` and ``div_yield``
continuously compounded; ``sigma`` annualised as a fraction (0.25 = 25 %); ``is_call`` True for a
call. Inputs that make no sense give NaN (or a reason code), never an exception or a warning, so
one bad quote cannot sink a chain; only a non-boolean ``is_call``, a programming error, raises.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from chalicelib.domain.normal import norm_cdf, norm_pdf

FloatArray = NDArray[np.float64]

IV_OK = 0
IV_BELOW_INTRINSIC = 1
IV_ABOVE_BOUND = 2
IV_BAD_INPUT = 3
IV_NO_CONVERGENCE = 4
IV_REASONS: dict[int, str] = {
    IV_BELOW_INTRINSIC: "below_intrinsic",
    IV_ABOVE_BOUND: "above_upper_bound",
    IV_BAD_INPUT: "bad_input",
    IV_NO_CONVERGENCE: "no_convergence",
}

# A price less than this fraction of its upper bound above the lower bound has no time value
# left to invert.
_BOUND_RTOL = 1e-12
# Largest total volatility sigma*sqrt(t) searched. Near the money an out-of-the-money price already
# equals its upper bound in float64 by about 17, so a larger answer could not be told apart.
_MAX_TOTAL_VOL = 40.0
_SQRT_2PI = float(np.sqrt(2.0 * np.pi))


class Greeks(NamedTuple):
    """First-order sensitivities, in the units a trader quotes them."""

    delta: FloatArray
    gamma: FloatArray
    theta: FloatArray  # per calendar day
    vega: FloatArray  # per 1 vol point (0.01 of sigma)
    rho: FloatArray  # per 1 rate point (0.01 of rate)


class IVResult(NamedTuple):
    """Implied volatilities with a reason code per contract; ``iv`` is NaN unless reason is OK."""

    iv: FloatArray
    reason: NDArray[np.int8]


def _flags(is_call: ArrayLike) -> NDArray[np.bool_]:
    """Call/put flags as booleans; strings are refused because ``bool("p")`` is True."""
    flags = np.asarray(is_call)
    if flags.dtype.kind not in "biu":
        raise TypeError(f"is_call must be boolean, got dtype {flags.dtype}")
    return flags.astype(bool)


def _flat(
    is_call: ArrayLike, *values: ArrayLike
) -> tuple[tuple[int, ...], NDArray[np.bool_], list[FloatArray]]:
    """Broadcast the inputs and flatten them to 1-d, remembering the shape to give back."""
    arrays = np.broadcast_arrays(
        _flags(is_call), *(np.asarray(v, dtype=np.float64) for v in values)
    )
    shape = arrays[0].shape
    flat = [np.ravel(a) for a in arrays]
    return shape, flat[0], flat[1:]


def _d1_d2(log_moneyness: FloatArray, total_vol: FloatArray) -> tuple[FloatArray, FloatArray]:
    """d1 and d2 written with the forward log-moneyness ln(F/K) and total vol sigma*sqrt(t)."""
    d1 = log_moneyness / total_vol + 0.5 * total_vol
    return d1, d1 - total_vol


def bs_price(
    spot: ArrayLike,
    strike: ArrayLike,
    t: ArrayLike,
    rate: ArrayLike,
    sigma: ArrayLike,
    is_call: ArrayLike,
    div_yield: ArrayLike = 0.0,
) -> FloatArray:
    """Black–Scholes–Merton price with a continuous dividend yield.

    At expiry (``t <= 0``) the price is the intrinsic value; with ``sigma <= 0`` it is the
    discounted intrinsic value of the forward. Prices are floored at that forward intrinsic value
    so rounding can never make a quote look like an arbitrage to :func:`implied_volatility`.
    """
    shape, call, (s, k, tt, r, vol, q) = _flat(is_call, spot, strike, t, rate, sigma, div_yield)
    with np.errstate(all="ignore"):
        w = np.where(call, 1.0, -1.0)
        spot_pv = s * np.exp(-q * tt)
        strike_pv = k * np.exp(-r * tt)
        d1, d2 = _d1_d2(np.log(s / k) + (r - q) * tt, vol * np.sqrt(tt))
        price = w * (spot_pv * norm_cdf(w * d1) - strike_pv * norm_cdf(w * d2))
        forward_intrinsic = np.maximum(w * (spot_pv - strike_pv), 0.0)
        price = np.where(vol <= 0.0, forward_intrinsic, np.maximum(price, forward_intrinsic))
        price = np.where(tt <= 0.0, np.maximum(w * (s - k), 0.0), price)
    return price.reshape(shape)


def bs_greeks(
    spot: ArrayLike,
    strike: ArrayLike,
    t: ArrayLike,
    rate: ArrayLike,
    sigma: ArrayLike,
    is_call: ArrayLike,
    div_yield: ArrayLike = 0.0,
) -> Greeks:
    """Analytic BSM greeks: theta per calendar day, vega and rho per 1 point (1 %).

    Greeks are undefined at expiry or at zero volatility (delta jumps, gamma is a spike), so
    those contracts get NaN rather than a number a chart would happily plot.
    """
    shape, call, (s, k, tt, r, vol, q) = _flat(is_call, spot, strike, t, rate, sigma, div_yield)
    with np.errstate(all="ignore"):
        w = np.where(call, 1.0, -1.0)
        sqrt_t = np.sqrt(tt)
        spot_pv = s * np.exp(-q * tt)
        strike_pv = k * np.exp(-r * tt)
        total_vol = vol * sqrt_t
        d1, d2 = _d1_d2(np.log(s / k) + (r - q) * tt, total_vol)
        cdf_d1 = norm_cdf(w * d1)
        cdf_d2 = norm_cdf(w * d2)
        density = spot_pv * norm_pdf(d1)  # S e^{-qT} phi(d1) = K e^{-rT} phi(d2)
        annual_theta = -density * vol / (2.0 * sqrt_t) + w * (
            q * spot_pv * cdf_d1 - r * strike_pv * cdf_d2
        )
        greeks = (
            w * np.exp(-q * tt) * cdf_d1,
            density / (s * s * total_vol),
            annual_theta / 365.0,
            density * sqrt_t / 100.0,
            w * tt * strike_pv * cdf_d2 / 100.0,
        )
        undefined = ~((tt > 0.0) & (vol > 0.0))
    return Greeks(*(np.where(undefined, np.nan, g).reshape(shape) for g in greeks))


def implied_volatility(
    price: ArrayLike,
    spot: ArrayLike,
    strike: ArrayLike,
    t: ArrayLike,
    rate: ArrayLike,
    is_call: ArrayLike,
    div_yield: ArrayLike = 0.0,
    tol: float = 1e-12,
    max_iter: int = 100,
) -> IVResult:
    """Invert :func:`bs_price` for sigma, contract by contract, without a Python loop per quote.

    A price must lie strictly between the no-arbitrage bounds: the forward intrinsic value
    ``max(w (S e^{-qT} - K e^{-rT}), 0)`` and ``S e^{-qT}`` (call) or ``K e^{-rT}`` (put). A price
    at the lower bound, or above it by no more than ``1e-12`` times the upper bound (a zero or
    sub-tick out-of-the-money quote included), has no time value and so no volatility to find:
    it is reported as ``IV_BELOW_INTRINSIC`` (NaN), not as IV 0, which would drag down any smile
    or average it entered. Prices at the upper bound, or so close that the
    volatility would exceed sigma*sqrt(t) = 40, are ``IV_ABOVE_BOUND``. Non-finite inputs,
    ``t <= 0``, ``spot <= 0``, ``strike <= 0`` and ``price < 0`` are ``IV_BAD_INPUT``.

    ``tol`` bounds the last change in sigma, relative to ``1 + sigma``.
    """
    shape, call, (p, s, k, tt, r, q) = _flat(is_call, price, spot, strike, t, rate, div_yield)
    iv = np.full(p.shape, np.nan)
    reason = np.full(p.shape, IV_OK, dtype=np.int8)
    with np.errstate(all="ignore"):
        finite = np.isfinite(p) & np.isfinite(s) & np.isfinite(k)
        finite &= np.isfinite(tt) & np.isfinite(r) & np.isfinite(q)
        bad = ~finite | (tt <= 0.0) | (s <= 0.0) | (k <= 0.0) | (p < 0.0)
        w = np.where(call, 1.0, -1.0)
        spot_pv = s * np.exp(-q * tt)
        strike_pv = k * np.exp(-r * tt)
        lower = np.maximum(w * (spot_pv - strike_pv), 0.0)
        upper = np.where(call, spot_pv, strike_pv)
        below = ~bad & (p <= lower + _BOUND_RTOL * upper)
        above = ~bad & ~below & (p >= upper)
        reason[bad] = IV_BAD_INPUT
        reason[below] = IV_BELOW_INTRINSIC
        reason[above] = IV_ABOVE_BOUND

        todo = np.flatnonzero(reason == IV_OK)
        sqrt_t = np.sqrt(tt[todo])
        total_vol, solved = _solve_total_vol(
            time_value=p[todo] - lower[todo],
            spot_pv=spot_pv[todo],
            strike_pv=strike_pv[todo],
            log_moneyness=np.log(s[todo] / k[todo]) + (r[todo] - q[todo]) * tt[todo],
            sqrt_t=sqrt_t,
            tol=tol,
            max_iter=max_iter,
        )
        iv[todo] = np.where(solved == IV_OK, total_vol / sqrt_t, np.nan)
        reason[todo] = solved
    return IVResult(iv.reshape(shape), reason.reshape(shape))


def _solve_total_vol(
    *,
    time_value: FloatArray,
    spot_pv: FloatArray,
    strike_pv: FloatArray,
    log_moneyness: FloatArray,
    sqrt_t: FloatArray,
    tol: float,
    max_iter: int,
) -> tuple[FloatArray, NDArray[np.int8]]:
    """Find total vol sigma*sqrt(t) that reprices the out-of-the-money side of each contract.

    Put–call parity turns an in-the-money quote into the out-of-the-money one at the same strike
    (its time value). That option's price is computed with full relative precision even far
    from the money, where an in-the-money price would be swamped by its intrinsic value.

    Safeguarded Newton on the log of the price: each element keeps a bracket [lo, hi] that every
    evaluation narrows; the Newton step is taken when it lands inside the bracket, otherwise the
    bracket is bisected. The log matters far from the money, where the price is flat then steep
    in vol and plain Newton overshoots; the log price is concave in total vol, so from below
    the step never passes the root. Only unconverged elements are evaluated on each pass.
    """
    n = time_value.size
    result = np.full(n, np.nan)
    code = np.full(n, IV_NO_CONVERGENCE, dtype=np.int8)
    # Out of the money: a call when the forward is below the strike, else a put.
    w = np.where(spot_pv <= strike_pv, 1.0, -1.0)

    # Corrado–Miller (1996), written for the out-of-the-money time value; clipped into range.
    gap = np.abs(spot_pv - strike_pv)
    half = time_value + 0.5 * gap
    root = np.sqrt(np.maximum(half * half - gap * gap / np.pi, 0.0))
    guess = _SQRT_2PI / (spot_pv + strike_pv) * (half + root)
    vol = np.clip(guess, 1e-3, 0.5 * _MAX_TOTAL_VOL)
    lo = np.zeros(n)
    hi = np.full(n, _MAX_TOTAL_VOL)

    active = np.arange(n)
    log_target, fs, fk, x, ws, rt = np.log(time_value), spot_pv, strike_pv, log_moneyness, w, sqrt_t
    for _ in range(max_iter):
        if active.size == 0:
            break
        d1, d2 = _d1_d2(x, vol)
        model = ws * (fs * norm_cdf(ws * d1) - fk * norm_cdf(ws * d2))
        # A price that underflowed (or rounded below zero) means the vol is still too low.
        error = np.where(model > 0.0, np.log(model) - log_target, -np.inf)
        lo = np.where(error < 0.0, vol, lo)
        hi = np.where(error > 0.0, vol, hi)
        newton = vol - error * model / (fs * norm_pdf(d1))
        inside = (newton > lo) & (newton < hi)
        step = np.where(inside, newton, 0.5 * (lo + hi))
        exact = error == 0.0
        done = exact | (np.abs(step - vol) <= tol * (rt + vol))
        if done.any():
            finished = active[done]
            result[finished] = np.where(exact, vol, step)[done]
            code[finished] = IV_OK
            keep = ~done
            active = active[keep]
            log_target, fs, fk, x = log_target[keep], fs[keep], fk[keep], x[keep]
            ws, rt = ws[keep], rt[keep]
            step, lo, hi = step[keep], lo[keep], hi[keep]
        vol = step

    # Converging onto the search ceiling means the price sits on its upper bound in float64.
    pinned = (code == IV_OK) & (result >= _MAX_TOTAL_VOL * (1.0 - 1e-9))
    code[pinned] = IV_ABOVE_BOUND
    result[pinned] = np.nan
    return result, code
