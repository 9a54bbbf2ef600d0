"""Query and path parameters of every route, validated at the boundary (pydantic).

A bad value becomes HTTP 400 naming the field; so does a parameter the route does not take
(``?expiry=`` must not silently mean "the nearest expiration") or one sent twice. Nothing a
client sends reaches a handler unchecked. An empty query value means "not given", as an HTML
form sends it, and the OpenAPI schemas say so; nothing else is trimmed (" 5" is not a number).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, WithJsonSchema

from chalicelib.analytics.detector_names import DETECTOR_NAMES
from chalicelib.config import TICKER_PATTERN
from chalicelib.errors import BadRequest

_TICKER = re.compile(TICKER_PATTERN)
# What a client may send: any case (tickers are upper-cased), ASCII only.
TICKER_INPUT_PATTERN = r"^[A-Za-z][A-Za-z0-9.-]{0,9}$"
OPTIONAL_TICKER_PATTERN = r"^([A-Za-z][A-Za-z0-9.-]{0,9})?$"  # empty: any ticker
_INTEGER = re.compile(r"[+-]?[0-9]{1,9}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _ticker(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    # ASCII first: str.upper() maps some other letters to ASCII ones ('ß' -> 'SS').
    upper = value.upper() if value.isascii() else ""
    if not _TICKER.fullmatch(upper):
        raise ValueError(f"must match {TICKER_PATTERN} (e.g. SPY, BRK.B; any case)")
    return upper


def _integer(value: Any) -> Any:
    """Decimal digits only: '1.0', '1e2', '1_000' and '0x10' are not integers here."""
    if isinstance(value, str):
        if not _INTEGER.fullmatch(value):
            raise ValueError("must be a whole number written in decimal digits")
        return int(value)
    return value


def _iso_date(value: Any) -> Any:
    """YYYY-MM-DD only (pydantic alone would also take timestamps and datetimes)."""
    if isinstance(value, str) and not _DATE.fullmatch(value):
        raise ValueError("must be a date written YYYY-MM-DD")
    return value


def _detector(value: Any) -> Any:
    if isinstance(value, str) and value not in DETECTOR_NAMES:
        raise ValueError(f"unknown detector; one of {', '.join(DETECTOR_NAMES)}")
    return value


def _blank_is_none(value: Any) -> Any:
    return None if value == "" else value


Ticker = Annotated[
    str,
    BeforeValidator(_ticker),
    WithJsonSchema({"type": "string", "pattern": TICKER_INPUT_PATTERN}),
]
OptionalTicker = Annotated[
    Ticker | None,
    BeforeValidator(_blank_is_none),
    WithJsonSchema({"type": "string", "pattern": OPTIONAL_TICKER_PATTERN}),
]
Detector = Annotated[
    str | None,
    BeforeValidator(_detector),
    BeforeValidator(_blank_is_none),
    WithJsonSchema({"type": "string", "enum": ["", *DETECTOR_NAMES]}),
]
Integer = Annotated[int, BeforeValidator(_integer)]
Score = Annotated[float, Field(allow_inf_nan=False)]
IsoDate = Annotated[date, BeforeValidator(_iso_date)]
OptionalDate = Annotated[
    IsoDate | None,
    BeforeValidator(_blank_is_none),
    WithJsonSchema({"type": "string", "anyOf": [{"format": "date"}, {"maxLength": 0}]}),
]


class Params(BaseModel):
    # Schemas are built on first use: an API process builds only the routes it serves.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class NoParams(Params):
    pass


class FeedParams(Params):
    token: str | None = Field(
        None, min_length=1, max_length=256,
        description="OCD_FEED_TOKEN, for feed readers that cannot send x-api-key",
    )  # fmt: skip


class ScansParams(Params):
    limit: Integer = Field(10, ge=1, le=100, description="scans to return, newest first")


class AlertsLatestParams(Params):
    limit: Integer = Field(50, ge=1, le=500, description="alerts to return, newest first")
    min_score: Score = Field(0.0, ge=0, le=100, description="only alerts scoring at least this")


class AlertsSummaryParams(AlertsLatestParams):
    limit: Integer = Field(20, ge=1, le=500, description="alerts to return, newest first")


class AlertsQueryParams(Params):
    ticker: OptionalTicker = Field(None, description="only this ticker", examples=["SPY"])
    detector: Detector = Field(None, description="only this detector", examples=["rich_premium"])
    min_score: Score = Field(0.0, ge=0, le=100, description="only alerts scoring at least this")
    limit: Integer = Field(100, ge=1, le=500, description="alerts to return, newest first")


class TickerParams(Params):
    ticker: Ticker = Field(description="underlying symbol, any case", examples=["SPY"])


class TickerAlertsParams(TickerParams):
    limit: Integer = Field(100, ge=1, le=500, description="alerts to return, newest first")


class SnapshotParams(TickerParams):
    expiration: OptionalDate = Field(
        None, description="YYYY-MM-DD; default (or empty): the nearest expiration"
    )


class HistoryParams(TickerParams):
    days: Integer = Field(30, ge=1, le=365, description="calendar days of history")


def parse(
    model: type[Params],
    query: Mapping[str, Sequence[str]] | None = None,
    path: Mapping[str, str] | None = None,
) -> Params:
    """Validate a request's query (name -> every value sent) and path parameters into
    ``model``; the first problem becomes a BadRequest naming the field."""
    query, path = query or {}, path or {}
    takes = [name for name in model.model_fields if name not in path]
    for name, values in query.items():
        if name not in takes:
            shown = name if len(name) <= 64 else name[:64] + "…"
            known = ", ".join(takes) if takes else "no query parameters"
            _fail(shown, f"unknown query parameter; this route takes {known}")
        if len(values) > 1:
            _fail(name, f"given {len(values)} times; send it once")
    values = {name: given[-1] for name, given in query.items()} | dict(path)
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


def _fail(field: str, problem: str) -> None:
    raise BadRequest(field, f"invalid {field}: {problem}", [{"field": field, "message": problem}])
