"""Fixtures for the write-side suite: real settings, stores and markets in ``tmp_path``.

The only test doubles are market-data providers, standing in for the external data source: one
that injects malformed rows into the synthetic market's output, one that fails for some tickers.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from chalicelib.config import Settings, load_settings
from chalicelib.domain.chain import CHAIN_COLUMNS, ChainBatch
from chalicelib.domain.models import UnderlyingQuote
from chalicelib.write.providers.base import (
    ChainResult,
    DailyHistory,
    MarketDataProvider,
    ProviderError,
)
from chalicelib.write.providers.synthetic import SyntheticMarket
from chalicelib.write.store import Store

REPO_ROOT = Path(__file__).resolve().parents[2]
AS_OF = "2026-11-27T18:00:00Z"  # the Friday after Thanksgiving, at its 13:00 New York early close
AS_OF_DT = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
SMALL_WATCHLIST = "SPY,AAPL,JPM"

# One malformed row per rule; ``bad_rows`` injects them, and the counts it expects, by reason.
BAD_ROWS: dict[str, dict[str, Any]] = {
    "bad_right": {"right": "X"},
    "non_finite": {"bid": np.nan},
    "non_positive_strike": {"strike": 0.0},
    "negative_price": {"ask": -0.05, "bid": -0.10},
    "negative_size": {"volume": -3},
    "bid_above_ask": {"bid": 2.00, "ask": 1.50},
    "expired": {"expiration": np.datetime64("2026-11-20", "s")},
}


def quote_row(**overrides: Any) -> dict[str, Any]:
    """One valid contract row (store schema), with ``overrides`` applied."""
    row: dict[str, Any] = {
        "ticker": "SPY",
        "as_of": np.datetime64("2026-11-27T18:00:00", "us"),
        "expiration": np.datetime64("2026-12-18", "s"),
        "strike": 550.0,
        "right": "C",
        "bid": 10.10,
        "ask": 10.30,
        "last": 10.20,
        "volume": 12,
        "open_interest": 1500.0,
        "implied_volatility": 0.18,
        "delta": 0.55,
        "gamma": 0.01,
        "theta": -0.2,
        "vega": 0.6,
        "rho": 0.3,
    }
    row.update(overrides)
    return row


def batch_of(rows: list[Mapping[str, Any]]) -> ChainBatch:
    """A ChainBatch from row dicts, typed as the store expects."""
    return ChainBatch(
        {k: np.array([r[k] for r in rows], dtype=CHAIN_COLUMNS[k]) for k in CHAIN_COLUMNS}
    )


def underlying(ticker: str = "SPY", price: float = 552.0, **extra: Any) -> UnderlyingQuote:
    return UnderlyingQuote(ticker=ticker, as_of=AS_OF_DT, price=price, **extra)


def settings_for(data_dir: Path, **values: str) -> Settings:
    """Settings from an explicit OCD_* mapping (never the process environment)."""
    env = {
        "OCD_DATA_DIR": str(data_dir),
        "OCD_WATCHLIST": SMALL_WATCHLIST,
        "OCD_BACKFILL_DAYS": "20",
    }
    env.update({f"OCD_{k.upper()}": v for k, v in values.items()})
    return load_settings(env)


@pytest.fixture(scope="session")
def market() -> SyntheticMarket:
    """One market for the session: its simulated paths are cached, and it is deterministic."""
    return SyntheticMarket(seed=7)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return settings_for(tmp_path / "data")


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    with Store(settings.database) as opened:
        yield opened


@pytest.fixture
def ocd_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """OCD_* variables for in-process handlers and subprocesses: a tmp data dir, 3 tickers."""
    for name in [k for k in os.environ if k.startswith("OCD_")]:
        monkeypatch.delenv(name)
    values = {
        "OCD_DATA_DIR": str(tmp_path / "data"),
        "OCD_WATCHLIST": SMALL_WATCHLIST,
        "OCD_BACKFILL_DAYS": "20",
        "OCD_LOG_LEVEL": "WARNING",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@pytest.fixture
def subprocess_env(ocd_env: dict[str, str]) -> dict[str, str]:
    """The environment for a child Python: ours plus the OCD_* variables and the repo on path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCD_")}
    env.update(ocd_env)
    env["PYTHONPATH"] = str(REPO_ROOT)
    return env


@pytest.fixture
def python() -> str:
    return sys.executable


class BadRowsProvider(MarketDataProvider):
    """The synthetic market with one malformed row per rule appended to every chain."""

    name = "bad-rows"

    def __init__(self, inner: SyntheticMarket) -> None:
        self.inner = inner

    def fetch_chain(self, ticker: str, now: datetime) -> ChainResult:
        result = self.inner.fetch_chain(ticker, now)
        good = result.contracts
        template = {k: good[k][0] for k in CHAIN_COLUMNS}
        bad = batch_of([{**template, **override} for override in BAD_ROWS.values()])
        return ChainResult(result.underlying, ChainBatch.concat([good, bad]))

    def fetch_history(self, ticker: str, end: date, days: int) -> DailyHistory:
        return self.inner.fetch_history(ticker, end, days)


class FailingProvider(MarketDataProvider):
    """The synthetic market, except that ``failing`` tickers raise ProviderError."""

    name = "failing"

    def __init__(self, inner: SyntheticMarket, failing: set[str]) -> None:
        self.inner = inner
        self.failing = failing

    def fetch_chain(self, ticker: str, now: datetime) -> ChainResult:
        if ticker in self.failing:
            raise ProviderError(f"upstream returned 503 for {ticker}")
        return self.inner.fetch_chain(ticker, now)

    def fetch_history(self, ticker: str, end: date, days: int) -> DailyHistory:
        return self.inner.fetch_history(ticker, end, days)


@pytest.fixture(scope="session")
def make_row() -> Callable[..., dict[str, Any]]:
    return quote_row


@pytest.fixture(scope="session")
def make_batch() -> Callable[[list[Mapping[str, Any]]], ChainBatch]:
    return batch_of


@pytest.fixture(scope="session")
def make_underlying() -> Callable[..., UnderlyingQuote]:
    return underlying


@pytest.fixture(scope="session")
def bad_rows() -> dict[str, dict[str, Any]]:
    """Overrides that break one rule each, keyed by the reason they must be counted under."""
    return BAD_ROWS


@pytest.fixture
def bad_rows_provider(market: SyntheticMarket) -> BadRowsProvider:
    return BadRowsProvider(market)


@pytest.fixture
def failing_provider(market: SyntheticMarket) -> Callable[[set[str]], FailingProvider]:
    return lambda failing: FailingProvider(market, failing)
