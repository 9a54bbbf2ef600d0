"""Helpers for the import suite: Black–Scholes-consistent chains written in each public format.

A ``Quote`` holds one contract in our units. The writers put quotes into a format's own layout
and units (the vendor layout's theta per year and vega per 1.00 of vol, OptionsDX's wide rows,
Cboe's 15:45 snapshot), with floats written by ``repr`` so what a test expects back is exact.
"""

from __future__ import annotations

import gzip
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from chalicelib.config import Settings, load_settings
from chalicelib.domain import calendar as cal
from chalicelib.domain.pricing import bs_greeks, bs_price

RATE = 0.045
DAYS = (date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 4), date(2026, 3, 5))  # Mon–Thu
NOW = datetime(2026, 3, 20, 15, 0, tzinfo=UTC)  # after every imported day
SPOTS = {"SPY": 590.0, "AAPL": 243.0, "JPM": 240.0}
VENDOR_HEADER = (
    "UnderlyingSymbol,UnderlyingPrice,Exchange,OptionSymbol,OptionExt,Type,Expiration,DataDate,"
    "Strike,Last,Bid,Ask,Volume,OpenInterest,IV,Delta,Gamma,Theta,Vega,AKA"
)
CBOE_COLUMNS = (
    "underlying_symbol", "quote_date", "root", "expiration", "strike", "option_type", "open",
    "high", "low", "close", "trade_volume", "bid_size_1545", "bid_1545", "ask_size_1545",
    "ask_1545", "underlying_bid_1545", "underlying_ask_1545", "implied_underlying_price_1545",
    "active_underlying_price_1545", "implied_volatility_1545", "delta_1545", "gamma_1545",
    "theta_1545", "vega_1545", "rho_1545", "bid_size_eod", "bid_eod", "ask_size_eod", "ask_eod",
    "underlying_bid_eod", "underlying_ask_eod", "vwap", "open_interest", "delivery_code",
)  # fmt: skip
OPTIONSDX_HEADER = (
    "[QUOTE_UNIXTIME], [QUOTE_READTIME], [QUOTE_DATE], [QUOTE_TIME_HOURS], [UNDERLYING_LAST], "
    "[EXPIRE_DATE], [EXPIRE_UNIX], [DTE], [C_DELTA], [C_GAMMA], [C_VEGA], [C_THETA], [C_RHO], "
    "[C_IV], [C_VOLUME], [C_LAST], [C_SIZE], [C_BID], [C_ASK], [STRIKE], [P_BID], [P_ASK], "
    "[P_SIZE], [P_LAST], [P_DELTA], [P_GAMMA], [P_VEGA], [P_THETA], [P_RHO], [P_IV], "
    "[P_VOLUME], [STRIKE_DISTANCE], [STRIKE_DISTANCE_PCT]"
)
CONTRACT_FIELDS = ("strike", "bid", "ask", "last", "volume", "open_interest",
                   "implied_volatility", "delta", "gamma", "theta", "vega", "rho")  # fmt: skip


@dataclass(frozen=True)
class Quote:
    ticker: str
    as_of: datetime  # aware UTC
    spot: float
    expiration: date
    strike: float
    right: str
    bid: float
    ask: float
    last: float | None
    volume: int
    open_interest: int | None
    implied_volatility: float | None
    delta: float | None
    gamma: float | None
    theta: float | None
    vega: float | None
    rho: float | None

    @property
    def day(self) -> date:
        return self.as_of.astimezone(cal.NEW_YORK).date()

    def key(self) -> tuple[str, str, float]:
        return (self.expiration.isoformat(), self.right, self.strike)


def close_of(day: date) -> datetime:
    return cal.session_bounds(day)[1]


def at_1545(day: date) -> datetime:
    return datetime.combine(day, time(15, 45), cal.NEW_YORK).astimezone(UTC)


def chain(
    ticker: str,
    day: date,
    *,
    spot: float | None = None,
    as_of: datetime | None = None,
    expiries: Sequence[int] = (16, 45),
    moneyness: Sequence[float] = (0.9, 0.95, 1.0, 1.05, 1.1),
    sigma: float = 0.25,
) -> list[Quote]:
    """Calls and puts on a few expiries (days out, rolled to a Friday) and strikes."""
    spot = spot if spot is not None else SPOTS.get(ticker, 100.0) * (1 + 0.01 * DAYS.index(day))
    as_of = as_of or close_of(day)
    out: list[Quote] = []
    for days_out, m, right in itertools.product(expiries, moneyness, ("C", "P")):
        target = day + timedelta(days=days_out)
        expiry = target + timedelta(days=(4 - target.weekday()) % 7)
        strike = float(round(spot * m / 5) * 5)
        t = (cal.expiry_close(expiry) - as_of).total_seconds() / cal.SECONDS_PER_YEAR
        vol = sigma + 0.1 * (1 - m) ** 2 + (0.02 if right == "P" else 0.0)
        is_call = right == "C"
        mid = float(bs_price(spot, strike, t, RATE, vol, is_call))
        g = bs_greeks(spot, strike, t, RATE, vol, is_call)
        half = max(0.05, round(0.01 * mid, 2))
        out.append(
            Quote(
                ticker=ticker,
                as_of=as_of,
                spot=spot,
                expiration=expiry,
                strike=strike,
                right=right,
                bid=round(max(mid - half, 0.0), 2),
                ask=round(mid + half, 2),
                last=round(mid, 2),
                volume=int(50 + 10 * strike % 7),
                open_interest=int(1000 + strike),
                implied_volatility=round(vol, 4),
                delta=round(float(g.delta), 6),
                gamma=round(float(g.gamma), 6),
                theta=round(float(g.theta), 6),
                vega=round(float(g.vega), 6),
                rho=round(float(g.rho), 6),
            )
        )
    return out


def chains(
    tickers: Iterable[str] = ("SPY",), days: Iterable[date] = DAYS, **kw: Any
) -> list[Quote]:
    return [q for d in days for t in tickers for q in chain(t, d, **kw)]


# ---- writers -----------------------------------------------------------------------------------
def _f(value: float | int | None, scale: float = 1.0) -> str:
    return "" if value is None else repr(value * scale if scale != 1.0 else value)


def vendor_csv(
    quotes: Iterable[Quote],
    *,
    theta_scale: float = 365.0,
    vega_scale: float = 100.0,
    iv_scale: float = 1.0,
    extra_rows: Sequence[str] = (),
) -> str:
    """historicaloptiondata's layout: theta per year and vega per 1.00 of vol by default."""
    lines = [VENDOR_HEADER]
    for q in quotes:
        symbol = f"{q.ticker}{q.expiration:%y%m%d}{q.right}{int(q.strike * 1000):08d}"
        lines.append(",".join([
            q.ticker, _f(q.spot), "*", symbol, "", "call" if q.right == "C" else "put",
            f"{q.expiration:%m/%d/%Y}", f"{q.day:%m/%d/%Y}", _f(q.strike), _f(q.last or 0.0),
            _f(q.bid), _f(q.ask), str(q.volume), _f(q.open_interest),
            _f(q.implied_volatility, iv_scale), _f(q.delta), _f(q.gamma),
            _f(q.theta, theta_scale), _f(q.vega, vega_scale), symbol,
        ]))  # fmt: skip
    lines.extend(extra_rows)
    return "\n".join(lines) + "\n"


def cboe_csv(quotes: Iterable[Quote], *, symbol: str | None = None) -> str:
    """Cboe DataShop EOD with calcs; quotes must be the 15:45 snapshot (``at_1545``)."""
    lines = [",".join(CBOE_COLUMNS)]
    for q in quotes:
        traded = q.last is not None and q.volume > 0
        row = {
            "underlying_symbol": symbol or q.ticker,
            "quote_date": q.day.isoformat(),
            "root": q.ticker,
            "expiration": q.expiration.isoformat(),
            "strike": _f(q.strike),
            "option_type": q.right,
            "open": _f(q.last if traded else 0.0),
            "high": _f(q.last if traded else 0.0),
            "low": _f(q.last if traded else 0.0),
            "close": _f(q.last if traded else 0.0),
            "trade_volume": str(q.volume),
            "bid_size_1545": "10",
            "bid_1545": _f(q.bid),
            "ask_size_1545": "12",
            "ask_1545": _f(q.ask),
            "underlying_bid_1545": _f(q.spot - 0.01),
            "underlying_ask_1545": _f(q.spot + 0.01),
            "implied_underlying_price_1545": _f(q.spot + 0.5),
            "active_underlying_price_1545": _f(q.spot),
            "implied_volatility_1545": _f(q.implied_volatility or 0.0),
            "delta_1545": _f(q.delta),
            "gamma_1545": _f(q.gamma),
            "theta_1545": _f(q.theta),
            "vega_1545": _f(q.vega),
            "rho_1545": _f(q.rho),
            "bid_size_eod": "5",
            "bid_eod": _f(q.bid + 0.05),
            "ask_size_eod": "5",
            "ask_eod": _f(q.ask + 0.05),
            "underlying_bid_eod": _f(q.spot + 1),
            "underlying_ask_eod": _f(q.spot + 1.02),
            "vwap": _f(q.last or 0.0),
            "open_interest": _f(q.open_interest),
            "delivery_code": "",
        }
        lines.append(",".join(row[c] for c in CBOE_COLUMNS))
    return "\n".join(lines) + "\n"


def optionsdx_txt(quotes: Iterable[Quote]) -> str:
    """OptionsDX wide rows: a call and a put per line, fields separated by ", ", no OI."""
    lines = [OPTIONSDX_HEADER]
    pairs: dict[tuple[datetime, date, float], dict[str, Quote]] = {}
    for q in quotes:
        pairs.setdefault((q.as_of, q.expiration, q.strike), {})[q.right] = q
    for (as_of, expiry, strike), sides in pairs.items():
        c, p = sides["C"], sides["P"]
        local = as_of.astimezone(cal.NEW_YORK)
        expire = cal.expiry_close(expiry)

        def side(x: Quote) -> dict[str, str]:
            return {
                "delta": _f(x.delta), "gamma": _f(x.gamma), "vega": _f(x.vega),
                "theta": _f(x.theta), "rho": _f(x.rho), "iv": _f(x.implied_volatility),
                "volume": str(x.volume), "last": _f(x.last or 0.0), "size": "1 x 1",
                "bid": _f(x.bid), "ask": _f(x.ask),
            }  # fmt: skip

        cs, ps = side(c), side(p)
        fields = [
            str(int(as_of.timestamp())), f"{local:%Y-%m-%d %H:%M}", f"{local:%Y-%m-%d}",
            f"{local.hour + local.minute / 60:.6f}", _f(c.spot), expiry.isoformat(),
            str(int(expire.timestamp())), f"{(expiry - local.date()).days:.6f}",
            cs["delta"], cs["gamma"], cs["vega"], cs["theta"], cs["rho"], cs["iv"],
            cs["volume"], cs["last"], cs["size"], cs["bid"], cs["ask"], _f(strike),
            ps["bid"], ps["ask"], ps["size"], ps["last"], ps["delta"], ps["gamma"],
            ps["vega"], ps["theta"], ps["rho"], ps["iv"], ps["volume"],
            _f(abs(strike - c.spot)), _f(abs(strike - c.spot) / c.spot),
        ]  # fmt: skip
        lines.append(" " + ", ".join(fields))
    return "\n".join(lines) + "\n"


def write(path: Path, text: str, *, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def to_parquet(store: Any, csv_path: Path, parquet_path: Path) -> Path:
    """The CSV's rows as a typed Parquet file, written by DuckDB through a Store connection."""
    store.rows(
        f"COPY (SELECT * FROM read_csv('{csv_path}', header = true)) "
        f"TO '{parquet_path}' (FORMAT PARQUET)"
    )
    return parquet_path


# ---- expectations ------------------------------------------------------------------------------
def settings_for(data_dir: Path, **values: str) -> Settings:
    env = {
        "OCD_DATA_DIR": str(data_dir),
        "OCD_WATCHLIST": "SPY",
        "OCD_BACKFILL_DAYS": "0",
        "OCD_PROVIDER": "file",
        "OCD_LOG_LEVEL": "WARNING",
    }
    env.update({f"OCD_{k.upper()}": v for k, v in values.items()})
    return load_settings(env)


def staged(store: Any, table: str = "import_quotes", where: str = "") -> list[dict[str, Any]]:
    """Rows of ``table`` as dicts, in contract order."""
    cols = ("ticker", "as_of", "expiration", "strike", "right", *CONTRACT_FIELDS[1:])
    sql = (
        f"SELECT {', '.join(chr(34) + c + chr(34) for c in cols)} FROM {table} {where} "
        'ORDER BY ticker, as_of, expiration, "right", strike'
    )
    return [dict(zip(cols, row, strict=True)) for row in store.rows(sql)]


def expected_row(q: Quote, *, rho: bool = True, open_interest: bool = True) -> dict[str, Any]:
    """What the staging table should hold for ``q`` (our units; missing stays None)."""
    return {
        "ticker": q.ticker,
        "as_of": q.as_of.astimezone(UTC).replace(tzinfo=None),
        "expiration": q.expiration,
        "strike": q.strike,
        "right": q.right,
        "bid": q.bid,
        "ask": q.ask,
        "last": q.last,
        "volume": q.volume,
        "open_interest": q.open_interest if open_interest else None,
        "implied_volatility": q.implied_volatility,
        "delta": q.delta,
        "gamma": q.gamma,
        "theta": q.theta,
        "vega": q.vega,
        "rho": q.rho if rho else None,
    }


def sort_quotes(quotes: Iterable[Quote]) -> list[Quote]:
    return sorted(quotes, key=lambda q: (q.ticker, q.as_of, q.expiration, q.right, q.strike))


def assert_rows_match(actual: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    """Equal row by row; floats to 1e-12 relative (unit conversions divide)."""
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected, strict=True):
        assert a.keys() == e.keys()
        for key, want in e.items():
            got = a[key]
            if isinstance(want, float) and got is not None:
                assert np.isclose(got, want, rtol=1e-12, atol=0), (key, got, want, e)
            else:
                assert got == want, (key, got, want, e)


def without(q: Quote, **fields: Any) -> Quote:
    return replace(q, **fields)
