"""The market-data port: what the collector needs from any source of option chains."""

from __future__ import annotations

from abc import ABC, abstractmethod
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

    def earnings_dates(self, ticker: str, start: date, end: date) -> list[date]:
        """Scheduled earnings announcements in [start, end]; none by default."""
        return []
