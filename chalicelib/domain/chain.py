"""Option chains as columns: the write path moves contracts as numpy arrays, not objects.

A ``ChainBatch`` is one long table (one row per contract per snapshot) in the store's schema.
``reject_reasons`` applies the same rules as the ``OptionQuote`` model, vectorised, so a bad
provider row is dropped and counted instead of aborting a cycle.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from numpy.typing import NDArray

from chalicelib.domain.models import OptionQuote

# column -> numpy dtype; optional float columns use NaN for "missing"
CHAIN_COLUMNS: dict[str, str] = {
    "ticker": "object",
    "as_of": "datetime64[us]",
    "expiration": "datetime64[s]",
    "strike": "float64",
    "right": "object",
    "bid": "float64",
    "ask": "float64",
    "last": "float64",
    "volume": "int64",
    "open_interest": "float64",
    "implied_volatility": "float64",
    "delta": "float64",
    "gamma": "float64",
    "theta": "float64",
    "vega": "float64",
    "rho": "float64",
}
OPTIONAL_FLOATS = (
    "last",
    "open_interest",
    "implied_volatility",
    "delta",
    "gamma",
    "theta",
    "vega",
    "rho",
)
REJECT_REASONS = (
    "bad_right",
    "non_finite",
    "non_positive_strike",
    "negative_price",
    "negative_size",
    "bid_above_ask",
    "expired",
)


@dataclass(frozen=True)
class ChainBatch:
    """Columns of equal length keyed as in ``CHAIN_COLUMNS``."""

    columns: Mapping[str, NDArray]

    def __post_init__(self) -> None:
        missing = set(CHAIN_COLUMNS) - set(self.columns)
        if missing:
            raise ValueError(f"chain batch lacks columns {sorted(missing)}")
        lengths = {len(v) for v in self.columns.values()}
        if len(lengths) > 1:
            raise ValueError(f"chain batch columns differ in length: {sorted(lengths)}")

    def __len__(self) -> int:
        return len(self.columns["strike"])

    def __getitem__(self, name: str) -> NDArray:
        return self.columns[name]

    def filter(self, mask: NDArray[np.bool_]) -> ChainBatch:
        return ChainBatch({k: v[mask] for k, v in self.columns.items()})

    @property
    def nbytes(self) -> int:
        return int(sum(v.nbytes for v in self.columns.values()))

    @classmethod
    def empty(cls) -> ChainBatch:
        return cls({k: np.empty(0, dtype=t) for k, t in CHAIN_COLUMNS.items()})

    @classmethod
    def concat(cls, batches: Iterable[ChainBatch]) -> ChainBatch:
        parts = [b for b in batches if len(b)]
        if not parts:
            return cls.empty()
        return cls({k: np.concatenate([b.columns[k] for b in parts]) for k in CHAIN_COLUMNS})

    @classmethod
    def from_quotes(cls, quotes: Iterable[OptionQuote]) -> ChainBatch:
        rows = list(quotes)
        cols: dict[str, list] = {k: [] for k in CHAIN_COLUMNS}
        for q in rows:
            cols["ticker"].append(q.ticker)
            cols["as_of"].append(q.as_of.astimezone(UTC).replace(tzinfo=None))
            cols["expiration"].append(np.datetime64(q.expiration, "s"))
            cols["right"].append(q.right)
            for name in ("strike", "bid", "ask", "volume"):
                cols[name].append(getattr(q, name))
            for name in OPTIONAL_FLOATS:
                value = getattr(q, name)
                cols[name].append(np.nan if value is None else value)
        return cls({k: np.asarray(v, dtype=CHAIN_COLUMNS[k]) for k, v in cols.items()})

    def to_quotes(self) -> list[OptionQuote]:
        out = []
        for i in range(len(self)):
            row = {k: self.columns[k][i] for k in CHAIN_COLUMNS}
            out.append(
                OptionQuote(
                    ticker=str(row["ticker"]),
                    as_of=_to_datetime(row["as_of"]),
                    expiration=_to_datetime(row["expiration"]).date(),
                    strike=float(row["strike"]),
                    right=str(row["right"]),
                    bid=float(row["bid"]),
                    ask=float(row["ask"]),
                    volume=int(row["volume"]),
                    **{
                        k: (None if np.isnan(row[k]) else _as_number(k, row[k]))
                        for k in OPTIONAL_FLOATS
                    },
                )
            )
        return out


def _as_number(name: str, value: float) -> float | int:
    return int(value) if name == "open_interest" else float(value)


def _to_datetime(value: np.datetime64) -> datetime:
    seconds = value.astype("datetime64[us]").astype("int64") / 1e6
    return datetime.fromtimestamp(seconds, UTC)


def two_sided(bid: NDArray, ask: NDArray) -> NDArray[np.bool_]:
    """Quotes with a bid and an ask above it: the only ones whose mid is a price to solve IV from.

    A zero bid means nobody will buy, so (0 + ask)/2 is no price; a locked or crossed quote has
    no spread to take the middle of.
    """
    bid, ask = np.asarray(bid, dtype=np.float64), np.asarray(ask, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return (bid > 0) & (ask > bid) & np.isfinite(ask)


def chain_columns_from_masked(
    raw: Mapping[str, NDArray], names: Iterable[str] = CHAIN_COLUMNS
) -> dict[str, NDArray]:
    """Query output with NULLs masked (DuckDB's fetchnumpy) as ChainBatch columns (or just
    ``names`` of them): NaN for a missing float, 0 for a missing count."""
    out: dict[str, NDArray] = {}
    for name in names:
        dtype, col = CHAIN_COLUMNS[name], raw[name]
        if dtype == "float64":
            out[name] = np.ma.filled(np.ma.asarray(col, dtype=np.float64), np.nan)
        elif dtype == "int64":
            out[name] = np.ma.filled(np.ma.asarray(col, dtype=np.int64), 0)
        elif dtype == "object":
            out[name] = np.asarray(col, dtype=object)
        else:
            out[name] = np.ma.getdata(col).astype(dtype)
    return out


def reject_reasons(batch: ChainBatch) -> tuple[NDArray[np.bool_], Counter[str]]:
    """Rows to keep, and how many were rejected for each reason (first failing rule wins)."""
    n = len(batch)
    reason = np.full(n, -1, dtype=np.int8)

    def flag(code: int, bad: NDArray[np.bool_]) -> None:
        reason[(reason < 0) & bad] = code

    with np.errstate(invalid="ignore"):
        right = batch["right"]
        flag(0, ~((right == "C") | (right == "P")))
        required = np.column_stack([batch[k] for k in ("strike", "bid", "ask")])
        optional = np.column_stack([batch[k] for k in OPTIONAL_FLOATS])
        flag(1, ~np.isfinite(required).all(axis=1) | np.isinf(optional).any(axis=1))
        flag(2, batch["strike"] <= 0)
        # an implied volatility is the option's price in volatility units
        price = np.column_stack([batch[k] for k in ("bid", "ask", "last", "implied_volatility")])
        flag(3, (price < 0).any(axis=1))
        flag(4, (batch["volume"] < 0) | (batch["open_interest"] < 0))
        flag(5, batch["bid"] > batch["ask"])
        as_of_day = batch["as_of"].astype("datetime64[D]")
        flag(6, batch["expiration"].astype("datetime64[D]") < as_of_day)
    counts = Counter(
        {
            REJECT_REASONS[c]: int(k)
            for c, k in enumerate(np.bincount(reason[reason >= 0], minlength=len(REJECT_REASONS)))
            if k
        }
    )
    return reason < 0, counts
