"""Query and path parameters of every route, validated at the boundary (pydantic).

A bad value becomes HTTP 400 naming the field; nothing a client sends reaches a handler unchecked.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, WithJsonSchema

from chalicelib.config import TICKER_PATTERN
from chalicelib.errors import BadRequest

_TICKER = re.compile(TICKER_PATTERN)
# What a client may send: any case (tickers are upper-cased), ASCII only.
TICKER_INPUT_PATTERN = r"^[A-Za-z][A-Za-z0-9.-]{0,9}$"
_DETECTOR = r"^[a-z][a-z0-9_]{0,63}$"
_INTEGER = re.compile(r"[+-]?[0-9]{1,9}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _ticker(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    text = value.strip()
    # ASCII first: str.upper() maps some other letters to ASCII ones ('ß' -> 'SS').
    upper = text.upper() if text.isascii() else ""
    if not _TICKER.match(upper):
        raise ValueError(f"must match {TICKER_PATTERN} (e.g. SPY, BRK.B; any case)")
    return upper


def _integer(value: Any) -> Any:
    """Decimal digits only: '1.0', '1e2', '1_000' and '0x10' are not integers here."""
    if isinstance(value, str):
        if not _INTEGER.fullmatch(value.strip()):
            raise ValueError("must be a whole number written in decimal digits")
        return int(value)
    return value


def _iso_date(value: Any) -> Any:
    """YYYY-MM-DD only (pydantic alone would also take timestamps and datetimes)."""
    if isinstance(value, str) and not _DATE.fullmatch(value.strip()):
        raise ValueError("must be a date written YYYY-MM-DD")
    return value


def _blank_is_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


Ticker = Annotated[
    str,
    BeforeValidator(_ticker),
    WithJsonSchema({"type": "string", "pattern": TICKER_INPUT_PATTERN}),
]
OptionalTicker = Annotated[Ticker | None, BeforeValidator(_blank_is_none)]
Integer = Annotated[int, BeforeValidator(_integer)]
Score = Annotated[float, Field(allow_inf_nan=False)]
IsoDate = Annotated[date, BeforeValidator(_iso_date)]


class Params(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class NoParams(Params):
    pass


class ScansParams(Params):
    limit: Integer = Field(10, ge=1, le=100, description="scans to return, newest first")


class AlertsLatestParams(Params):
    limit: Integer = Field(50, ge=1, le=500, description="alerts to return, newest first")
    min_score: Score = Field(0.0, ge=0, le=100, description="only alerts scoring at least this")


class AlertsSummaryParams(AlertsLatestParams):
    limit: Integer = Field(20, ge=1, le=500, description="alerts to return, newest first")


class AlertsQueryParams(Params):
    ticker: OptionalTicker = Field(None, description="only this ticker")
    detector: Annotated[str | None, BeforeValidator(_blank_is_none)] = Field(
        None, pattern=_DETECTOR, description="only this detector, e.g. rich_premium"
    )
    min_score: Score = Field(0.0, ge=0, le=100, description="only alerts scoring at least this")
    limit: Integer = Field(100, ge=1, le=500, description="alerts to return, newest first")


class TickerParams(Params):
    ticker: Ticker = Field(description="underlying symbol, e.g. SPY")


class TickerAlertsParams(TickerParams):
    limit: Integer = Field(100, ge=1, le=500, description="alerts to return, newest first")


class SnapshotParams(TickerParams):
    expiration: Annotated[IsoDate | None, BeforeValidator(_blank_is_none)] = Field(
        None, description="YYYY-MM-DD; default: the nearest expiration"
    )


class HistoryParams(TickerParams):
    days: Integer = Field(30, ge=1, le=365, description="calendar days of history")


def parse(model: type[Params], values: dict[str, Any]) -> Params:
    """Validate ``values`` into ``model``; the first problem becomes a BadRequest naming it."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        details = [
            {
                "field": ".".join(str(p) for p in err["loc"]) or "query",
                "message": err["msg"].removeprefix("Value error, "),
            }
            for err in exc.errors(include_url=False)
        ]
        first = details[0]
        message = f"invalid {first['field']}: {first['message']}"
        raise BadRequest(first["field"], message, details) from None
