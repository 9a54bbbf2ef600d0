"""Completing chains from real sources: what a file or a feed leaves out, the pricing core fills.

Sources often lack implied volatility (no calcs purchased, or a vendor's 0 for "not computed")
or some greeks (no rho in most vendor files). ``complete`` solves a missing IV from the quote's
mid and computes the greeks at the contract's IV, for every chain of a cycle in one numpy pass:

- IV given: only the greeks that are missing are computed, at that IV;
- IV missing: it is solved from the mid of a two-sided quote (bid > 0, ask > bid:
  ``chain.two_sided``, the rule the features use too), and all greeks are recomputed at it, since
  greeks published without an IV behind them cannot be trusted. Where no IV can be solved (a
  one-sided quote, or one at or below intrinsic value) the IV stays missing and the source's
  greeks are kept.

Time runs to the 16:00 New York close of the expiration day in years of 365 days, as everywhere.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from numpy.typing import NDArray

from chalicelib.domain import calendar as cal
from chalicelib.domain.chain import ChainBatch, two_sided
from chalicelib.domain.pricing import bs_greeks, implied_volatility

GREEKS = ("delta", "gamma", "theta", "vega", "rho")


def years_to_expiry(expiration: NDArray, as_of: NDArray) -> NDArray[np.float64]:
    """Years of 365 days from each ``as_of`` (naive UTC) to its expiry's 16:00 New York close."""
    days = np.asarray(expiration).astype("datetime64[D]")
    unique, index = np.unique(days, return_inverse=True)
    closes = np.array(
        [cal.expiry_close(d).replace(tzinfo=None) for d in unique.tolist()],
        dtype="datetime64[s]",
    ).reshape(-1)
    quoted = np.asarray(as_of).astype("datetime64[s]")
    return (closes[index] - quoted).astype(np.int64) / cal.SECONDS_PER_YEAR


def complete(
    batch: ChainBatch,
    spot: NDArray[np.float64],
    div_yield: NDArray[np.float64],
    rate: float,
) -> tuple[ChainBatch, Counter[str]]:
    """``batch`` with missing IVs and greeks filled; ``spot`` and ``div_yield`` per contract.

    Returns the completed batch and how many values of each column were computed.
    """
    computed: Counter[str] = Counter()
    iv = np.asarray(batch["implied_volatility"], dtype=np.float64)
    missing_iv = ~np.isfinite(iv)
    todo = missing_iv.copy()
    for name in GREEKS:
        todo |= ~np.isfinite(batch[name])
    if not todo.any():
        return batch, computed
    rows = np.flatnonzero(todo)
    is_call = batch["right"][rows] == "C"
    strike = batch["strike"][rows]
    t = years_to_expiry(batch["expiration"][rows], batch["as_of"][rows])
    s, q = spot[rows], div_yield[rows]
    sigma = iv[rows].copy()
    solve = missing_iv[rows]
    if solve.any():
        bid, ask = batch["bid"][rows][solve], batch["ask"][rows][solve]
        mid = np.where(two_sided(bid, ask), (bid + ask) / 2, np.nan)
        sigma[solve] = implied_volatility(
            mid, s[solve], strike[solve], t[solve], rate, is_call[solve], q[solve]
        ).iv
    greeks = bs_greeks(s, strike, t, rate, sigma, is_call, q)._asdict()
    columns = dict(batch.columns)
    filled_iv = iv.copy()
    filled_iv[rows] = np.where(solve, sigma, iv[rows])
    computed["implied_volatility"] = int(np.isfinite(filled_iv[missing_iv]).sum())
    columns["implied_volatility"] = filled_iv
    for name in GREEKS:
        values = np.array(batch[name], dtype=np.float64)
        current = values[rows]
        # recompute where missing, or everywhere the IV was solved (unless none could be)
        wanted = ~np.isfinite(current) | (solve & np.isfinite(greeks[name]))
        current[wanted] = greeks[name][wanted]
        values[rows] = current
        computed[name] = int((wanted & np.isfinite(greeks[name])).sum())
        columns[name] = values
    return ChainBatch(columns), +computed
