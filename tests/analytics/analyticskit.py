"""Builders for hand-made chains shared by the analytics tests (fixtures in ``conftest``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime

import numpy as np

from chalicelib.domain import calendar as cal
from chalicelib.domain.chain import ChainBatch
from chalicelib.domain.pricing import bs_greeks, bs_price

AS_OF = datetime(2026, 3, 2, 21, 0, tzinfo=UTC)  # a Monday, after the close

ChainFactory = Callable[..., ChainBatch]


def build_chain(
    *,
    spot: float = 100.0,
    as_of: datetime = AS_OF,
    expiries: Sequence[date] = (date(2026, 4, 1),),
    strikes: Sequence[float] = tuple(range(80, 121, 5)),
    sigma: Callable[[np.ndarray, float], np.ndarray] | float = 0.2,
    rate: float = 0.0,
    call_oi: float | Sequence[float] = 1000.0,
    put_oi: float | Sequence[float] = 1000.0,
    call_volume: int | Sequence[int] = 100,
    put_volume: int | Sequence[int] = 100,
    half_spread: float = 0.02,
    with_iv: bool = True,
    ticker: str = "TEST",
) -> ChainBatch:
    """A Black–Scholes-consistent chain: each expiry lists every strike as a call and a put.

    ``sigma`` is a number or a function of (strike array, T) giving the smile. OI and volume are
    per strike (calls, then puts), repeated for every expiry.
    """
    k = np.asarray(strikes, dtype=np.float64)
    cols: dict[str, list[np.ndarray]] = {}
    for expiry in expiries:
        t = (cal.expiry_close(expiry) - as_of).total_seconds() / cal.SECONDS_PER_YEAR
        vol = sigma(k, t) if callable(sigma) else np.full(k.size, float(sigma))
        strike = np.r_[k, k]
        is_call = np.repeat([True, False], k.size)
        iv = np.r_[vol, vol]
        mid = bs_price(spot, strike, t, rate, iv, is_call)
        greeks = bs_greeks(spot, strike, t, rate, iv, is_call)
        part = {
            "ticker": np.full(strike.size, ticker, dtype=object),
            "as_of": np.full(strike.size, np.datetime64(as_of.replace(tzinfo=None), "us")),
            "expiration": np.full(strike.size, np.datetime64(expiry, "s")),
            "strike": strike,
            "right": np.where(is_call, "C", "P").astype(object),
            "bid": np.maximum(mid - half_spread, 0.0),
            "ask": mid + half_spread,
            "last": mid,
            "volume": np.r_[
                np.broadcast_to(call_volume, k.size), np.broadcast_to(put_volume, k.size)
            ].astype(np.int64),
            "open_interest": np.r_[
                np.broadcast_to(call_oi, k.size), np.broadcast_to(put_oi, k.size)
            ].astype(np.float64),
            "implied_volatility": iv if with_iv else np.full(strike.size, np.nan),
            "delta": greeks.delta if with_iv else np.full(strike.size, np.nan),
            "gamma": greeks.gamma if with_iv else np.full(strike.size, np.nan),
            "theta": greeks.theta,
            "vega": greeks.vega,
            "rho": greeks.rho,
        }
        for name, values in part.items():
            cols.setdefault(name, []).append(values)
    return ChainBatch({name: np.concatenate(parts) for name, parts in cols.items()})
