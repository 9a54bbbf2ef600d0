"""Standard normal CDF and PDF in plain numpy.

numpy has no ``erf``/``erfc`` and scipy is kept out of the Lambda bundle for size, so the
complementary error function is W. J. Cody's rational Chebyshev approximation (CALERF, Math.
Comp. 1969, as revised in 1990 for SPECFUN). It is accurate to about 1e-16 relative across the
whole real line, tails included, which is what deep out-of-the-money option prices need: a plain
``1 - erf`` would lose every digit there.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

# Cody's coefficients, IEEE double precision. |x| <= 0.46875: erf(x) = x * A(x^2) / B(x^2).
_A = (3.1611237438705656, 113.864154151050156, 377.485237685302021, 3209.37758913846947)
_A_LAST = 0.185777706184603153
_B = (23.6012909523441209, 244.024637934444173, 1282.61652607737228, 2844.23683343917062)
# 0.46875 < |x| <= 4: erfc(x) = exp(-x^2) * C(x) / D(x).
_C = (
    0.564188496988670089,
    8.88314979438837594,
    66.1191906371416295,
    298.635138197400131,
    881.95222124176909,
    1712.04761263407058,
    2051.07837782607147,
    1230.33935479799725,
)
_C_LAST = 2.15311535474403846e-8
_D = (
    15.7449261107098347,
    117.693950891312499,
    537.181101862009858,
    1621.38957456669019,
    3290.79923573345963,
    4362.61909014324716,
    3439.36767414372164,
    1230.33935480374942,
)
# |x| > 4: erfc(x) = exp(-x^2) / x * (1/sqrt(pi) + P(1/x^2) / Q(1/x^2) / x^2).
_P = (
    0.305326634961232344,
    0.360344899949804439,
    0.125781726111229246,
    0.0160837851487422766,
    6.58749161529837803e-4,
)
_P_LAST = 0.0163153871373020978
_Q = (
    2.56852019228982242,
    1.87295284992346047,
    0.527905102951428412,
    0.0605183413124413191,
    0.00233520497626869185,
)

_THRESH = 0.46875
_ONE_OVER_SQRT_PI = 0.56418958354775628695
_X_CLAMP = 40.0
_ONE_OVER_SQRT2 = math.sqrt(0.5)
_ONE_OVER_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _exp_minus_square(y: NDArray[np.float64]) -> NDArray[np.float64]:
    """exp(-y^2) to full precision: y^2 is split exactly (Dekker) so its rounding error, which
    exp would multiply by y^2, is applied as a first-order correction instead."""
    c = y * 134217729.0  # 2**27 + 1
    head = c - (c - y)
    tail = y - head
    square = y * y
    square_error = ((head * head - square) + 2.0 * head * tail) + tail * tail
    return np.exp(-square) * (1.0 - square_error)


def _rational(
    z: NDArray[np.float64],
    num_coeffs: tuple[float, ...],
    den_coeffs: tuple[float, ...],
    num_lead: float,
) -> NDArray[np.float64]:
    """Cody's nested form (((lead z + n0) z + n1) z ...) / (((z + d0) z + d1) z ...), in place."""
    num = num_lead * z
    den = z.copy()
    for n, d in zip(num_coeffs[:-1], den_coeffs[:-1], strict=True):
        num += n
        num *= z
        den += d
        den *= z
    num += num_coeffs[-1]
    den += den_coeffs[-1]
    num /= den
    return num


def erfc(x: ArrayLike) -> NDArray[np.float64]:
    """Complementary error function, elementwise; NaN in, NaN out; erfc(+-inf) = 0, 2."""
    x = np.asarray(x, dtype=np.float64)
    y = np.abs(x)
    out = np.full(x.shape, np.nan)
    with np.errstate(all="ignore"):
        near = y <= _THRESH
        if near.any():
            xs = x[near]
            out[near] = 1.0 - xs * _rational(xs * xs, _A, _B, _A_LAST)
        middle = (y > _THRESH) & (y <= 4.0)
        if middle.any():
            ym = y[middle]
            out[middle] = _rational(ym, _C, _D, _C_LAST) * _exp_minus_square(ym)
        tail = y > 4.0
        if tail.any():
            # Clamped: erfc has underflowed long before, and inf would poison the exp split.
            yt = np.minimum(y[tail], _X_CLAMP)
            inv_sq = 1.0 / (yt * yt)
            series = _ONE_OVER_SQRT_PI - inv_sq * _rational(inv_sq, _P, _Q, _P_LAST)
            out[tail] = series / yt * _exp_minus_square(yt)
        negative = (x < 0.0) & ~near
        out[negative] = 2.0 - out[negative]
    return out


def norm_cdf(x: ArrayLike) -> NDArray[np.float64]:
    """Standard normal CDF, accurate in relative terms far into the lower tail."""
    out = erfc(np.asarray(x, dtype=np.float64) * -_ONE_OVER_SQRT2)
    out *= 0.5
    return out


def norm_pdf(x: ArrayLike) -> NDArray[np.float64]:
    """Standard normal density."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(all="ignore"):
        return np.asarray(_ONE_OVER_SQRT_2PI * np.exp(-0.5 * x * x))
