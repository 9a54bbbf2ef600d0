"""Public end-of-day option chain formats, and how each maps onto our one long schema.

A file's format is told from its header alone. Header names are normalised (brackets, quotes and
spaces stripped, lower case, other characters to ``_``: ``[QUOTE_DATE]`` → ``quote_date``,
``UnderlyingSymbol`` → ``underlyingsymbol``) and matched against each format's required columns.
Each format then writes one SQL select list over its reader (DuckDB's ``read_csv`` with every
column as text, ``read_parquet``, or a registered JSON document) that yields ``RAW_COLUMNS``: one
row per contract with its snapshot's underlying price. Unparseable numbers and dates become NULL
there (``TRY_CAST``), so a bad value costs its row (rejected by rule, counted), never the file.

Mappings (our units: IV a fraction; theta per calendar day; vega and rho per 1 vol/rate point;
``stamp`` is the quote time, naive, in the format's ``zone``; a stamp at midnight is a date only
and means that day's 16:00 New York close):

====================  ====================================================================
Cboe DataShop EOD     The 15:45 New York calculation snapshot, the one moment at which the
                      file's quotes, underlying and greeks agree: ``bid_1545``/``ask_1545``,
                      ``active_underlying_price_1545`` (else the implied price, else the
                      underlying mid), ``implied_volatility_1545`` and ``delta…rho_1545``
                      (LiveVol units: theta per day, vega and rho per point). ``trade_volume``
                      is the day's volume, ``open_interest`` the morning's OCC figure, ``close``
                      the last trade (0 means none → null). ``^SPX`` → ``SPX``. The ``*_eod``
                      quotes are not used.
historicaloptiondata  ``DataDate`` (a date, or a New York time such as ``09/10/2019 16:00``),
(vendor per-contract) ``Type`` call/put, ``Last`` 0 → null, ``IV`` (or ``IVMean``) 0 → missing.
                      Greeks as the vendor's published sample shows them: theta per year (÷365)
                      and vega per 1.00 of vol (÷100); no rho (computed).
OptionsDX             Wide rows melted into a call and a put. No ticker column: ``--ticker`` or
                      the file name's first word. Quote time ``[QUOTE_READTIME]`` (New York),
                      else ``[QUOTE_DATE]``. No open interest (null). Greeks per day/per point.
ocd chain document    Our own export (``chains/<T>_<digest>.json``): values as published, the
                      ``as_of`` in UTC, ``dividend_yield`` kept. A round trip changes nothing.
ocd sealed history    Our own sealed Parquet partitions (``history/chains`` and
                      ``history/intraday``, ``chalicelib/historyformat.py``): every column as
                      sealed, ``as_of`` a UTC instant. A round trip changes nothing (the
                      dividend yield is not sealed: 0 on replay).
====================  ====================================================================

In every format a missing volume is 0 and a missing open interest stays null (unknown is not
zero); missing IVs and greeks stay null here and are computed when the day is replayed.

Vendors are not consistent even within one product line, so for the three vendor formats the
importer also checks theta, vega and rho against the pricing core at the vendor's own IV on a
sample of near-the-money rows, and uses the scale the data shows (see ``UNIT_CANDIDATES``); an IV
column whose median is above 3 (300 %) is read as percent.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from chalicelib.config import TICKER_PATTERN
from chalicelib.domain import calendar as cal

RAW_COLUMNS: dict[str, str] = {  # name -> DuckDB type of the normalised table
    "ticker": "VARCHAR",
    "stamp": "TIMESTAMP",
    "expiration": "DATE",
    "strike": "DOUBLE",
    "right": "VARCHAR",
    "bid": "DOUBLE",
    "ask": "DOUBLE",
    "last": "DOUBLE",
    "volume": "DOUBLE",
    "open_interest": "DOUBLE",
    "implied_volatility": "DOUBLE",
    "delta": "DOUBLE",
    "gamma": "DOUBLE",
    "theta": "DOUBLE",
    "vega": "DOUBLE",
    "rho": "DOUBLE",
    "spot": "DOUBLE",
    "dividend_yield": "DOUBLE",
}
GREEKS = ("delta", "gamma", "theta", "vega", "rho")
# Scales a vendor value may carry, as divisors to reach our unit (checked against the pricing core)
UNIT_CANDIDATES: dict[str, tuple[float, ...]] = {
    "theta": (1.0, 365.0, 252.0),  # per calendar day, per year, per trading year
    "vega": (1.0, 100.0),  # per vol point, per 1.00 of vol
    "rho": (1.0, 100.0),  # per rate point, per 1.00 of rate
}
# Dates and times as text (ISO first; then the US style of vendor files); DuckDB and Python
# read these strptime formats alike, so a format seen in a file's first lines holds in SQL.
TIME_FORMATS = (
    "%Y-%m-%d",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M:%SZ",
    "%m/%d/%Y",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y %I:%M %p",
    "%Y%m%d",
)
_TEXT_TYPES = ("VARCHAR",)


@dataclass(frozen=True)
class Units:
    """Divisors that bring a format's values to ours; ``checked``: verify on a data sample."""

    iv: float = 1.0
    theta: float = 1.0
    vega: float = 1.0
    rho: float = 1.0
    checked: bool = True

    def scale(self, name: str) -> float:
        return float(getattr(self, name))


@dataclass(frozen=True)
class Columns:
    """The columns a reader offers (normalised name -> DuckDB type), as SQL expressions.

    ``time_formats`` names the strptime format seen in a text column's first values: parsing
    with one known format costs a fraction of trying them all on every row.
    """

    types: Mapping[str, str]
    time_formats: Mapping[str, str] = field(default_factory=dict)

    def has(self, name: str) -> bool:
        return name in self.types

    def first(self, *names: str) -> str | None:
        return next((n for n in names if n in self.types), None)

    def num(self, name: str | None) -> str:
        """A DOUBLE; NULL when absent, empty or unparseable (an infinity stays: rejected)."""
        if name is None or name not in self.types:
            return "NULL::DOUBLE"
        return f"TRY_CAST({_ident(name)} AS DOUBLE)"

    def time(self, name: str | None, zone: str) -> str:
        """A naive TIMESTAMP in ``zone`` (a date becomes midnight); NULL when unparseable."""
        if name is None or name not in self.types:
            return "NULL::TIMESTAMP"
        kind = self.types[name].upper()
        col = _ident(name)
        if kind in _TEXT_TYPES:
            formats = ", ".join(_literal(f) for f in TIME_FORMATS)
            generic = f"try_strptime(trim({col}), [{formats}])"
            seen = self.time_formats.get(name)
            if seen is None:
                return generic
            return f"coalesce(try_strptime({col}, {_literal(seen)}), {generic})"
        if "WITH TIME ZONE" in kind:
            return f"timezone({_literal(zone)}, {col})"
        return f"TRY_CAST({col} AS TIMESTAMP)"

    def date(self, name: str | None) -> str:
        return f"CAST({self.time(name, 'UTC')} AS DATE)"

    def text(self, name: str | None) -> str:
        if name is None or name not in self.types:
            return "NULL::VARCHAR"
        return f"trim(CAST({_ident(name)} AS VARCHAR))"


@dataclass(frozen=True)
class ChainFormat:
    name: str
    title: str
    required: tuple[str, ...]
    select: Callable[[Columns, str | None], str]  # (columns, ticker) -> SQL select list
    zone: str  # the zone of naive stamps
    units: Units
    needs_ticker: bool = False  # rows carry no ticker: it comes from the caller

    def sql(self, columns: Columns, source: str, ticker: str | None = None) -> str:
        """The query that normalises ``source`` (a reader or view) to ``RAW_COLUMNS``."""
        typed = ", ".join(_typed(k, t) for k, t in RAW_COLUMNS.items())
        return f"SELECT {typed} FROM (SELECT {self.select(columns, ticker)} FROM {source})"


# ---- the formats ------------------------------------------------------------------------------
def _cboe(c: Columns, _ticker: str | None) -> str:
    z = cal.NEW_YORK.key
    mid = f"({c.num('underlying_bid_1545')} + {c.num('underlying_ask_1545')}) / 2"
    spot = (
        f"coalesce(nullif({c.num('active_underlying_price_1545')}, 0), "
        f"nullif({c.num('implied_underlying_price_1545')}, 0), nullif({mid}, 0))"
    )
    greeks = ", ".join(f'{c.num(f"{g}_1545")} AS "{g}"' for g in GREEKS)
    return f"""
        upper(ltrim({c.text("underlying_symbol")}, '^')) AS ticker,
        CAST(CAST({c.time("quote_date", z)} AS DATE) AS TIMESTAMP) + INTERVAL 945 MINUTE AS stamp,
        {c.date("expiration")} AS expiration,
        {c.num("strike")} AS strike,
        upper(left({c.text("option_type")}, 1)) AS "right",
        {c.num("bid_1545")} AS bid,
        {c.num("ask_1545")} AS ask,
        CASE WHEN {c.num("trade_volume")} > 0 THEN nullif({c.num("close")}, 0) END AS last,
        {c.num("trade_volume")} AS volume,
        {c.num("open_interest")} AS open_interest,
        nullif({c.num("implied_volatility_1545")}, 0) AS implied_volatility,
        {greeks},
        {spot} AS spot,
        NULL AS dividend_yield
    """


def _vendor(c: Columns, _ticker: str | None) -> str:
    z = cal.NEW_YORK.key
    kind = f"lower(left({c.text('type')}, 1))"
    return f"""
        upper({c.text("underlyingsymbol")}) AS ticker,
        {c.time("datadate", z)} AS stamp,
        {c.date("expiration")} AS expiration,
        {c.num("strike")} AS strike,
        CASE {kind} WHEN 'c' THEN 'C' WHEN 'p' THEN 'P' ELSE upper({c.text("type")}) END AS "right",
        {c.num("bid")} AS bid,
        {c.num("ask")} AS ask,
        nullif({c.num("last")}, 0) AS last,
        {c.num("volume")} AS volume,
        {c.num("openinterest")} AS open_interest,
        nullif({c.num(c.first("iv", "ivmean"))}, 0) AS implied_volatility,
        {c.num("delta")} AS delta,
        {c.num("gamma")} AS gamma,
        {c.num("theta")} AS theta,
        {c.num("vega")} AS vega,
        {c.num("rho")} AS rho,
        {c.num("underlyingprice")} AS spot,
        NULL AS dividend_yield
    """


def _optionsdx(c: Columns, ticker: str | None) -> str:
    if ticker is None or not re.fullmatch(TICKER_PATTERN, ticker):
        raise ValueError(f"OptionsDX rows need a ticker matching {TICKER_PATTERN}, got {ticker!r}")
    z = cal.NEW_YORK.key

    def side(p: str, right: str) -> str:
        fields = {
            "right": _literal(right),
            "bid": c.num(f"{p}_bid"),
            "ask": c.num(f"{p}_ask"),
            "last": f"nullif({c.num(f'{p}_last')}, 0)",
            "volume": c.num(f"{p}_volume"),
            "open_interest": "NULL::DOUBLE",
            "implied_volatility": f"nullif({c.num(f'{p}_iv')}, 0)",
            **{g: c.num(f"{p}_{g}") for g in GREEKS},
        }
        return "{" + ", ".join(f"{_literal(k)}: {v}" for k, v in fields.items()) + "}"

    return f"""
        {_literal(ticker)} AS ticker,
        coalesce({c.time("quote_readtime", z)}, {c.time("quote_date", z)}) AS stamp,
        {c.date("expire_date")} AS expiration,
        {c.num("strike")} AS strike,
        {c.num("underlying_last")} AS spot,
        NULL AS dividend_yield,
        unnest([{side("c", "C")}, {side("p", "P")}], recursive := true)
    """


def _sealed(c: Columns, _ticker: str | None) -> str:
    contract = ", ".join(
        f"{c.num(n)} AS {_ident(n)}"
        for n in ("strike", "bid", "ask", "last", "volume", "open_interest",
                  "implied_volatility", *GREEKS)
    )  # fmt: skip
    return f"""
        upper({c.text("ticker")}) AS ticker,
        {c.time("as_of", "UTC")} AS stamp,
        {c.date("expiration")} AS expiration,
        upper({c.text("right")}) AS "right",
        {contract},
        {c.num("underlying_price")} AS spot,
        NULL AS dividend_yield
    """


def _ocd(c: Columns, _ticker: str | None) -> str:
    return ", ".join(_ident(k) for k in RAW_COLUMNS)


CBOE_DATASHOP = ChainFormat(
    name="cboe_datashop",
    title="Cboe DataShop EOD",
    required=(
        "underlying_symbol",
        "quote_date",
        "expiration",
        "strike",
        "option_type",
        "bid_1545",
        "ask_1545",
    ),
    select=_cboe,
    zone=cal.NEW_YORK.key,
    units=Units(),
)
VENDOR = ChainFormat(
    name="vendor",
    title="per-contract vendor layout (historicaloptiondata)",
    required=(
        "underlyingsymbol",
        "underlyingprice",
        "type",
        "expiration",
        "datadate",
        "strike",
        "bid",
        "ask",
    ),
    select=_vendor,
    zone=cal.NEW_YORK.key,
    units=Units(theta=365.0, vega=100.0),
)
OPTIONSDX = ChainFormat(
    name="optionsdx",
    title="OptionsDX wide rows",
    required=(
        "quote_date",
        "underlying_last",
        "expire_date",
        "strike",
        "c_bid",
        "c_ask",
        "p_bid",
        "p_ask",
    ),
    select=_optionsdx,
    zone=cal.NEW_YORK.key,
    units=Units(),
    needs_ticker=True,
)
OCD_CHAIN = ChainFormat(
    name="ocd_chain",
    title="ocd chain document (our export)",
    required=("ticker", "as_of", "underlying_price", "columns"),
    select=_ocd,
    zone="UTC",
    units=Units(checked=False),
)
OCD_HISTORY = ChainFormat(
    name="ocd_history",
    title="ocd sealed history (history/<kind>/date=…/part-….parquet)",
    required=("ticker", "as_of", "expiration", "strike", "right", "bid", "ask",
              "underlying_price"),
    select=_sealed,
    zone="UTC",
    units=Units(checked=False),
)  # fmt: skip
TABULAR_FORMATS = (CBOE_DATASHOP, VENDOR, OPTIONSDX, OCD_HISTORY)
FORMATS = {f.name: f for f in (*TABULAR_FORMATS, OCD_CHAIN)}


def normalise_header(names: Sequence[str]) -> list[str]:
    """Comparable, SQL-safe column names; empty or repeated ones get a position suffix."""
    out: list[str] = []
    for i, raw in enumerate(names):
        name = raw.replace("\ufeff", "").strip().strip("[]\"' ").lower()
        name = re.sub(r"[^a-z0-9]+", "_", name).strip("_") or f"column_{i}"
        if name in out:
            name = f"{name}_{i}"
        out.append(name)
    return out


def time_format(values: Sequence[str]) -> str | None:
    """The first of ``TIME_FORMATS`` that reads every one of ``values`` (None if none does)."""
    values = [v.strip() for v in values if v and v.strip()]
    if not values:
        return None
    for fmt in TIME_FORMATS:
        try:
            for value in values:
                datetime.strptime(value, fmt)
        except ValueError:
            continue
        return fmt
    return None


def detect(names: Sequence[str]) -> ChainFormat | None:
    """The tabular format whose required columns the (normalised) header has, if any."""
    have = set(names)
    return next((f for f in TABULAR_FORMATS if set(f.required) <= have), None)


def describe_expected() -> str:
    """One line per known format with its identifying columns, for error messages."""
    return "; ".join(f"{f.title}: {', '.join(f.required)}" for f in FORMATS.values())


def _typed(name: str, kind: str) -> str:
    """The outer projection: every column typed; a NaN is missing, like an empty field."""
    value = f"CAST({_ident(name)} AS {kind})"
    if kind == "DOUBLE":
        value = f"nullif({value}, 'NaN'::DOUBLE)"
    return f"{value} AS {_ident(name)}"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def sql_literal(value: str) -> str:
    """A SQL string literal (for file paths in reader calls, which take no parameters)."""
    return _literal(value)
