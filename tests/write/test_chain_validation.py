"""Row validation: ``reject_reasons`` (vectorised) and the ``OptionQuote`` model agree, and a
cycle whose provider sends malformed rows drops and counts them instead of failing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from chalicelib.config import Settings
from chalicelib.domain.chain import (
    CHAIN_COLUMNS,
    OPTIONAL_FLOATS,
    REJECT_REASONS,
    ChainBatch,
    reject_reasons,
)
from chalicelib.domain.models import OptionQuote
from chalicelib.write.collector import ChainBuffer
from chalicelib.write.providers.base import MarketDataProvider
from chalicelib.write.providers.synthetic import SyntheticMarket
from chalicelib.write.scheduler import Scheduler
from chalicelib.write.store import Store

Row = dict[str, Any]
AS_OF = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)


def model_accepts(row: Mapping[str, Any]) -> bool:
    """Whether OptionQuote accepts a store-schema row (NaN optional fields mean "missing")."""
    values: dict[str, Any] = {}
    for name in CHAIN_COLUMNS:
        value = row[name]
        if name in ("as_of", "expiration"):
            seconds = np.datetime64(value, "us").astype("int64") / 1e6
            value = datetime.fromtimestamp(seconds, UTC)
            value = value.date() if name == "expiration" else value
        elif name in OPTIONAL_FLOATS and np.isnan(value):
            value = None
        elif isinstance(value, np.generic):
            value = value.item()
        values[name] = value
    try:
        OptionQuote(**values)
    except ValidationError:
        return False
    return True


def test_each_rule_is_counted_under_its_reason(
    make_row: Callable[..., Row], make_batch: Callable, bad_rows: dict[str, Row]
):
    rows = [make_row(strike=500.0 + i) for i in range(5)]
    rows += [make_row(**override) for override in bad_rows.values()]
    keep, counts = reject_reasons(make_batch(rows))
    assert keep.tolist() == [True] * 5 + [False] * len(bad_rows)
    assert counts == Counter({reason: 1 for reason in bad_rows})
    assert set(bad_rows) == set(REJECT_REASONS)


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"strike": np.inf}, "non_finite"),
        ({"ask": np.nan}, "non_finite"),
        ({"delta": -np.inf}, "non_finite"),
        ({"open_interest": np.inf}, "non_finite"),
        ({"strike": -5.0}, "non_positive_strike"),
        ({"last": -0.01}, "negative_price"),
        ({"implied_volatility": -0.1}, "negative_price"),
        ({"open_interest": -1.0}, "negative_size"),
        ({"expiration": np.datetime64("2026-11-26T00:00:00", "s")}, "expired"),
    ],
)
def test_more_ways_to_break_a_rule(
    make_row: Callable[..., Row], make_batch: Callable, override: Row, reason: str
):
    row = make_row(**override)
    keep, counts = reject_reasons(make_batch([row]))
    assert not keep[0]
    assert counts == Counter({reason: 1})
    assert not model_accepts(row)


def test_missing_optional_fields_and_same_day_expiry_are_accepted(
    make_row: Callable[..., Row], make_batch: Callable
):
    rows = [
        make_row(**{name: np.nan for name in OPTIONAL_FLOATS}),
        make_row(expiration=np.datetime64("2026-11-27", "s")),  # expires at today's close
        make_row(bid=0.0, ask=0.0, volume=0),
        make_row(right="P", bid=1.0, ask=1.0),
    ]
    keep, counts = reject_reasons(make_batch(rows))
    assert keep.all()
    assert counts == Counter()
    assert all(model_accepts(r) for r in rows)


@pytest.mark.parametrize(("first", "second"), list(pairwise(REJECT_REASONS)))
def test_first_failing_rule_wins(
    make_row: Callable[..., Row],
    make_batch: Callable,
    bad_rows: dict[str, Row],
    first: str,
    second: str,
):
    row = make_row(**{**bad_rows[second], **bad_rows[first]})
    # the row really breaks both rules: each override alone is rejected for its own reason
    assert reject_reasons(make_batch([make_row(**bad_rows[second])]))[1] == Counter({second: 1})
    keep, counts = reject_reasons(make_batch([row]))
    assert not keep[0]
    assert counts == Counter({first: 1})


def test_the_model_rejects_the_same_bad_rows(
    make_row: Callable[..., Row], make_batch: Callable, bad_rows: dict[str, Row]
):
    rows = [make_row(), make_row(right="P", strike=540.0)]
    rows += [make_row(**override) for override in bad_rows.values()]
    keep, _ = reject_reasons(make_batch(rows))
    assert [model_accepts(r) for r in rows] == keep.tolist()


def test_the_model_accepts_every_synthetic_row(market: SyntheticMarket):
    batch = market.fetch_chain("JPM", AS_OF).contracts
    keep, counts = reject_reasons(batch)
    assert keep.all() and not counts
    quotes = batch.to_quotes()  # raises if the model disagrees with any row
    assert len(quotes) == len(batch)
    back = ChainBatch.from_quotes(quotes)
    for name in CHAIN_COLUMNS:
        if CHAIN_COLUMNS[name] == "float64":
            np.testing.assert_array_equal(back[name], batch[name])
        else:
            assert (back[name] == batch[name]).all(), name


# Values that break a rule, or sit on its edge, for each field a provider fills in.
_EDGES: dict[str, list[Any]] = {
    "expiration": [np.datetime64(d, "s") for d in ("2026-11-20", "2026-11-26", "2026-11-27")],
    "strike": [0.0, -1.0, 0.01, np.nan, np.inf],
    "right": ["X", "c", "", "CALL"],
    "bid": [0.0, -0.01, 10.30, 10.35, np.nan, -np.inf],
    "ask": [0.0, -0.01, 10.10, 10.05, np.nan, np.inf],
    "volume": [0, -1],
    **{name: [np.nan, np.inf, -np.inf, 0.0, -0.5] for name in OPTIONAL_FLOATS},
}


@st.composite
def option_rows(draw: st.DrawFn) -> Row:
    """A valid row with up to three fields replaced by edge values."""
    row = quote_like()
    fields = draw(st.lists(st.sampled_from(sorted(_EDGES)), max_size=3, unique=True))
    for name in fields:
        row[name] = draw(st.sampled_from(_EDGES[name]))
    return row


def quote_like() -> Row:
    return {
        "ticker": "SPY",
        "as_of": np.datetime64("2026-11-27T18:00:00", "us"),
        "expiration": np.datetime64("2026-12-18", "s"),
        "strike": 550.0,
        "right": "P",
        "bid": 10.10,
        "ask": 10.30,
        "last": 10.20,
        "volume": 12,
        "open_interest": 1500.0,
        "implied_volatility": 0.18,
        "delta": -0.45,
        "gamma": 0.01,
        "theta": -0.2,
        "vega": 0.6,
        "rho": -0.3,
    }


@settings(max_examples=100, deadline=None)
@given(rows=st.lists(option_rows(), min_size=1, max_size=6))
def test_vectorised_rules_agree_with_the_model(rows: list[Row], make_batch: Callable):
    keep, counts = reject_reasons(make_batch(rows))
    assert keep.tolist() == [model_accepts(r) for r in rows]
    assert sum(counts.values()) == int((~keep).sum())


def test_buffer_drops_and_counts_bad_rows(
    make_row: Callable[..., Row],
    make_batch: Callable,
    make_underlying: Callable,
    bad_rows: dict[str, Row],
):
    buffer = ChainBuffer(flush_rows=10)
    good = [make_row(strike=500.0 + i) for i in range(4)]
    accepted = buffer.add(
        make_underlying(), make_batch(good + [make_row(**o) for o in bad_rows.values()])
    )
    assert accepted == 4
    assert buffer.rows == 4 and not buffer.full
    assert buffer.rejected == Counter({reason: 1 for reason in bad_rows})
    buffer.add(make_underlying("QQQ", 500.0), make_batch([make_row(ticker="QQQ")] * 6))
    assert buffer.full
    batch, underlyings = buffer.drain()
    assert len(batch) == 10
    assert [u.ticker for u in underlyings] == ["SPY", "QQQ"]
    assert np.isfinite(batch["bid"]).all() and set(batch["right"]) == {"C"}
    assert buffer.rows == 0 and not buffer.batches and not buffer.underlyings
    assert buffer.rejected == Counter({reason: 1 for reason in bad_rows})  # kept for the log


def test_a_cycle_with_bad_provider_rows_completes(
    settings: Settings,
    store: Store,
    bad_rows_provider: MarketDataProvider,
    market: SyntheticMarket,
    bad_rows: dict[str, Row],
):
    summary = Scheduler(settings, store, provider=bad_rows_provider).collect(AS_OF)
    tickers = len(settings.watchlist)
    assert summary["status"] == "completed"
    assert summary["errors"] == []
    assert summary["chains_collected"] == tickers
    assert summary["rows_rejected"] == {reason: tickers for reason in bad_rows}
    good = sum(len(market.fetch_chain(t, AS_OF).contracts) for t in settings.watchlist)
    assert summary["rows_collected"] == good + tickers * len(bad_rows)
    assert summary["rows_flushed"] == good
    assert store.count("option_quotes") == good
    assert store.count("option_quotes", "WHERE bid > ask OR \"right\" NOT IN ('C', 'P')") == 0
    assert store.rows("SELECT status, errors FROM scans") == [("completed", [])]
