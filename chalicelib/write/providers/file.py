"""Replays imported files: each collect serves the next imported quote time not yet collected.

``ocd.py import`` stages chains (``import_snapshots`` and ``import_quotes``). With
``OCD_PROVIDER=file`` the scheduler's usual cycle walks them in time order: ``quote_time`` is the
first staged as_of after the latest one already collected (never after ``now``), the scheduler
skips the tickers stored there as always, and ``fetch_chains`` serves that as_of's chains from
staging, completed with the pricing core (missing IV and greeks, see :mod:`completion`). The
usual analysis then computes features, IV rank and alerts over real history, a day at a time.
Once every staged day is collected a cycle finds nothing new: it completes, collecting nothing.
A watchlist ticker with no chain at the served quote time is simply not served (no new data).

The replay only moves forward, so features are always computed on the newest snapshot. A day
staged after the replay has passed it (older files imported later, or a ticker added to the
watchlist later) is not replayed; ``fetch_history`` offers it to the backfill instead: its close
and its 30-day ATM IV and 25-delta skew, computed from the staged chain by the same feature code
as live snapshots, so IV rank and percentile see those days too.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime

import numpy as np

from chalicelib.analytics.features import DailyInputs, compute_features
from chalicelib.domain.chain import ChainBatch, chain_columns_from_masked
from chalicelib.domain.models import UnderlyingQuote
from chalicelib.logs import log_event
from chalicelib.write.providers.base import (
    ChainResult,
    DailyHistory,
    MarketDataProvider,
    ProviderError,
)
from chalicelib.write.providers.completion import complete
from chalicelib.write.store import Store

# The replay's position is the newest staged quote time already collected; next is the one after.
CURSOR = """
    WITH staged AS (
        SELECT ticker, as_of FROM import_snapshots
        WHERE ticker IN (SELECT unnest(?::VARCHAR[])) AND as_of <= ?
    ),
    done AS (
        SELECT max(s.as_of) AS last_as_of
        FROM staged s SEMI JOIN chain_snapshots c ON c.ticker = s.ticker AND c.as_of = s.as_of
    )
    SELECT (SELECT min(s.as_of) FROM staged s, done d
            WHERE d.last_as_of IS NULL OR s.as_of > d.last_as_of),
           (SELECT last_as_of FROM done),
           (SELECT count(*) FROM import_snapshots)
"""
SNAPSHOTS_AT = """
    SELECT ticker, underlying_price, dividend_yield FROM import_snapshots
    WHERE as_of = ? AND ticker IN (SELECT unnest(?::VARCHAR[]))
    ORDER BY ticker
"""
CHAINS_AT = """
    SELECT ticker, as_of, expiration, strike, "right", bid, ask, last, volume,
           open_interest::DOUBLE AS open_interest, implied_volatility, delta, gamma, theta, vega,
           rho
    FROM import_quotes
    WHERE as_of = ? AND ticker IN (SELECT unnest(?::VARCHAR[]))
    ORDER BY ticker, expiration, strike, "right"
"""
# Days the replay has passed without collecting (and the history does not hold yet).
PASSED_DAYS = """
    WITH position AS (
        SELECT max(s.as_of) AS last_as_of FROM import_snapshots s
        SEMI JOIN chain_snapshots c ON c.ticker = s.ticker AND c.as_of = s.as_of
        WHERE s.ticker IN (SELECT unnest(?::VARCHAR[]))
    )
    SELECT s.as_of, s.underlying_price, s.dividend_yield
    FROM import_snapshots s, position p
    WHERE s.ticker = ? AND s.as_of < p.last_as_of AND CAST(s.as_of AS DATE) <= ?
      AND NOT EXISTS (SELECT 1 FROM chain_snapshots c
                      WHERE c.ticker = s.ticker AND CAST(c.as_of AS DATE) = CAST(s.as_of AS DATE))
      AND NOT EXISTS (SELECT 1 FROM daily_history h
                      WHERE h.ticker = s.ticker AND h.day = CAST(s.as_of AS DATE))
    QUALIFY row_number() OVER (PARTITION BY CAST(s.as_of AS DATE) ORDER BY s.as_of DESC) = 1
    ORDER BY s.as_of DESC
    LIMIT ?
"""


class FileProvider(MarketDataProvider):
    """Serves staged imports through the store the scheduler already has open."""

    name = "file"

    def __init__(self, store: Store, watchlist: Sequence[str], rate: float = 0.045) -> None:
        self.store = store
        self.watchlist = list(watchlist)
        self.rate = rate

    def quote_time(self, now: datetime) -> datetime:
        following, position, _ = self._cursor(now)
        return following or position or now

    def _cursor(self, now: datetime) -> tuple[datetime | None, datetime | None, int]:
        following, position, staged = self.store.rows(CURSOR, [self.watchlist, _naive(now)])[0]
        return _aware(following), _aware(position), int(staged)

    def fetch_chain(self, ticker: str, now: datetime) -> ChainResult:
        for _, result in self.fetch_chains([ticker], now):
            if isinstance(result, Exception):
                raise result
            return result
        raise ProviderError(f"no imported chain for {ticker} at {self.quote_time(now):%Y-%m-%d}")

    def fetch_chains(
        self, tickers: Sequence[str], now: datetime
    ) -> Iterator[tuple[str, ChainResult | Exception]]:
        following, position, staged = self._cursor(now)
        if not staged:
            error = ProviderError("nothing imported: run `python scripts/ocd.py import FILE…`")
            for ticker in tickers:
                yield ticker, error
            return
        as_of = following or position
        if as_of is None:  # everything staged lies after ``now``
            return
        yield from self._serve(list(tickers), as_of)

    def _serve(
        self, tickers: list[str], as_of: datetime
    ) -> Iterator[tuple[str, ChainResult | Exception]]:
        at = _naive(as_of)
        snaps = {
            str(t): (float(price), float(q))
            for t, price, q in self.store.rows(SNAPSHOTS_AT, [at, tickers])
        }
        if not snaps:
            return
        raw = self.store.columns(CHAINS_AT, [at, sorted(snaps)])
        batch = ChainBatch(chain_columns_from_masked(raw))
        spot = np.array([snaps[str(t)][0] for t in batch["ticker"]], dtype=np.float64)
        q = np.array([snaps[str(t)][1] for t in batch["ticker"]], dtype=np.float64)
        batch, computed = complete(batch, spot, q, self.rate)
        log_event(
            "replay",
            as_of=as_of.isoformat(),
            tickers=len(snaps),
            rows=len(batch),
            computed=dict(computed),
        )
        parts = _split(batch)
        for ticker in tickers:
            if ticker not in snaps:
                continue
            price, div = snaps[ticker]
            underlying = UnderlyingQuote(
                ticker=ticker, as_of=as_of, price=price, dividend_yield=div
            )
            yield ticker, ChainResult(underlying, parts.get(ticker, ChainBatch.empty()))

    def fetch_history(self, ticker: str, end: date, days: int) -> DailyHistory:
        """Staged days the replay passed without collecting: closes, ATM IV and skew."""
        rows = self.store.rows(PASSED_DAYS, [self.watchlist, ticker, end, days])[::-1]
        dates: list[date] = []
        close, atm_iv, skew = [], [], []
        for as_of, price, q in rows:
            stamp = as_of.replace(tzinfo=UTC)
            served = dict(self._serve([ticker], stamp)).get(ticker)
            chain = served.contracts if isinstance(served, ChainResult) else ChainBatch.empty()
            values = compute_features(
                chain,
                float(price),
                stamp,
                DailyInputs.empty(),
                ticker=ticker,
                rate=self.rate,
                div_yield=float(q),
            ).values
            dates.append(stamp.date())
            close.append(float(price))
            atm_iv.append(_number(values.get("atm_iv")))
            skew.append(_number(values.get("skew_25d")))
        return DailyHistory(ticker, dates, np.array(close), np.array(atm_iv), np.array(skew))


def _split(batch: ChainBatch) -> dict[str, ChainBatch]:
    """A batch sorted by ticker → {ticker: its rows} (views, no copies)."""
    tickers = batch["ticker"]
    if len(tickers) == 0:
        return {}
    bounds = np.r_[0, np.flatnonzero(tickers[1:] != tickers[:-1]) + 1, len(tickers)]
    return {
        str(tickers[a]): ChainBatch({k: v[a:b] for k, v in batch.columns.items()})
        for a, b in itertools.pairwise(bounds.tolist())
    }


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else np.nan


def _naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None else None
