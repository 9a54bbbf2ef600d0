"""``FeatureBatch``: many tickers' features computed together are each ticker's features
computed alone, whatever the mix of chains in the batch."""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
from analyticskit import AS_OF, build_chain

from chalicelib.analytics.features import (
    ContractHistory,
    DailyInputs,
    FeatureBatch,
    PreviousOpenInterest,
    TickerInputs,
    _round2,
    _running_sums,
    compute_features,
    max_pain_by_expiry,
)
from chalicelib.domain.chain import ChainBatch

EXPIRIES = (date(2026, 3, 2), date(2026, 3, 6), date(2026, 3, 20), date(2026, 4, 17),
            date(2026, 6, 19))  # fmt: skip


def _history(seed: int, days: int = 260) -> DailyInputs:
    rng = np.random.default_rng(seed)
    day = np.arange(np.datetime64("2025-03-01"), np.datetime64("2025-03-01") + days)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, days)))
    return DailyInputs(day, close, rng.uniform(0.15, 0.35, days), rng.normal(-0.03, 0.01, days))


def _inputs() -> list[TickerInputs]:
    """Chains that differ in every way the batch must keep apart: spots, dividend yields,
    smiles, missing IVs (solved from quotes), expired lines, no OI, an empty chain, a bad
    spot, and the previous session's OI for some."""
    items = []
    for n, spot in enumerate((100.0, 57.3, 250.0, 100.0, 12.5, 100.0)):
        chain = build_chain(
            spot=spot,
            expiries=EXPIRIES[n % 2 :],
            strikes=tuple(np.round(spot * np.linspace(0.7, 1.3, 13 + n), 2)),
            sigma=lambda k, t, n=n: 0.2 + 0.05 * n + 0.1 * (k / k.mean() - 1.0) ** 2,
            with_iv=n != 2,
            call_oi=0.0 if n == 4 else 500.0 + 10 * n,
            call_volume=50 + 500 * (n == 1),
            ticker=f"T{n}",
        )
        previous = None
        if n % 2 == 0:
            previous = PreviousOpenInterest(
                as_of=AS_OF - timedelta(days=3),
                expiration=np.asarray(chain["expiration"]).astype("datetime64[D]"),
                strike=np.asarray(chain["strike"]),
                is_call=np.asarray(chain["right"]) == "C",
                open_interest=np.asarray(chain["open_interest"]) - 7.0,
            )
        unusual = ContractHistory(
            np.asarray(chain["expiration"]).astype("datetime64[D]")[:5],
            np.asarray(chain["strike"])[:5],
            np.ones(5, dtype=bool),
            np.arange(5.0),
        )
        items.append(TickerInputs(chain, spot, AS_OF, _history(n), unusual, previous,
                                  date(2026, 3, 12), f"T{n}", 0.01 * n))  # fmt: skip
    items.append(TickerInputs(ChainBatch.empty(), 30.0, AS_OF, _history(9), ticker="EMPTY"))
    items.append(TickerInputs(build_chain(ticker="NOSPOT"), math.nan, AS_OF, _history(8),
                              ticker="NOSPOT"))  # fmt: skip
    return items


def test_a_batch_gives_each_ticker_its_own_features() -> None:
    items = _inputs()
    batch = FeatureBatch(items, rate=0.04)
    for j, item in enumerate(items):
        alone = compute_features(
            item.chain, item.spot, item.as_of, item.history, item.contract_history,
            previous_oi=item.previous_oi, next_earnings=item.next_earnings, ticker=item.ticker,
            rate=0.04, div_yield=item.div_yield,
        )  # fmt: skip
        together = batch.features(j)
        assert together.values == alone.values, item.ticker
        assert together.missing == alone.missing, item.ticker
    values = {item.ticker: batch.features(j).values for j, item in enumerate(items)}
    # T0 lists the expiry of the snapshot's day, closed by then: its line is dropped
    assert [len(values[t]["by_expiry"]) for t in ("T0", "T1")] == [4, 4]
    assert values["T0"]["by_expiry"][0]["expiration"] == "2026-03-06"
    assert values["T2"]["atm_iv"] is not None  # solved from quotes
    assert values["T4"]["gex_by_strike"] != values["T0"]["gex_by_strike"]
    assert values["EMPTY"]["atm_iv"] is None and values["NOSPOT"]["atm_iv"] is None


def test_a_ticker_alone_does_not_depend_on_its_neighbours() -> None:
    items = _inputs()
    first = FeatureBatch(items, rate=0.04).features(3)
    reordered = FeatureBatch([items[3], *items[:3]], rate=0.04).features(0)
    assert first.values == reordered.values


def test_round2_is_the_builtin_round() -> None:
    rng = np.random.default_rng(11)
    values = np.concatenate(
        (
            rng.normal(0, 1e6, 20_000),
            rng.normal(0, 1.0, 20_000),
            np.round(rng.normal(0, 1e4, 20_000), 3) + 0.005,  # halves at the third decimal
            [0.125, 2.675, 1.005, -0.125, -2.675, 0.0, -0.0, 1e17, -3e15, 5e-324],
        )
    )
    got = _round2(values)
    want = [round(v, 2) for v in values.tolist()]
    assert got == want
    assert [math.copysign(1.0, v) for v in got] == [math.copysign(1.0, v) for v in want]
    assert _round2(np.array([math.inf, -math.inf])) == [math.inf, -math.inf]


def test_max_pain_of_chains_end_to_end_is_each_chains_own() -> None:
    rng = np.random.default_rng(5)
    parts, offset = [], 0
    for n_exp in (3, 1, 4):
        strikes = np.round(rng.uniform(20, 400) * np.linspace(0.8, 1.2, 17), 2)
        exp_idx = np.repeat(np.arange(n_exp), 2 * strikes.size)
        strike = np.tile(np.r_[strikes, strikes], n_exp)
        is_call = np.tile(np.repeat([True, False], strikes.size), n_exp)
        oi = rng.lognormal(6, 2, strike.size)  # not whole numbers: the sums' rounding shows
        parts.append((exp_idx, strike, is_call, oi, n_exp, offset))
        offset += n_exp
    alone = [max_pain_by_expiry(e, k, c, oi, n) for e, k, c, oi, n, _ in parts]
    together = max_pain_by_expiry(
        np.concatenate([e + o for e, _, _, _, _, o in parts]),
        np.concatenate([k for _, k, _, _, _, _ in parts]),
        np.concatenate([c for _, _, c, _, _, _ in parts]),
        np.concatenate([oi for _, _, _, oi, _, _ in parts]),
        offset,
        np.repeat(np.arange(len(parts)), [n for *_, n, _ in parts]),
    )
    assert together.tolist() == np.concatenate(alone).tolist()


def test_running_sums_restart_at_each_chain() -> None:
    """A sum carried over from the chain before would swamp a chain of small numbers."""
    chain = np.array([0, 0, 0, 1, 1, 1, 1, 2])
    values = np.array([1e17, 3.0, 5.0, 0.1, 0.2, 0.3, 0.4, 7.0])
    got = _running_sums(chain)(values)
    want = np.concatenate([np.cumsum(values[chain == c]) for c in range(3)])
    assert got.tolist() == want.tolist()
