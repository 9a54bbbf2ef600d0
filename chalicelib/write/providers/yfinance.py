"""Live option chains from Yahoo Finance, through the optional ``yfinance`` package.

``pip install -r requirements-live.txt`` adds it; this module imports without it (yfinance is
imported on first use, and its absence is a ProviderError, recorded like any other failure).
Every request goes through a ``Guard``: at least ``MIN_INTERVAL`` seconds apart, and after
``FAILURES`` consecutive failures a circuit breaker opens for ``COOLDOWN`` seconds. While it is
open the cycle fetches nothing more and records no new data, instead of failing ticker after
ticker against a source that is down.

Mapping of yfinance's calls/puts tables (one pair per expiration, columns ``contractSymbol,
lastTradeDate, strike, lastPrice, bid, ask, change, percentChange, volume, openInterest,
impliedVolatility, inTheMoney, contractSize, currency``) to our schema:

- ``strike``, ``bid``, ``ask`` as they are; the right from the table (calls/puts) and the
  expiration from the request;
- ``lastPrice`` → ``last`` (0 means no trade: missing); ``volume`` (NaN when none) → 0;
  ``openInterest`` → ``open_interest`` (NaN stays missing, never 0);
- ``impliedVolatility`` (a fraction) when it is at least ``MIN_IV``: Yahoo publishes values like
  0.00001 for series without a market, which are placeholders, not volatilities. The greeks are
  computed with the pricing core at that IV, or at the IV solved from the mid where Yahoo's is
  missing (:mod:`completion`); dividend yield 0;
- ``contractSymbol``, ``lastTradeDate``, ``change``, ``percentChange``, ``inTheMoney``,
  ``contractSize``, ``currency`` are not kept.

The quote time is the market clock's (the last close outside regular hours), as for the
synthetic market, so a schedule running overnight stores each session once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

import numpy as np

from chalicelib.domain import calendar as cal
from chalicelib.domain.chain import CHAIN_COLUMNS, ChainBatch
from chalicelib.domain.models import UnderlyingQuote
from chalicelib.logs import log_event
from chalicelib.write.providers.base import (
    ChainResult,
    DailyHistory,
    MarketDataProvider,
    ProviderError,
)
from chalicelib.write.providers.completion import complete
from chalicelib.write.providers.resilience import CircuitBreaker, CircuitOpen, Guard, RateLimiter

MIN_IV = 0.01
MIN_INTERVAL = 0.4  # seconds between requests
FAILURES = 3  # consecutive failures that open the breaker
COOLDOWN = 300.0  # seconds the breaker stays open
MAX_EXPIRATIONS = 8  # nearest expirations fetched per ticker (one request each)


class YahooSource(Protocol):
    """The requests the adapter makes; ``YFinanceSource`` makes them with yfinance."""

    def expirations(self, symbol: str) -> Sequence[str]: ...

    def chain(self, symbol: str, expiration: str) -> tuple[Any, Any, float | None]: ...

    def closes(self, symbol: str, start: date, end: date) -> Sequence[tuple[date, float]]: ...

    def earnings(self, symbol: str) -> Sequence[date]: ...


class YFinanceSource:
    """yfinance, imported on first use (network calls; not exercised by the test suite)."""

    def __init__(self) -> None:
        self._yf: Any = None

    def _ticker(self, symbol: str) -> Any:
        if self._yf is None:
            try:
                import yfinance
            except ImportError as exc:
                raise ProviderError(
                    "OCD_PROVIDER=yfinance needs the yfinance package: "
                    "pip install -r requirements-live.txt"
                ) from exc
            self._yf = yfinance
        return self._yf.Ticker(symbol)

    def expirations(self, symbol: str) -> Sequence[str]:
        return list(self._ticker(symbol).options)

    def chain(self, symbol: str, expiration: str) -> tuple[Any, Any, float | None]:
        ticker = self._ticker(symbol)
        tables = ticker.option_chain(expiration)
        underlying = getattr(tables, "underlying", None) or {}
        price = underlying.get("regularMarketPrice")
        if price is None:
            price = ticker.fast_info["lastPrice"]
        return tables.calls, tables.puts, price

    def closes(self, symbol: str, start: date, end: date) -> Sequence[tuple[date, float]]:
        frame = self._ticker(symbol).history(
            start=start.isoformat(), end=(end + timedelta(days=1)).isoformat(), interval="1d"
        )
        return [(ts.date(), float(close)) for ts, close in frame["Close"].items()]

    def earnings(self, symbol: str) -> Sequence[date]:
        frame = self._ticker(symbol).get_earnings_dates(limit=12)
        return [] if frame is None else [ts.date() for ts in frame.index]


def chain_from_tables(
    ticker: str, as_of: datetime, expiration: date, calls: Any, puts: Any
) -> ChainBatch:
    """One expiration's calls and puts tables (yfinance-shaped) as a ChainBatch, IV or NaN.

    A table is anything with ``to_dict("records")`` (a DataFrame) or an iterable of dicts.
    """
    rows = [(r, "C") for r in _records(calls)] + [(r, "P") for r in _records(puts)]
    n = len(rows)

    def floats(key: str) -> np.ndarray:
        return np.array([_number(r.get(key)) for r, _ in rows], dtype=np.float64)

    iv = floats("impliedVolatility")
    last = floats("lastPrice")
    volume = floats("volume")
    columns = {
        "ticker": np.full(n, ticker, dtype=object),
        "as_of": np.full(n, np.datetime64(as_of.astimezone(UTC).replace(tzinfo=None), "us")),
        "expiration": np.full(n, np.datetime64(expiration, "s")),
        "strike": floats("strike"),
        "right": np.array([right for _, right in rows], dtype=object),
        "bid": floats("bid"),
        "ask": floats("ask"),
        "last": np.where(last > 0, last, np.nan),
        "volume": np.where(np.isfinite(volume), np.round(volume), 0).astype(np.int64),
        "open_interest": floats("openInterest"),
        "implied_volatility": np.where(iv >= MIN_IV, iv, np.nan),
        **{g: np.full(n, np.nan) for g in ("delta", "gamma", "theta", "vega", "rho")},
    }
    return ChainBatch({k: np.asarray(columns[k], dtype=t) for k, t in CHAIN_COLUMNS.items()})


class YFinanceProvider(MarketDataProvider):
    name = "yfinance"

    def __init__(
        self,
        *,
        rate: float,
        source: YahooSource | None = None,
        guard: Guard | None = None,
        max_expirations: int = MAX_EXPIRATIONS,
    ) -> None:
        self.rate = rate
        self.source: YahooSource = source or YFinanceSource()
        self.guard = guard or Guard(
            "yfinance", RateLimiter(MIN_INTERVAL), CircuitBreaker(FAILURES, COOLDOWN)
        )
        self.max_expirations = max_expirations

    def quote_time(self, now: datetime) -> datetime:
        return cal.market_clock(now)[2]

    def fetch_chain(self, ticker: str, now: datetime) -> ChainResult:
        as_of = self.quote_time(now)
        symbol = _symbol(ticker)
        listed = self.guard.call(self.source.expirations, symbol)
        expirations = [
            d for d in sorted(date.fromisoformat(str(e)) for e in listed) if d >= as_of.date()
        ][: self.max_expirations]
        if not expirations:
            raise ProviderError(f"{ticker}: Yahoo lists no option expirations")
        parts, spot = [], math.nan
        for expiry in expirations:
            calls, puts, price = self.guard.call(self.source.chain, symbol, expiry.isoformat())
            if not math.isfinite(spot):
                spot = _number(price)
            parts.append(chain_from_tables(ticker, as_of, expiry, calls, puts))
        if not spot > 0:
            raise ProviderError(f"{ticker}: Yahoo gave no underlying price")
        batch = ChainBatch.concat(parts)
        n = len(batch)
        batch, _ = complete(batch, np.full(n, spot), np.zeros(n), self.rate)
        return ChainResult(UnderlyingQuote(ticker=ticker, as_of=as_of, price=spot), batch)

    def fetch_chains(
        self, tickers: Sequence[str], now: datetime
    ) -> Iterator[tuple[str, ChainResult | Exception]]:
        """Each ticker's chain or error; once the breaker is open, nothing more (no new data)."""
        for i, ticker in enumerate(tickers):
            try:
                yield ticker, self.fetch_chain(ticker, now)
            except CircuitOpen as exc:
                log_event("provider_unavailable", provider=self.name, error=str(exc),
                          retry_in_seconds=round(exc.retry_in, 1),
                          tickers_skipped=len(tickers) - i)  # fmt: skip
                return
            except Exception as exc:  # one ticker's failure is reported, not raised
                yield ticker, exc

    def fetch_history(self, ticker: str, end: date, days: int) -> DailyHistory:
        """Daily closes (Yahoo has no history of implied volatility: NaN)."""
        start = end - timedelta(days=days * 7 // 5 + 10)
        rows = [r for r in self.guard.call(self.source.closes, _symbol(ticker), start, end)
                if r[0] <= end][-days:]  # fmt: skip
        nan = np.full(len(rows), np.nan)
        close = np.array([c for _, c in rows], dtype=np.float64)
        return DailyHistory(ticker, [d for d, _ in rows], close, nan, nan.copy())

    def earnings_dates(self, ticker: str, start: date, end: date) -> list[date]:
        try:
            dates = self.guard.call(self.source.earnings, _symbol(ticker))
        except CircuitOpen:
            return []
        return sorted({d for d in dates if start <= d <= end})


def _records(table: Any) -> Iterable[dict[str, Any]]:
    if table is None:
        return []
    if hasattr(table, "to_dict"):
        return table.to_dict("records")
    return list(table)


def _number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number if math.isfinite(number) else math.nan


def _symbol(ticker: str) -> str:
    """Yahoo writes share classes with a dash: BRK.B → BRK-B."""
    return ticker.replace(".", "-")
