"""Dealer gamma exposure (GEX): per contract line, and the spot at which the net changes sign.

Naive dealer convention, as OpenBB and the tradingvolatility notes use it: dealers are long the
calls and short the puts the public holds, so calls count +, puts −, in dollars of delta change
per 1 % move of the underlying: ±Γ·OI·100·S²·0.01. Positive net GEX means dealers hedge against
the move (dampening it); below the zero-gamma level they hedge with it.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
CONTRACT_MULTIPLIER = 100.0
_GRID_CELLS = 400_000  # contracts × spots repriced per numpy pass: bounds the memory
_D1_CUTOFF = 9.0
_SQRT_2PI = math.sqrt(2.0 * math.pi)


def gamma_exposure(
    gamma: FloatArray, open_interest: FloatArray, spot: float, is_call: NDArray[np.bool_]
) -> FloatArray:
    """Dealer gamma exposure per contract line, $ per 1 % move: ±Γ·OI·100·S²·0.01 (calls +)."""
    sign = np.where(np.asarray(is_call, dtype=bool), 1.0, -1.0)
    return sign * gamma * open_interest * CONTRACT_MULTIPLIER * spot * spot * 0.01


def net_gex_curve(
    spots: FloatArray,
    strike: FloatArray,
    t: FloatArray,
    iv: FloatArray,
    open_interest: FloatArray,
    is_call: NDArray[np.bool_],
    rate: float,
    div_yield: float = 0.0,
) -> FloatArray:
    """Net dealer GEX of the whole chain at each spot in ``spots``, each contract's IV held fixed.

    With v = σ√T and d1 = (ln S' − ln K + (r − q + σ²/2)T)/v, BSM gamma is e^{−qT}·φ(d1)/(S'·v),
    so GEX(S') = S'·Σ ±OI·e^{−qT}/v·φ(d1) — one matrix-vector product per block of spots.
    Contracts without a positive IV, T or OI are left out (they carry no known gamma), and so are
    those whose d1 stays beyond ±9 over the whole grid (φ < 3e-18: no gamma left there).
    """
    ok = (
        np.isfinite(strike)
        & np.isfinite(t)
        & np.isfinite(iv)
        & np.isfinite(open_interest)
        & (strike > 0)
        & (t > 0)
        & (iv > 0)
        & (open_interest > 0)
    )
    grid = np.asarray(spots, dtype=np.float64)
    net = np.zeros(grid.size)
    if not ok.any() or grid.size == 0:
        return net
    tt, vol = t[ok], iv[ok]
    v = vol * np.sqrt(tt)
    shift = np.log(strike[ok]) - (rate - div_yield + 0.5 * vol * vol) * tt  # d1 = (ln S' − shift)/v
    x = np.log(grid)
    low, high = (x.min() - shift) / v, (x.max() - shift) / v
    alive = (high > -_D1_CUTOFF) & (low < _D1_CUTOFF)
    if not alive.any():
        return net
    weight = np.where(is_call[ok], 1.0, -1.0) * open_interest[ok] * np.exp(-div_yield * tt) / v
    shift, v, weight = shift[alive], v[alive], weight[alive] / _SQRT_2PI
    step = max(1, _GRID_CELLS // shift.size)
    for start in range(0, grid.size, step):
        d1 = (x[start : start + step, None] - shift) / v
        net[start : start + step] = np.exp(-0.5 * d1 * d1) @ weight
    return net * grid * CONTRACT_MULTIPLIER * 0.01


def zero_gamma_level(
    spot: float,
    strike: FloatArray,
    t: FloatArray,
    iv: FloatArray,
    open_interest: FloatArray,
    is_call: NDArray[np.bool_],
    rate: float,
    div_yield: float = 0.0,
    *,
    span: float = 0.10,
    points: int = 81,
) -> float | None:
    """The spot where net dealer GEX changes sign, searched over spot·(1 ± ``span``).

    Gamma is repriced at each of ``points`` evenly spaced spots with every contract's IV held
    fixed; the crossing between two grid spots is linear in net GEX. With several crossings the
    one nearest today's spot wins. ``None`` when the net keeps one sign over the whole grid.
    """
    grid = spot * (1.0 + np.linspace(-span, span, points))
    net = net_gex_curve(grid, strike, t, iv, open_interest, is_call, rate, div_yield)
    sign = np.sign(net)
    cross = np.flatnonzero((sign[:-1] * sign[1:] < 0) | ((sign[:-1] != 0) & (sign[1:] == 0)))
    if cross.size == 0:
        return None
    a, b = net[cross], net[cross + 1]
    levels = grid[cross] + (grid[cross + 1] - grid[cross]) * a / (a - b)
    return float(levels[np.argmin(np.abs(levels - spot))])
