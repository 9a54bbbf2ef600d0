"""The market-data port: what the collector needs from any source of option chains."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
from numpy.typing import NDArray

from chalicelib.domain.chain import ChainBatch
from chalicelib.domain.models import UnderlyingQuote


class ProviderError(Exception):
    """A provider could not deliver one ticker; the cycle records it and goes on."""


@dataclass(frozen=True)
class ChainResult:
    underlying: UnderlyingQuote
    contracts: ChainBatch


@dataclass(frozen=True)
class DailyHistory:
    """One row per trading day, oldest first. ``atm_iv`` is 30-day constant maturity.

    Fields a provider cannot supply are NaN; ``skew_25d`` is IV(25Δ call) − IV(25Δ put).
    """

    ticker: str
    dates: list[date]
    close: NDArray[np.float64]
    atm_iv: NDArray[np.float64]
    skew_25d: NDArray[np.float64]


class MarketDataProvider(ABC):
    name: str

    @abstractmethod
    def fetch_chain(self, ticker: str, now: datetime) -> ChainResult:
        """The chain as the market shows it at ``now`` (raises ProviderError)."""

    @abstractmethod
    def fetch_history(self, ticker: str, end: date, days: int) -> DailyHistory:
        """Daily history for the ``days`` trading days ending at ``end``."""

    def fetch_chains(
        self, tickers: Sequence[str], now: datetime
    ) -> Iterator[tuple[str, ChainResult | Exception]]:
        """Chains for many tickers, each a result or the exception that ticker raised."""
        for ticker in tickers:
            try:
                yield ticker, self.fetch_chain(ticker, now)
            except Exception as exc:  # one ticker's failure is reported, not raised
                yield ticker, exc

    def fetch_histories(
        self, tickers: Sequence[str], end: date, days: int
    ) -> Iterator[tuple[str, DailyHistory | Exception]]:
        """Histories for many tickers, each a result or the exception that ticker raised."""
        for ticker in tickers:
            try:
                yield ticker, self.fetch_history(ticker, end, days)
            except Exception as exc:  # one ticker's failure is reported, not raised
                yield ticker, exc

    def quote_time(self, now: datetime) -> datetime:
        """The as_of a chain fetched at ``now`` will carry (markets close; clocks don't)."""
        return now

    def earnings_dates(self, ticker: str, start: date, end: date) -> list[date]:
        """Scheduled earnings announcements in [start, end]; none by default."""
        return []
