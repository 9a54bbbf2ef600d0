"""Completing imported chains: IVs are solved only from two-sided quotes (bid > 0, ask > bid).

Crafted chains: Black–Scholes prices on the smile IV = 0.30 − 0.15·ln(K/S), the source's IV and
greeks removed, as a vendor file without calcs would have them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pytest

from chalicelib.domain import calendar as cal
from chalicelib.domain.chain import ChainBatch, two_sided
from chalicelib.domain.pricing import bs_greeks, bs_price
from chalicelib.write.providers.completion import GREEKS, complete

AS_OF = datetime(2026, 3, 2, 21, 0, tzinfo=UTC)
EXPIRY = date(2026, 4, 17)
SPOT, RATE = 100.0, 0.045


def smile(strike: np.ndarray) -> np.ndarray:
    return 0.30 - 0.15 * np.log(strike / SPOT)


def vendor_chain(bid_of: str = "mid-0.05") -> tuple[ChainBatch, np.ndarray]:
    """Strikes 80–120 as calls and puts without IV or greeks; returns the chain and true IVs."""
    k = np.arange(80.0, 120.5, 2.5)
    strike, is_call = np.r_[k, k], np.repeat([True, False], k.size)
    t = (cal.expiry_close(EXPIRY) - AS_OF).total_seconds() / cal.SECONDS_PER_YEAR
    vol = smile(strike)
    mid = bs_price(SPOT, strike, t, RATE, vol, is_call)
    bid = {"mid-0.05": mid - 0.05, "zero": np.zeros(strike.size), "locked": mid}[bid_of]
    ask = mid + 0.05 if bid_of != "locked" else mid
    n = strike.size
    nan = np.full(n, np.nan)
    cols = {
        "ticker": np.full(n, "TEST", dtype=object),
        "as_of": np.full(n, np.datetime64(AS_OF.replace(tzinfo=None), "us")),
        "expiration": np.full(n, np.datetime64(EXPIRY, "s")),
        "strike": strike,
        "right": np.where(is_call, "C", "P").astype(object),
        "bid": bid,
        "ask": ask,
        "last": mid,
        "volume": np.full(n, 10, dtype=np.int64),
        "open_interest": np.full(n, 100.0),
        "implied_volatility": nan.copy(),
        **{name: nan.copy() for name in GREEKS},
    }
    return ChainBatch(cols), vol


def _complete(batch: ChainBatch) -> tuple[ChainBatch, dict[str, int]]:
    n = len(batch)
    done, computed = complete(batch, np.full(n, SPOT), np.zeros(n), RATE)
    return done, dict(computed)


def test_two_sided_needs_a_bid_and_an_ask_above_it() -> None:
    bid = np.array([0.0, 1.0, 1.0, 1.0, 1.0, np.nan])
    ask = np.array([1.0, 1.1, 1.0, 0.9, np.nan, 1.0])
    assert two_sided(bid, ask).tolist() == [False, True, False, False, False, False]


def test_iv_solved_from_two_sided_mids_matches_the_smile() -> None:
    batch, true_iv = vendor_chain()
    assert two_sided(batch["bid"], batch["ask"]).all()
    done, computed = _complete(batch)
    np.testing.assert_allclose(done["implied_volatility"], true_iv, atol=1e-9)
    assert computed["implied_volatility"] == len(batch)
    t = (cal.expiry_close(EXPIRY) - AS_OF).total_seconds() / cal.SECONDS_PER_YEAR
    greeks = bs_greeks(SPOT, batch["strike"], t, RATE, true_iv, batch["right"] == "C")
    np.testing.assert_allclose(done["delta"], greeks.delta, atol=1e-8)


@pytest.mark.parametrize("bid_of", ["zero", "locked"])
def test_one_sided_or_locked_quotes_get_no_iv(bid_of: str) -> None:
    """Before: a zero-bid chain was solved from ask/2 (ATM IV 0.152 where the truth is 0.30)."""
    batch, _ = vendor_chain(bid_of)
    done, computed = _complete(batch)
    assert np.isnan(done["implied_volatility"]).all()
    assert "implied_volatility" not in computed
    for name in GREEKS:  # nothing to compute greeks at
        assert np.isnan(done[name]).all()


def test_a_mixed_chain_solves_only_its_two_sided_rows() -> None:
    batch, true_iv = vendor_chain()
    cols = dict(batch.columns)
    cols["bid"] = np.where(np.arange(len(batch)) % 2 == 0, 0.0, batch["bid"])
    done, computed = _complete(ChainBatch(cols))
    odd = np.arange(len(batch)) % 2 == 1
    np.testing.assert_allclose(done["implied_volatility"][odd], true_iv[odd], atol=1e-9)
    assert np.isnan(done["implied_volatility"][~odd]).all()
    assert computed["implied_volatility"] == int(odd.sum())
