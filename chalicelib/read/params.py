"""Query and path parameters of every route, validated at the boundary (pydantic).

A bad value becomes HTTP 400 naming the field; nothing a client sends reaches a handler unchecked.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from chalicelib.config import TICKER_PATTERN
from chalicelib.errors import BadRequest

_TICKER = re.compile(TICKER_PATTERN)
_DETECTOR = r"^[a-z][a-z0-9_]{0,63}$"


def _ticker(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    upper = value.strip().upper()
    if not _TICKER.match(upper):
        raise ValueError(f"must match {TICKER_PATTERN} (e.g. SPY, BRK.B)")
    return upper


def _blank_is_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


Ticker = Annotated[str, BeforeValidator(_ticker)]
OptionalTicker = Annotated[Ticker | None, BeforeValidator(_blank_is_none)]


class Params(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class NoParams(Params):
    pass


class ScansParams(Params):
    limit: int = Field(10, ge=1, le=100, description="scans to return, newest first")


class AlertsLatestParams(Params):
    limit: int = Field(50, ge=1, le=500, description="alerts to return, newest first")
    min_score: float = Field(0.0, ge=0, le=100, description="only alerts scoring at least this")


class AlertsSummaryParams(AlertsLatestParams):
    limit: int = Field(20, ge=1, le=500, description="alerts to return, newest first")


class AlertsQueryParams(Params):
    ticker: OptionalTicker = Field(None, description="only this ticker")
    detector: Annotated[str | None, BeforeValidator(_blank_is_none)] = Field(
        None, pattern=_DETECTOR, description="only this detector, e.g. rich_premium"
    )
    min_score: float = Field(0.0, ge=0, le=100, description="only alerts scoring at least this")
    limit: int = Field(100, ge=1, le=500, description="alerts to return, newest first")


class TickerParams(Params):
    ticker: Ticker = Field(description="underlying symbol, e.g. SPY")


class TickerAlertsParams(TickerParams):
    limit: int = Field(100, ge=1, le=500, description="alerts to return, newest first")


class SnapshotParams(TickerParams):
    expiration: Annotated[date | None, BeforeValidator(_blank_is_none)] = Field(
        None, description="YYYY-MM-DD; default: the nearest expiration"
    )


class HistoryParams(TickerParams):
    days: int = Field(30, ge=1, le=365, description="calendar days of history")


def parse(model: type[Params], values: dict[str, Any]) -> Params:
    """Validate ``values`` into ``model``; the first problem becomes a BadRequest naming it."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        details = [
            {"field": ".".join(str(p) for p in err["loc"]) or "query", "message": err["msg"]}
            for err in exc.errors(include_url=False)
        ]
        first = details[0]
        message = f"invalid {first['field']}: {first['message']}"
        raise BadRequest(first["field"], message, details) from None
