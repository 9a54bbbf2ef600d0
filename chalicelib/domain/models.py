"""Domain models at the boundaries (pydantic v2).

Units: prices in the underlying's currency; ``implied_volatility`` annualised as a fraction
(0.25 = 25 %); ``theta`` per calendar day; ``vega`` and ``rho`` per 1 vol / rate point (1 %).
Timestamps are timezone-aware UTC.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from chalicelib.config import TICKER_PATTERN


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _finite(value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise ValueError("must be finite")
    return value


Ticker = Annotated[str, Field(pattern=TICKER_PATTERN)]
UtcDatetime = Annotated[datetime, AfterValidator(_utc)]
Finite = Annotated[float, AfterValidator(_finite)]
OptionalFinite = Annotated[float | None, AfterValidator(_finite)]
Right = Literal["C", "P"]


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OptionQuote(Model):
    """One contract in one snapshot. Same rules as ``chain.reject_reasons`` (vectorised)."""

    ticker: Ticker
    as_of: UtcDatetime
    expiration: date
    strike: Finite = Field(gt=0)
    right: Right
    bid: Finite = Field(ge=0)
    ask: Finite = Field(ge=0)
    last: OptionalFinite = Field(default=None, ge=0)
    volume: int = Field(default=0, ge=0)
    open_interest: int | None = Field(default=None, ge=0)
    implied_volatility: OptionalFinite = Field(default=None, ge=0)
    delta: OptionalFinite = None
    gamma: OptionalFinite = None
    theta: OptionalFinite = None
    vega: OptionalFinite = None
    rho: OptionalFinite = None

    @model_validator(mode="after")
    def _consistent(self) -> OptionQuote:
        if self.bid > self.ask:
            raise ValueError("bid_above_ask: bid must not exceed ask")
        if self.expiration < self.as_of.date():
            raise ValueError("expired: expiration is before as_of")
        return self


class UnderlyingQuote(Model):
    """The underlying at snapshot time; ``dividend_yield`` continuous, annualised."""

    ticker: Ticker
    as_of: UtcDatetime
    price: Finite = Field(gt=0)
    bid: OptionalFinite = None
    ask: OptionalFinite = None
    volume: int | None = Field(default=None, ge=0)
    dividend_yield: Finite = 0.0


class ChainSnapshot(Model):
    """Summary of one ticker's chain at one moment (contracts travel as columns)."""

    ticker: Ticker
    as_of: UtcDatetime
    underlying: UnderlyingQuote
    expirations: list[date]
    contracts: int = Field(ge=0)


class FeatureSet(Model):
    """Features of one ticker at one snapshot; a ``None`` value has its reason in ``missing``."""

    ticker: Ticker
    as_of: UtcDatetime
    values: dict[str, Any]
    missing: dict[str, str] = Field(default_factory=dict)


ScanStatus = Literal["running", "completed", "partial", "failed"]


class Scan(Model):
    """One pass of the scheduled work."""

    scan_id: str
    started_at: UtcDatetime
    finished_at: UtcDatetime | None = None
    status: ScanStatus = "running"
    tickers_scanned: int = 0
    chains_collected: int = 0
    alerts_generated: int = 0
    runtime_seconds: float = 0.0
    errors: list[str] = Field(default_factory=list)


class Explanation(Model):
    summary: str
    rationale: str
    key_metrics: dict[str, Any] = Field(default_factory=dict)
    risk_factors: list[str] = Field(default_factory=list)


class Alert(Model):
    """A scored, explained finding of one detector on one ticker."""

    id: str
    scan_id: str
    ticker: Ticker
    detector_name: str
    score: float = Field(ge=0, le=100)
    metrics: dict[str, Any]
    explanation: Explanation
    strategies: list[str]
    created_at: UtcDatetime
