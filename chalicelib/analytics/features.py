"""Features of one ticker's option chain at one snapshot: pure and vectorised, no clock, no I/O.

``compute_features`` turns a chain, the spot, the snapshot time and the ticker's own daily history
into a ``FeatureSet``: JSON-ready numbers (and small lists/dicts of numbers) in ``values``. Every
feature of :mod:`chalicelib.catalogue` is always present; one that the data cannot support is
``None`` there and ``missing`` says why; bad or missing market data never raise. Every array pass
covers the whole chain at once, and ``FeatureBatch`` runs the per-contract and per-expiry passes
over many tickers' chains laid end to end (a watchlist is thousands of small chains, where
numpy's cost per call would dominate); the Python loops left are per ticker over a handful of
expiries (their records) or over the few contracts reported as unusual.

Conventions (the catalogue states each feature's unit)
- IVs, HVs, skew, butterfly and slopes are annualised fractions (0.25 = 25 %); ratios are plain
  numbers; names ending in ``_pct`` are percent; ``iv_rank`` and ``iv_percentile`` are 0–100.
- T runs to the 16:00 New York close of the expiration day, in years of 365 days; ``dte`` is
  whole calendar days. The forward is F = S·e^{(r−q)T}.
- Expiries closer than ``min_dte_days`` are left out of every volatility feature (their IVs are
  mostly noise), so "front" or "nearest" means the nearest expiry at least that far away.
- GEX follows the naive dealer convention (dealers long calls, short puts): calls +, puts −, in
  dollars per 1 % move of the underlying, Γ·OI·100·S²·0.01 (:mod:`chalicelib.analytics.exposure`).

What the data must support (sparse and odd chains are common in real imports)
- A usable IV is a finite, positive one: given by the source, or solved from a two-sided quote
  (bid > 0, ask > bid; ``chain.two_sided``). A one-sided quote's (0 + ask)/2 is not a price.
- Interpolated values are never extrapolated: a 25Δ IV exists only when quoted deltas lie on
  both sides of ±0.25, an at-the-money IV or straddle only from usable quotes within
  ``atm_max_distance`` (10 %) of the forward on each side of it, and a fixed-tenor IV only between
  two expiries (or within ``tenor_tolerance`` of the nearest one).
- Open interest that is missing or zero everywhere is no open interest: max pain, OI put/call
  ratios, GEX and unusual activity are then null. Unusual activity needs OI > 0 and a minimum
  volume, and scores volume on ln(1 + volume).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any, Protocol

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

from chalicelib import catalogue
from chalicelib.analytics.config import DEFAULT_CONFIG, AnalyticsConfig
from chalicelib.analytics.exposure import CONTRACT_MULTIPLIER, gamma_exposure, zero_gamma_level
from chalicelib.domain import calendar as cal
from chalicelib.domain.chain import ChainBatch, two_sided
from chalicelib.domain.models import FeatureSet
from chalicelib.domain.pricing import bs_greeks, implied_volatility

FloatArray = NDArray[np.float64]
TRADING_DAYS = 252
FIXED_TENORS = (30, 60, 90)  # calendar days of atm_iv_30d, atm_iv_60d, atm_iv_90d

__all__ = [
    "CONTRACT_MULTIPLIER",
    "ContractHistory",
    "DailyInputs",
    "PreviousOpenInterest",
    "compute_features",
    "constant_maturity_iv",
    "contract_keys",
    "gamma_exposure",
    "historical_volatility",
    "historical_volatility_series",
    "iv_percentile",
    "iv_rank",
    "max_pain",
    "max_pain_by_expiry",
    "open_interest_change",
    "put_call_ratio",
    "risk_reversal_25d",
    "unusual_mask",
    "volume_zscores",
]


# ---- inputs ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class DailyInputs:
    """The ticker's own daily history strictly before the snapshot's day, oldest first.

    One row per trading day; NaN where a value is unknown. ``atm_iv`` is 30-day constant
    maturity and ``skew_25d`` is IV(25Δ call) − IV(25Δ put), as stored in ``daily_history``.
    """

    days: NDArray[np.datetime64]
    close: FloatArray
    atm_iv: FloatArray
    skew_25d: FloatArray

    @classmethod
    def empty(cls) -> DailyInputs:
        nothing = np.empty(0)
        return cls(np.empty(0, dtype="datetime64[D]"), nothing, nothing, nothing)


@dataclass(frozen=True)
class ContractHistory:
    """Full-day volumes of individual contracts on earlier days: one row per contract per day."""

    expiration: NDArray[np.datetime64]
    strike: FloatArray
    is_call: NDArray[np.bool_]
    volume: FloatArray

    @classmethod
    def empty(cls) -> ContractHistory:
        return cls(
            np.empty(0, dtype="datetime64[D]"), np.empty(0), np.empty(0, dtype=bool), np.empty(0)
        )


@dataclass(frozen=True)
class PreviousOpenInterest:
    """Each contract's open interest at the previous session's last snapshot (taken at ``as_of``).

    The base of the day-over-day OI change; NaN where that snapshot did not know the OI.
    """

    as_of: datetime
    expiration: NDArray[np.datetime64]
    strike: FloatArray
    is_call: NDArray[np.bool_]
    open_interest: FloatArray


# ---- small pure building blocks (public: each has a reference test) --------------------------
def historical_volatility(closes: FloatArray, window: int) -> float | None:
    """Close-to-close volatility of the last ``window`` log returns: √252 · stdev(ddof=1).

    Needs ``window + 1`` positive closes (non-finite ones are dropped); ``None`` otherwise.
    """
    c = np.asarray(closes, dtype=np.float64)
    c = c[np.isfinite(c) & (c > 0)]
    if window < 2 or c.size < window + 1:
        return None
    returns = np.diff(np.log(c[-(window + 1) :]))
    return float(np.std(returns, ddof=1) * math.sqrt(TRADING_DAYS))


def historical_volatility_series(closes: FloatArray, window: int) -> FloatArray:
    """``historical_volatility`` as of each close: HV of the ``window`` returns ending there.

    ``closes`` must be positive and finite (the caller drops the others, as the scalar does);
    NaN for the first ``window`` closes, which have too few returns behind them.
    """
    c = np.asarray(closes, dtype=np.float64)
    out = np.full(c.size, np.nan)
    if window < 2 or c.size < window + 1:
        return out
    returns = sliding_window_view(np.diff(np.log(c)), window)
    out[window:] = np.std(returns, axis=1, ddof=1) * math.sqrt(TRADING_DAYS)
    return out


def iv_rank(past_iv: FloatArray, current: float, window: int = TRADING_DAYS) -> float | None:
    """100·(IV − min)/(max − min) over the last ``window`` past days plus today (so 0–100).

    ``None`` when there is no past IV or the range is flat.
    """
    past = _last_finite(past_iv, window)
    if past.size == 0 or not math.isfinite(current):
        return None
    low, high = min(float(past.min()), current), max(float(past.max()), current)
    if high <= low:
        return None
    return 100.0 * (current - low) / (high - low)


def iv_percentile(past_iv: FloatArray, current: float, window: int = TRADING_DAYS) -> float | None:
    """Percentage of the last ``window`` past days whose IV was below today's."""
    past = _last_finite(past_iv, window)
    if past.size == 0 or not math.isfinite(current):
        return None
    return 100.0 * float(np.count_nonzero(past < current)) / past.size


def put_call_ratio(put_total: float, call_total: float) -> float | None:
    """Puts ÷ calls (volume or open interest); ``None`` when the call side is zero or unknown."""
    if not (math.isfinite(put_total) and math.isfinite(call_total)) or call_total <= 0:
        return None
    return put_total / call_total


def max_pain(strike: FloatArray, call_oi: FloatArray, put_oi: FloatArray) -> float | None:
    """Max-pain strike of one expiry given open interest per strike (see ``max_pain_by_expiry``)."""
    k = np.asarray(strike, dtype=np.float64)
    n = k.size
    pain = max_pain_by_expiry(
        np.zeros(2 * n, dtype=np.intp),
        np.concatenate([k, k]),
        np.repeat([True, False], n),
        np.concatenate([np.asarray(call_oi, float), np.asarray(put_oi, float)]),
        1,
    )
    return None if not np.isfinite(pain[0]) else float(pain[0])


def max_pain_by_expiry(
    exp_idx: NDArray[np.intp],
    strike: FloatArray,
    is_call: NDArray[np.bool_],
    open_interest: FloatArray,
    n_expiries: int,
    chain_of: NDArray[np.intp] | None = None,
) -> FloatArray:
    """Per expiry, argmin over strikes P of Σ_K [OI_c·max(P−K,0) + OI_p·max(K−P,0)]·100.

    Ties go to the lowest strike. Computed in O(n) with grouped running sums instead of the
    n² pairwise table: below P the call pain is P·ΣOI_c − Σ(OI_c·K), above it the put pain is
    Σ(OI_p·K) − P·ΣOI_p. Missing OI counts as zero; an expiry without any OI > 0 gives NaN
    (with no open interest every strike "minimises" the pain, and the lowest would win).

    ``chain_of`` (each expiry's chain, non-decreasing) lays several chains end to end: the
    running sums then restart at each chain, so each gets the numbers it would alone.
    """
    out = np.full(n_expiries, np.nan)
    oi_known = np.isfinite(open_interest)
    positive = oi_known & (np.where(oi_known, open_interest, 0.0) > 0)
    if not positive.any():
        return out
    oi = np.where(oi_known, open_interest, 0.0)
    order = np.lexsort((strike, exp_idx))
    e, k = exp_idx[order], strike[order]
    call_oi = np.where(is_call[order], oi[order], 0.0)
    put_oi = oi[order] - call_oi
    row_start = np.flatnonzero(_starts((e[1:] != e[:-1]) | (k[1:] != k[:-1])))
    e, k = e[row_start], k[row_start]  # one row per (expiry, strike)
    c, p = np.add.reduceat(call_oi, row_start), np.add.reduceat(put_oi, row_start)
    starts = _starts(e[1:] != e[:-1])
    first = np.flatnonzero(starts)
    group = np.cumsum(starts) - 1

    cumsum = np.cumsum if chain_of is None else _running_sums(chain_of[e])

    def below(values: FloatArray) -> FloatArray:  # Σ over strikes strictly below, per expiry
        exclusive = cumsum(values) - values
        return exclusive - exclusive[first][group]

    def total(values: FloatArray) -> FloatArray:
        return np.add.reduceat(values, first)[group]

    c_below, ck_below = below(c), below(c * k)
    p_upto, pk_upto = below(p) + p, below(p * k) + p * k
    p_above, pk_above = total(p) - p_upto, total(p * k) - pk_upto
    pain = (k * c_below - ck_below + pk_above - k * p_above) * CONTRACT_MULTIPLIER
    lowest = np.minimum.reduceat(pain, first)[group]
    at_min = np.flatnonzero(pain <= lowest + 1e-9 * np.maximum(np.abs(lowest), 1.0))
    winners = at_min[_starts(group[at_min][1:] != group[at_min][:-1])]  # lowest strike
    has_oi = np.bincount(exp_idx, weights=positive.astype(float), minlength=n_expiries) > 0
    chosen = np.full(n_expiries, np.nan)
    chosen[e[winners]] = k[winners]
    out[has_oi] = chosen[has_oi]
    return out


def _running_sums(chain: NDArray[np.intp]) -> Any:
    """``np.cumsum`` restarting where ``chain`` (sorted) changes: each chain's own running sum,
    as one row of a zero-padded table each, summed along the rows."""
    starts = np.flatnonzero(_starts(chain[1:] != chain[:-1]))
    row = np.cumsum(_starts(chain[1:] != chain[:-1])) - 1
    column = np.arange(chain.size) - starts[row]
    shape = (starts.size, int(column.max()) + 1 if chain.size else 0)

    def cumsum(values: FloatArray) -> FloatArray:
        table = np.zeros(shape)
        table[row, column] = values
        return np.cumsum(table, axis=1)[row, column]

    return cumsum


def risk_reversal_25d(
    delta: FloatArray, iv: FloatArray, is_call: NDArray[np.bool_]
) -> tuple[float | None, float | None]:
    """IV at the 25Δ call and at the −25Δ put of one expiry, linear in delta.

    Call delta falls from ~1 to 0 as the strike rises and put delta falls from 0 to ~−1, so both
    are sorted by delta before interpolating (np.interp needs increasing x). Each side is
    ``None`` unless its deltas lie on both sides of the target: no extrapolation.
    """
    side = (~np.asarray(is_call, dtype=bool)).astype(np.intp)  # 0 call, 1 put
    targets = np.array([0.25, -0.25])
    values = _interp_by_group(side, np.asarray(delta, float), np.asarray(iv, float), targets, 2)
    return _num(values[0]), _num(values[1])


def constant_maturity_iv(
    t: FloatArray, iv: FloatArray, target_t: float, tolerance: float = 0.0
) -> float | None:
    """IV at maturity ``target_t``: total variance σ²T linear in T between the bracketing expiries.

    Outside the listed expiries the nearest one's vol is used only when it lies within
    ``tolerance``·``target_t`` of the target; otherwise (or without a usable expiry) ``None``.
    """
    ok = np.isfinite(t) & np.isfinite(iv) & (t > 0) & (iv > 0)
    if not ok.any():
        return None
    order = np.argsort(t[ok])
    tt, vol = t[ok][order], iv[ok][order]
    if tt[0] <= target_t <= tt[-1]:
        variance = float(np.interp(target_t, tt, vol * vol * tt))
        return math.sqrt(variance / target_t) if variance > 0 else None
    nearest = 0 if target_t < tt[0] else -1
    if abs(float(tt[nearest]) - target_t) <= tolerance * target_t:
        return float(vol[nearest])
    return None


def contract_keys(
    expiration: NDArray[np.datetime64], strike: FloatArray, is_call: NDArray[np.bool_]
) -> NDArray[np.int64]:
    """One int64 per contract: (expiry day, strike in 1/1000, right), for vectorised matching."""
    day = np.asarray(expiration).astype("datetime64[D]").astype(np.int64)
    milli = np.round(np.asarray(strike, float) * 1000.0).astype(np.int64)
    return (day << 33) | (milli << 1) | np.asarray(is_call, dtype=np.int64)


def volume_zscores(
    keys: NDArray[np.int64],
    volume: FloatArray,
    history_keys: NDArray[np.int64],
    history_volume: FloatArray,
    min_obs: int,
    std_floor: float = DEFAULT_CONFIG.unusual_log_std_floor,
) -> tuple[FloatArray, NDArray[np.int64]]:
    """z of today's ln(1 + volume) against the contract's own past days, and the count used.

    Daily volume is heavy-tailed (a quiet contract trades 3 lots, then 3,000), so the score is
    taken on the log: z = (ln(1+v) − mean)/s with s the sample stdev (ddof=1) floored at
    ``std_floor``, so a contract that traded the same every day does not divide by zero. NaN
    where the contract has fewer than ``min_obs`` past days.
    """
    z = np.full(keys.size, np.nan)
    n_obs = np.zeros(keys.size, dtype=np.int64)
    ok = np.isfinite(history_volume) & (history_volume >= 0)
    if keys.size == 0 or not ok.any():
        return z, n_obs
    uniq, inverse = np.unique(history_keys[ok], return_inverse=True)
    hv = np.log1p(history_volume[ok])
    count = np.bincount(inverse, minlength=uniq.size)
    mean = np.bincount(inverse, weights=hv, minlength=uniq.size) / count
    square = np.bincount(inverse, weights=(hv - mean[inverse]) ** 2, minlength=uniq.size)
    std = np.sqrt(square / np.maximum(count - 1, 1))
    pos = np.clip(np.searchsorted(uniq, keys), 0, uniq.size - 1)
    found = uniq[pos] == keys
    n_obs[found] = count[pos[found]]
    enough = found & (n_obs >= min_obs)
    today = np.log1p(np.maximum(np.asarray(volume, dtype=np.float64)[enough], 0.0))
    z[enough] = (today - mean[pos[enough]]) / np.maximum(std[pos[enough]], std_floor)
    return z, n_obs


def unusual_mask(
    volume: NDArray, open_interest: FloatArray, config: AnalyticsConfig = DEFAULT_CONFIG
) -> NDArray[np.bool_]:
    """Contracts with OI > 0, volume ≥ the minimum and volume/OI ≥ the threshold.

    A contract with unknown or zero OI is never unusual: the ratio is undefined, and a chain
    whose source reports 0 for "unknown" would otherwise flag every contract.
    """
    vol = np.asarray(volume, dtype=np.float64)
    oi = np.asarray(open_interest, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (
            np.isfinite(oi)
            & (oi > 0)
            & (vol >= config.unusual_min_volume)
            & (vol / np.where(oi > 0, oi, 1.0) >= config.unusual_vol_oi)
        )


def open_interest_change(
    keys: NDArray[np.int64],
    open_interest: FloatArray,
    previous_keys: NDArray[np.int64],
    previous_oi: FloatArray,
) -> FloatArray:
    """Today's OI minus the previous session's, per contract (keys from ``contract_keys``).

    NaN where the contract was not listed before or either OI is unknown: a new listing or an
    expired one is a change of the chain, not of positions.
    """
    change = np.full(keys.size, np.nan)
    known = np.isfinite(previous_oi)
    if keys.size == 0 or not known.any():
        return change
    order = np.argsort(previous_keys[known], kind="stable")
    prev_keys, prev_oi = previous_keys[known][order], previous_oi[known][order]
    pos = np.clip(np.searchsorted(prev_keys, keys), 0, prev_keys.size - 1)
    found = (prev_keys[pos] == keys) & np.isfinite(open_interest)
    change[found] = open_interest[found] - prev_oi[pos[found]]
    return change


# ---- the entry point -----------------------------------------------------------------------
class ChainColumns(Protocol):
    """What the features read of a chain: a ``ChainBatch``, or just the columns they use
    (``CHAIN_INPUTS``, and ``ticker`` when no ticker is given) with ``len`` the chain's."""

    def __len__(self) -> int: ...

    def __getitem__(self, name: str) -> NDArray[Any]: ...


@dataclass(frozen=True)
class TickerInputs:
    """One ticker's inputs to ``compute_features`` (see there for what each means)."""

    chain: ChainColumns
    spot: float
    as_of: datetime
    history: DailyInputs
    contract_history: ContractHistory | None = None
    previous_oi: PreviousOpenInterest | None = None
    next_earnings: date | None = None
    ticker: str | None = None
    div_yield: float = 0.0


def compute_features(
    chain: ChainBatch,
    spot: float,
    as_of: datetime,
    history: DailyInputs,
    contract_history: ContractHistory | None = None,
    *,
    previous_oi: PreviousOpenInterest | None = None,
    next_earnings: date | None = None,
    ticker: str | None = None,
    rate: float = 0.045,
    div_yield: float = 0.0,
    config: AnalyticsConfig = DEFAULT_CONFIG,
) -> FeatureSet:
    """All features of one ticker at one snapshot (see :mod:`chalicelib.catalogue` for units).

    ``history`` must hold days strictly before the snapshot's day: today's close is ``spot`` and
    today's IV comes from the chain. ``contract_history`` holds the contracts' volumes on earlier
    days (for the unusual-activity z-scores) and ``previous_oi`` the previous session's closing
    open interest (for the day-over-day OI change); ``None`` means none is known.
    ``next_earnings`` is the provider calendar's next earnings date, passed through.
    """
    item = TickerInputs(
        chain, spot, as_of, history, contract_history, previous_oi, next_earnings, ticker,
        div_yield,
    )  # fmt: skip
    return FeatureBatch([item], rate=rate, config=config).features(0)


class FeatureBatch:
    """``compute_features`` for many tickers: the chains' array passes run once over all of them.

    A watchlist is thousands of small chains, and numpy's per-call cost on a 300-contract chain
    is most of the work; so the chains are laid end to end, each (ticker, expiry) one group, and
    everything that is per contract or per group (T, forwards, solved IVs and greeks, ATM IVs,
    straddles, GEX, the per-expiry sums) is computed in one pass. ``features(j)`` then assembles
    ticker ``j``'s values from its slices; a ticker whose assembly raises fails alone.
    """

    def __init__(
        self,
        items: Sequence[TickerInputs],
        *,
        rate: float = 0.045,
        config: AnalyticsConfig = DEFAULT_CONFIG,
    ) -> None:
        self.items = list(items)
        self.rate = rate
        self.config = config
        self._as_of = [
            a.astimezone(UTC) if a.tzinfo else a.replace(tzinfo=UTC)
            for a in (item.as_of for item in self.items)
        ]
        self._all = _prepare_many(self.items, self._as_of, rate, config)
        self._shared = None if self._all.p is None else _Shared.of(self._all, config)
        self._closes = _Closes.of(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def features(self, j: int) -> FeatureSet:
        """Ticker ``j``'s ``FeatureSet``."""
        item, as_of, config = self.items[j], self._as_of[j], self.config
        chain, spot = item.chain, item.spot
        name = item.ticker or (str(chain["ticker"][0]) if len(chain) else "")
        out = _Out()
        out.put("underlying_price", spot)
        out.put("contracts", len(chain))
        out.put(
            "next_earnings",
            item.next_earnings.isoformat() if item.next_earnings else None,
            "no upcoming earnings date in the provider's calendar",
        )
        if not (math.isfinite(spot) and spot > 0):
            out.miss("underlying_price", "spot price missing or not positive")
        prepared = self._all.view(j, spot, item.div_yield)
        if prepared is None or self._shared is None:
            reason = "empty chain" if len(chain) == 0 else "no usable contracts or spot"
            for feature in _CHAIN_FEATURES:
                out.miss(feature, reason)
        else:
            shared = self._shared.view(j, self._all.contracts(j), self._all.groups(j))
            _volatility_features(prepared, shared, config, out)
            _flow_features(prepared, shared.flow, out)
            oi_change = _oi_change_features(prepared, as_of, item.previous_oi, config, out)
            _positioning_features(prepared, shared, oi_change, config, out)
            _unusual_features(prepared, item.contract_history, config, out)
        atm_iv, skew = out.values.get("atm_iv"), out.values.get("skew_25d")
        closes = self._closes.view(j)
        _history_features(item.history, closes, as_of, atm_iv, skew, config, out)
        return FeatureSet(ticker=name, as_of=as_of, values=out.values, missing=out.missing)


# ---- internals -----------------------------------------------------------------------------
_CHAIN_FEATURES = tuple(
    f.name for f in catalogue.FEATURES if f.group not in ("snapshot", "history")
)


_FLOATS = (float, np.floating)


class _Out:
    """Collects values and reasons: a ``None`` value always comes with its reason."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.missing: dict[str, str] = {}

    def put(self, name: str, value: Any, reason: str = "") -> None:
        if isinstance(value, _FLOATS) and not math.isfinite(value):
            value = None
        if value is None:
            self.miss(name, reason or "not computable")
        else:
            self.values[name] = value.item() if isinstance(value, np.generic) else value
            self.missing.pop(name, None)

    def miss(self, name: str, reason: str) -> None:
        self.values[name] = None
        self.missing[name] = reason


@dataclass(frozen=True)
class _Prepared:
    """The chain as arrays, with T, forwards, filled IVs/greeks and usable expiries.

    One ticker's, or a batch's: then an "expiry" is one (ticker, expiry) group, ``group_spot``
    gives each its ticker's spot, and ``spot`` and ``div_yield`` (one ticker's) are NaN.
    """

    spot: float
    rate: float
    div_yield: float
    expiries: NDArray[np.datetime64]  # sorted unique expiration days
    t_exp: FloatArray
    forward: FloatArray  # per expiry
    dte: NDArray[np.int64]
    usable: NDArray[np.bool_]  # per expiry: at least min_dte_days away
    group_spot: FloatArray  # per expiry: its ticker's spot (a batch holds many tickers)
    exp_idx: NDArray[np.intp]
    strike: FloatArray
    is_call: NDArray[np.bool_]
    bid: FloatArray
    ask: FloatArray
    mid: FloatArray
    quoted: NDArray[np.bool_]  # two-sided quote: bid > 0, ask > bid
    volume: FloatArray
    oi: FloatArray
    iv: FloatArray  # usable IVs only (finite, > 0), NaN elsewhere
    delta: FloatArray
    gamma: FloatArray
    log_moneyness: FloatArray  # ln(K/F)

    @property
    def t(self) -> FloatArray:
        """T of each contract, in years."""
        return self.t_exp[self.exp_idx]


@lru_cache(maxsize=4096)
def _expiry_close_seconds(day: date) -> int:
    return int(cal.expiry_close(day).timestamp())


# the chain columns the features read
CHAIN_INPUTS = ("expiration", "strike", "right", "bid", "ask", "implied_volatility", "delta",
                "gamma", "volume", "open_interest")  # fmt: skip


@dataclass(frozen=True)
class _Batch:
    """The prepared chains of a batch's tickers end to end (``p``; None when none has a usable
    one), and where each ticker's contracts and groups lie in it."""

    p: _Prepared | None
    contract_bounds: NDArray[np.intp]  # ticker j's contracts: [bounds[j], bounds[j + 1])
    group_bounds: NDArray[np.intp]
    group_owner: NDArray[np.intp]  # each group's ticker
    spot: FloatArray  # each ticker's

    def contracts(self, j: int) -> slice:
        return slice(int(self.contract_bounds[j]), int(self.contract_bounds[j + 1]))

    def groups(self, j: int) -> slice:
        return slice(int(self.group_bounds[j]), int(self.group_bounds[j + 1]))

    def view(self, j: int, spot: float, div_yield: float) -> _Prepared | None:
        """Ticker ``j``'s ``_Prepared`` (slices, no copies); None without a usable chain."""
        p, c, g = self.p, self.contracts(j), self.groups(j)
        if p is None or c.start == c.stop:
            return None
        return _Prepared(
            spot=spot,
            rate=p.rate,
            div_yield=div_yield,
            expiries=p.expiries[g],
            t_exp=p.t_exp[g],
            forward=p.forward[g],
            dte=p.dte[g],
            usable=p.usable[g],
            group_spot=p.group_spot[g],
            exp_idx=p.exp_idx[c] - g.start,
            strike=p.strike[c],
            is_call=p.is_call[c],
            bid=p.bid[c],
            ask=p.ask[c],
            mid=p.mid[c],
            quoted=p.quoted[c],
            volume=p.volume[c],
            oi=p.oi[c],
            iv=p.iv[c],
            delta=p.delta[c],
            gamma=p.gamma[c],
            log_moneyness=p.log_moneyness[c],
        )


def _prepare_many(
    items: Sequence[TickerInputs], as_ofs: Sequence[datetime], rate: float, config: AnalyticsConfig
) -> _Batch:
    """Every ticker's chain with a positive spot, its expired lines dropped, as one ``_Prepared``
    whose groups are (ticker, expiry) in ticker order, then expiry order."""
    n = len(items)
    spot = np.array([item.spot for item in items], dtype=np.float64)
    div_yield = np.array([item.div_yield for item in items], dtype=np.float64)
    lengths = np.array([len(item.chain) for item in items], dtype=np.intp)
    with np.errstate(invalid="ignore"):
        take = np.flatnonzero(np.isfinite(spot) & (spot > 0) & (lengths > 0))
    none = np.zeros(n + 1, dtype=np.intp)
    nothing = _Batch(None, none, none, np.zeros(0, dtype=np.intp), spot)
    if take.size == 0:
        return nothing
    chains = [items[j].chain for j in take.tolist()]
    cols = {k: np.concatenate([np.asarray(c[k]) for c in chains]) for k in CHAIN_INPUTS}
    owner = np.repeat(take, lengths[take])
    exp_day = cols["expiration"].astype("datetime64[D]").astype(np.int64)
    first_day = int(exp_day.min())
    keys, exp_idx = np.unique((owner.astype(np.int64) << 32) | (exp_day - first_day),
                              return_inverse=True)  # fmt: skip
    g_owner = (keys >> 32).astype(np.intp)
    g_day = keys & 0xFFFFFFFF
    days, day_idx = np.unique(g_day, return_inverse=True)
    expiry_days = (days + first_day).astype("datetime64[D]")
    closes = np.array([_expiry_close_seconds(d) for d in expiry_days.tolist()], dtype=np.float64)
    as_of_seconds = np.array([a.timestamp() for a in as_ofs], dtype=np.float64)
    t_exp = (closes[day_idx] - as_of_seconds[g_owner]) / cal.SECONDS_PER_YEAR
    live = t_exp[exp_idx] > 0
    if not live.any():
        return nothing
    if not live.all():  # an expired line (or a bad clock) must not poison the rest
        cols = {k: v[live] for k, v in cols.items()}
        owner = owner[live]
        keep = t_exp > 0
        exp_idx = (np.cumsum(keep) - 1)[exp_idx[live]]
        g_owner, g_day, t_exp = g_owner[keep], g_day[keep], t_exp[keep]
    expiries = (g_day + first_day).astype("datetime64[D]")
    as_of_day = np.array([a.date() for a in as_ofs], dtype="datetime64[D]")
    dte = (expiries - as_of_day[g_owner]).astype(np.int64)
    strike = np.asarray(cols["strike"], dtype=np.float64)
    is_call = np.asarray(cols["right"]) == "C"
    bid = np.asarray(cols["bid"], dtype=np.float64)
    ask = np.asarray(cols["ask"], dtype=np.float64)
    quoted = two_sided(bid, ask)
    with np.errstate(invalid="ignore"):
        mid = np.where((ask > 0) & (bid >= 0) & (ask >= bid), 0.5 * (bid + ask), np.nan)
        iv = np.array(cols["implied_volatility"], dtype=np.float64)
        iv[~(iv > 0)] = np.nan  # a vendor's 0 means "not computed"
    t = t_exp[exp_idx]
    group_spot, group_q = spot[g_owner], div_yield[g_owner]
    forward = group_spot * np.exp((rate - group_q) * t_exp)
    s, q = group_spot[exp_idx], group_q[exp_idx]
    solve = ~np.isfinite(iv) & quoted  # a source without (some) IVs: solve two-sided quotes
    if solve.any():
        iv[solve] = implied_volatility(
            mid[solve], s[solve], strike[solve], t[solve], rate, is_call[solve], q[solve]
        ).iv
    delta = np.array(cols["delta"], dtype=np.float64)
    gamma = np.array(cols["gamma"], dtype=np.float64)
    fill = np.isfinite(iv) & (~np.isfinite(delta) | ~np.isfinite(gamma))
    if fill.any():
        greeks = bs_greeks(s[fill], strike[fill], t[fill], rate, iv[fill], is_call[fill], q[fill])
        delta[fill] = np.where(np.isfinite(delta[fill]), delta[fill], greeks.delta)
        gamma[fill] = np.where(np.isfinite(gamma[fill]), gamma[fill], greeks.gamma)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_moneyness = np.log(strike / forward[exp_idx])
    tickers = np.arange(n + 1)
    prepared = _Prepared(
        spot=np.nan,
        rate=rate,
        div_yield=np.nan,
        expiries=expiries,
        t_exp=t_exp,
        forward=forward,
        dte=dte,
        usable=t_exp * 365.0 >= config.min_dte_days,
        group_spot=group_spot,
        exp_idx=exp_idx,
        strike=strike,
        is_call=is_call,
        bid=bid,
        ask=ask,
        mid=mid,
        quoted=quoted,
        volume=np.asarray(cols["volume"], dtype=np.float64),
        oi=np.asarray(cols["open_interest"], dtype=np.float64),
        iv=iv,
        delta=delta,
        gamma=gamma,
        log_moneyness=log_moneyness,
    )
    bounds = np.searchsorted(owner, tickers), np.searchsorted(g_owner, tickers)
    return _Batch(prepared, *bounds, g_owner, spot)


def _interp_by_group(
    group: NDArray[np.intp], x: FloatArray, y: FloatArray, target: FloatArray, n_groups: int
) -> FloatArray:
    """For each group g, y interpolated linearly in x at ``target[g]`` — one sort for all groups.

    Only where the target is bracketed: NaN when it lies outside the group's finite points
    (no flat extrapolation past the data) or the group has none. The groups are laid end to end
    on one increasing axis (group·span + x) so a single searchsorted finds every bracket.
    """
    out = np.full(n_groups, np.nan)
    ok = np.isfinite(x) & np.isfinite(y)
    if not ok.any():
        return out
    g, xs, ys = group[ok], x[ok], y[ok]
    order = np.lexsort((xs, g))
    g, xs, ys = g[order], xs[order], ys[order]
    ids = np.arange(n_groups)
    start, end = np.searchsorted(g, ids, "left"), np.searchsorted(g, ids, "right")
    idx = np.flatnonzero((end > start) & np.isfinite(target))
    idx = idx[(target[idx] >= xs[start[idx]]) & (target[idx] <= xs[end[idx] - 1])]
    if idx.size == 0:
        return out
    low_x = float(xs.min())
    span = float(xs.max()) - low_x + 1.0
    key = g * span + (xs - low_x)
    goal = idx * span + (target[idx] - low_x)
    hi = np.clip(np.searchsorted(key, goal), start[idx], end[idx] - 1)
    lo = np.maximum(hi - 1, start[idx])
    dx = xs[hi] - xs[lo]
    safe = np.where(dx > 0, dx, 1.0)
    w = np.where(dx > 0, np.clip((target[idx] - xs[lo]) / safe, 0.0, 1.0), 1.0)
    out[idx] = ys[lo] + w * (ys[hi] - ys[lo])
    return out


def _atm_band(p: _Prepared, config: AnalyticsConfig) -> NDArray[np.bool_]:
    """Contracts whose strike is within ``atm_max_distance`` of their expiry's forward."""
    with np.errstate(invalid="ignore"):
        return np.abs(np.expm1(p.log_moneyness)) <= config.atm_max_distance + 1e-12


def _atm_by_expiry(p: _Prepared, config: AnalyticsConfig) -> FloatArray:
    """ATM IV per usable expiry: IV interpolated in strike at the forward, from the ATM band only.

    The call side and the put side are interpolated separately and averaged; where neither side
    alone straddles the forward (an out-of-the-money-only chain), the OTM puts below and calls
    above it do. NaN unless usable IVs lie on both sides of the forward within the band.
    """
    n = p.expiries.size
    x = np.where(_atm_band(p, config), p.log_moneyness, np.nan)
    otm = np.where(p.is_call, p.log_moneyness >= 0, p.log_moneyness <= 0)
    group = np.concatenate((p.exp_idx * 2 + (~p.is_call), 2 * n + p.exp_idx[otm]))
    values = _interp_by_group(
        group,
        np.concatenate((x, x[otm])),
        np.concatenate((p.iv, p.iv[otm])),
        np.zeros(3 * n),
        3 * n,
    )
    sides = values[: 2 * n].reshape(n, 2)
    count = np.isfinite(sides).sum(axis=1)
    total = np.where(np.isfinite(sides), sides, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        atm = np.where(count > 0, total / np.maximum(count, 1), values[2 * n :])
    atm[~p.usable] = np.nan
    return atm


def _atm_reason(config: AnalyticsConfig) -> str:
    return f"no usable IVs on both sides of the forward within {config.atm_max_distance:.0%} of it"


def _volatility_features(p: _Prepared, shared: _Shared, config: AnalyticsConfig, out: _Out) -> None:
    """atm_iv (30-day CM), fixed tenors, front/back, slope, term structure, 25Δ skew, butterfly."""
    atm = shared.atm
    good = np.flatnonzero(np.isfinite(atm))
    if good.size == 0:
        reason = (
            f"no expiry ≥ {config.min_dte_days:g} days away with ATM IV ({_atm_reason(config)})"
        )
        for name in (
            "atm_iv",
            *(f"atm_iv_{d}d" for d in FIXED_TENORS),
            "atm_iv_ratio_30_90",
            "atm_iv_front",
            "atm_iv_back",
            "front_expiration",
            "back_expiration",
            "term_slope",
            "term_structure",
        ):
            out.miss(name, reason)
        for name in ("skew_expiration", "skew_25d", "butterfly_25d", "iv_25d_call", "iv_25d_put"):
            out.miss(name, "no expiry with ATM IV")
        return

    def tenor(days: float) -> tuple[float | None, str]:
        value = constant_maturity_iv(p.t_exp[good], atm[good], days / 365.0, config.tenor_tolerance)
        return value, (
            f"no two expiries with ATM IV bracket {days:g} days and none lies within "
            f"{config.tenor_tolerance:.0%} of it"
        )

    out.put("atm_iv", *tenor(config.target_days))
    for days in FIXED_TENORS:
        out.put(f"atm_iv_{days}d", *tenor(days))
    iv30, iv90 = out.values["atm_iv_30d"], out.values["atm_iv_90d"]
    out.put(
        "atm_iv_ratio_30_90",
        iv30 / iv90 if iv30 is not None and iv90 else None,
        "atm_iv_30d or atm_iv_90d missing",
    )
    out.put(
        "term_structure",
        [
            {"expiration": str(p.expiries[i]), "dte": int(p.dte[i]), "atm_iv": float(atm[i])}
            for i in good
        ],
    )
    front = int(good[0])
    back = int(good[np.argmin(np.abs(p.t_exp[good] * 365.0 - config.back_days))])
    out.put("atm_iv_front", float(atm[front]))
    out.put("front_expiration", str(p.expiries[front]))
    out.put("atm_iv_back", float(atm[back]))
    out.put("back_expiration", str(p.expiries[back]))
    if back == front:
        out.miss("term_slope", "only one usable expiry")
    else:
        out.put("term_slope", float(atm[back] - atm[front]))

    nearest = int(shared.skew_group[0])  # ``good``'s nearest ``target_days``
    expiry = str(p.expiries[nearest])
    out.put("skew_expiration", expiry)
    call25, put25 = _num(shared.wings[0]), _num(shared.wings[1])  # ``risk_reversal_25d``
    out.put("iv_25d_call", call25, f"the call deltas of {expiry} do not bracket 0.25")
    out.put("iv_25d_put", put25, f"the put deltas of {expiry} do not bracket −0.25")
    if call25 is None or put25 is None:
        side = "call" if call25 is None else "put"
        reason = f"no 25Δ {side} IV on {expiry}: {out.missing[f'iv_25d_{side}']}"
        out.miss("skew_25d", reason)
        out.miss("butterfly_25d", reason)
        return
    out.put("skew_25d", call25 - put25)
    out.put("butterfly_25d", 0.5 * (call25 + put25) - float(atm[nearest]))


def _flow_sums(batch: _Batch) -> FloatArray:
    """Per ticker: call and put volume, call and put OI (where known), the number of contracts
    with a known OI, and the median quoted spread as a fraction of the mid (NaN: no two-sided
    quote); one row per ticker, all tickers in a few passes."""
    p = batch.p
    assert p is not None
    n = batch.spot.size
    owner = batch.group_owner[p.exp_idx]
    known = np.isfinite(p.oi)
    oi = np.where(known, p.oi, 0.0)

    def per_ticker(values: FloatArray, mask: NDArray[np.bool_]) -> FloatArray:
        return np.bincount(owner, weights=np.where(mask, values, 0.0), minlength=n)

    out = np.full((n, 6), np.nan)
    out[:, 0] = per_ticker(p.volume, p.is_call)
    out[:, 1] = per_ticker(p.volume, ~p.is_call)
    out[:, 2] = per_ticker(oi, p.is_call)
    out[:, 3] = per_ticker(oi, ~p.is_call)
    out[:, 4] = np.bincount(owner[known], minlength=n)
    quoted = np.flatnonzero(p.quoted)
    spread = (p.ask[quoted] - p.bid[quoted]) / p.mid[quoted]
    who = owner[quoted]
    order = np.lexsort((spread, who))
    spread, who = spread[order], who[order]
    start, end = np.searchsorted(who, np.arange(n)), np.searchsorted(who, np.arange(n), "right")
    some = np.flatnonzero(end > start)
    size = end[some] - start[some]
    high = start[some] + size // 2
    low = np.where(size % 2 == 1, high, high - 1)  # np.median: the mean of the middle two
    out[some, 5] = np.where(low == high, spread[high], (spread[low] + spread[high]) / 2.0)
    return out


def _flow_features(p: _Prepared, flow: FloatArray, out: _Out) -> None:
    """Put/call ratios (volume, OI) and the median quoted spread (``flow``: ``_flow_sums``'s
    row for this ticker)."""
    call_volume, put_volume = float(flow[0]), float(flow[1])
    out.put("call_volume", int(call_volume))
    out.put("put_volume", int(put_volume))
    out.put(
        "put_call_volume_ratio",
        put_call_ratio(put_volume, call_volume),
        "no call volume",
    )
    if flow[4] == 0:
        for name in ("call_open_interest", "put_open_interest", "put_call_oi_ratio"):
            out.miss(name, "open interest missing for every contract")
    else:
        call_oi, put_oi = float(flow[2]), float(flow[3])
        out.put("call_open_interest", int(call_oi))
        out.put("put_open_interest", int(put_oi))
        if call_oi + put_oi <= 0:
            out.miss("put_call_oi_ratio", "no open interest: zero for every contract")
        else:
            out.put("put_call_oi_ratio", put_call_ratio(put_oi, call_oi), "no call open interest")
    if math.isfinite(flow[5]):
        out.put("spread_pct", 100.0 * float(flow[5]))
    else:
        out.miss("spread_pct", "no two-sided quotes")


def _oi_reason(p: _Prepared) -> str:
    """Why a feature that needs open interest has none."""
    if not np.isfinite(p.oi).any():
        return "open interest missing for every contract"
    return "no contract with open interest > 0"


def _oi_change_features(
    p: _Prepared,
    as_of: datetime,
    previous: PreviousOpenInterest | None,
    config: AnalyticsConfig,
    out: _Out,
) -> FloatArray:
    """Day-over-day OI change against the previous session's last snapshot; per contract back."""
    names = ("oi_change_total", "oi_change_call", "oi_change_put", "oi_change_by_strike")
    change = np.full(p.strike.size, np.nan)
    if previous is None or previous.open_interest.size == 0:
        for name in (*names, "oi_previous_as_of"):
            out.miss(name, "no snapshot of an earlier session")
        return change
    previous_as_of = previous.as_of.astimezone(UTC) if previous.as_of.tzinfo else previous.as_of
    if previous_as_of.replace(tzinfo=UTC).date() >= as_of.date():
        for name in (*names, "oi_previous_as_of"):
            out.miss(name, "the previous snapshot is not from an earlier session")
        return change
    out.put("oi_previous_as_of", previous_as_of.strftime("%Y-%m-%dT%H:%M:%SZ"))
    change = open_interest_change(
        contract_keys(p.expiries[p.exp_idx], p.strike, p.is_call),
        p.oi,
        contract_keys(previous.expiration, previous.strike, previous.is_call),
        np.asarray(previous.open_interest, dtype=np.float64),
    )
    known = np.isfinite(change)
    if not known.any():
        for name in names:
            out.miss(name, "no contract with open interest known in both sessions")
        return change
    calls = known & p.is_call
    puts = known & ~p.is_call
    out.put("oi_change_call", int(change[calls].sum()))
    out.put("oi_change_put", int(change[puts].sum()))
    out.put("oi_change_total", int(change[known].sum()))
    strikes, where = np.unique(p.strike[known], return_inverse=True)
    call_change = np.bincount(where, weights=np.where(calls[known], change[known], 0.0))
    put_change = np.bincount(where, weights=np.where(puts[known], change[known], 0.0))
    near = np.flatnonzero(np.abs(strikes / p.spot - 1.0) <= config.gex_strike_window)
    out.put(
        "oi_change_by_strike",
        [
            {"strike": k, "call_change": int(c), "put_change": int(q), "net_change": int(t)}
            for k, c, q, t in zip(
                strikes[near].tolist(),
                call_change[near].tolist(),
                put_change[near].tolist(),
                (call_change[near] + put_change[near]).tolist(),
                strict=True,
            )
        ],
    )
    return change


@dataclass(frozen=True)
class _Straddles:
    """Per expiry, the ATM straddle: the strike nearest spot, within the ATM band, where both
    the call and the put have two-sided quotes. NaN for an expiry without such strikes on both
    sides of the forward (one strike 9 % below it is not at the money)."""

    strike: FloatArray
    mid: FloatArray


def _straddles(p: _Prepared, config: AnalyticsConfig) -> _Straddles:
    n = p.expiries.size
    strike, mid = np.full(n, np.nan), np.full(n, np.nan)
    ok = p.quoted & _atm_band(p, config)
    if not ok.any():
        return _Straddles(strike, mid)
    rows = np.flatnonzero(ok)
    order = rows[np.lexsort((p.is_call[rows], p.strike[rows], p.exp_idx[rows]))]
    e, k = p.exp_idx[order], p.strike[order]
    new = _starts((e[1:] != e[:-1]) | (k[1:] != k[:-1]))
    pair = np.cumsum(new) - 1
    call_row = np.full(pair[-1] + 1, -1)
    put_row = np.full(pair[-1] + 1, -1)
    call_row[pair[p.is_call[order]]] = order[p.is_call[order]]
    put_row[pair[~p.is_call[order]]] = order[~p.is_call[order]]
    both = np.flatnonzero((call_row >= 0) & (put_row >= 0))
    if both.size == 0:
        return _Straddles(strike, mid)
    pe, pk = e[new][both], k[new][both]
    below = np.bincount(pe, weights=pk <= p.forward[pe], minlength=n) > 0
    above = np.bincount(pe, weights=pk >= p.forward[pe], minlength=n) > 0
    keep = below[pe] & above[pe]
    both, pe, pk = both[keep], pe[keep], pk[keep]
    if both.size == 0:
        return _Straddles(strike, mid)
    best = np.lexsort((pk, np.abs(pk - p.group_spot[pe]), pe))  # nearest spot, lowest strike
    first = best[_starts(pe[best][1:] != pe[best][:-1])]
    strike[pe[first]] = pk[first]
    mid[pe[first]] = p.mid[call_row[both][first]] + p.mid[put_row[both][first]]
    return _Straddles(strike, mid)


@dataclass(frozen=True)
class _Shared:
    """What ``FeatureBatch`` computes once for all its tickers: per group (ticker, expiry) the
    ATM IV, the straddle, the per-expiry sums of ``by_expiry`` and the GEX by strike; per
    contract the GEX and whether it is known."""

    atm: FloatArray
    straddles: _Straddles
    gex: FloatArray
    gex_known: NDArray[np.bool_]
    strike_gex: list[list[dict[str, float]]]
    sums: dict[str, list[Any]]  # per group, the ``_expiry_sums``
    by_strike: _ByStrike
    pain: FloatArray  # per group
    skew_group: NDArray[np.intp]  # per ticker: the skew expiry (nearest target_days), or −1
    wings: FloatArray  # per ticker: IV at the 25Δ call and the −25Δ put of that expiry
    flow: FloatArray  # per ticker: ``_flow_sums``

    @classmethod
    def of(cls, batch: _Batch, config: AnalyticsConfig) -> _Shared:
        p = batch.p
        assert p is not None
        gex = gamma_exposure(p.gamma, p.oi, p.group_spot[p.exp_idx], p.is_call)
        with np.errstate(invalid="ignore"):
            known = np.isfinite(gex) & (p.oi > 0)
        atm = _atm_by_expiry(p, config)
        n = p.expiries.size
        skew_group, wings = _skew_wings(batch, atm, config)
        straddles = _straddles(p, config)
        pain = max_pain_by_expiry(p.exp_idx, p.strike, p.is_call, p.oi, n, batch.group_owner)
        return cls(
            atm=atm,
            straddles=straddles,
            gex=gex,
            gex_known=known,
            strike_gex=_gex_by_strike_per_expiry(p, gex, known, config),
            sums=_expiry_sums(p, gex, known) | _expiry_columns(p, atm, straddles, pain),
            by_strike=_ByStrike.of(batch, gex, known, config),
            pain=pain,
            skew_group=skew_group,
            wings=wings,
            flow=_flow_sums(batch),
        )

    def view(self, j: int, contracts: slice, groups: slice) -> _Shared:
        """Ticker ``j``'s share."""
        return _Shared(
            atm=self.atm[groups],
            straddles=_Straddles(self.straddles.strike[groups], self.straddles.mid[groups]),
            gex=self.gex[contracts],
            gex_known=self.gex_known[contracts],
            strike_gex=self.strike_gex[groups],
            sums={k: v[groups] for k, v in self.sums.items()},
            by_strike=self.by_strike.view(j),
            pain=self.pain[groups],
            skew_group=self.skew_group[j : j + 1] - groups.start,
            wings=self.wings[j],
            flow=self.flow[j],
        )


def _skew_wings(
    batch: _Batch, atm: FloatArray, config: AnalyticsConfig
) -> tuple[NDArray[np.intp], FloatArray]:
    """Each ticker's skew expiry (the one with ATM IV nearest ``target_days``; the first on a
    tie) and ``risk_reversal_25d`` on it, for all tickers in one interpolation."""
    p = batch.p
    assert p is not None
    n = batch.spot.size
    skew_group = np.full(n, -1, dtype=np.intp)
    wings = np.full((n, 2), np.nan)
    good = np.flatnonzero(np.isfinite(atm))
    if good.size == 0:
        return skew_group, wings
    distance = np.abs(p.t_exp[good] * 365.0 - config.target_days)
    owner = batch.group_owner[good]
    order = np.lexsort((distance, owner))
    first = order[_starts(owner[order][1:] != owner[order][:-1])]
    skew_group[owner[first]] = good[first]
    slot = np.full(p.expiries.size, -1, dtype=np.intp)  # the skew groups, numbered
    slot[good[first]] = np.arange(first.size)
    on = np.flatnonzero(slot[p.exp_idx] >= 0)
    side = (~p.is_call[on]).astype(np.intp)  # 0 call, 1 put
    values = _interp_by_group(
        2 * slot[p.exp_idx[on]] + side,
        p.delta[on],
        p.iv[on],
        np.tile([0.25, -0.25], first.size),
        2 * first.size,
    )
    wings[owner[first]] = values.reshape(-1, 2)
    return skew_group, wings


@dataclass(frozen=True)
class _ByStrike:
    """Call and put GEX per (ticker, strike) over the contracts whose GEX is known, in ticker
    then strike order, and the rows of ``gex_by_strike`` (the strikes within the window)."""

    strike: FloatArray
    call: FloatArray
    put: FloatArray
    rows: list[dict[str, float]]
    bounds: NDArray[np.intp]  # ticker j's strikes: [bounds[j], bounds[j + 1])
    row_bounds: NDArray[np.intp]

    @classmethod
    def of(
        cls, batch: _Batch, gex: FloatArray, known: NDArray[np.bool_], config: AnalyticsConfig
    ) -> _ByStrike:
        p = batch.p
        assert p is not None
        tickers = np.arange(batch.spot.size + 1)
        rows = np.flatnonzero(known)
        owner, k = batch.group_owner[p.exp_idx[rows]], p.strike[rows]
        order = np.lexsort((k, owner))
        changed = (owner[order][1:] != owner[order][:-1]) | (k[order][1:] != k[order][:-1])
        first = _starts(changed)[: rows.size]  # none when no contract has a known GEX
        group = np.empty(rows.size, dtype=np.intp)
        group[order] = np.cumsum(first) - 1
        calls = p.is_call[rows]
        size = int(first.sum())
        call = np.bincount(group, weights=np.where(calls, gex[rows], 0.0), minlength=size)
        put = np.bincount(group, weights=np.where(calls, 0.0, gex[rows]), minlength=size)
        strike, owner = k[order][first], owner[order][first]
        near = np.flatnonzero(np.abs(strike / batch.spot[owner] - 1.0) <= config.gex_strike_window)
        table = zip(
            strike[near].tolist(),
            _round2(call[near]),
            _round2(put[near]),
            _round2(call[near] + put[near]),
            strict=True,
        )
        return cls(
            strike=strike,
            call=call,
            put=put,
            rows=[{"strike": s, "call_gex": c, "put_gex": q, "net_gex": t} for s, c, q, t in table],
            bounds=np.searchsorted(owner, tickers),
            row_bounds=np.searchsorted(owner[near], tickers),
        )

    def view(self, j: int) -> _ByStrike:
        s = slice(int(self.bounds[j]), int(self.bounds[j + 1]))
        r = slice(int(self.row_bounds[j]), int(self.row_bounds[j + 1]))
        none = np.zeros(2, dtype=np.intp)
        return _ByStrike(self.strike[s], self.call[s], self.put[s], self.rows[r], none, none)


def _expiry_sums(
    p: _Prepared, gex: FloatArray, gex_known: NDArray[np.bool_]
) -> dict[str, list[Any]]:
    """Per expiry: contracts, volumes, open interest and GEX by side, and how many contracts
    know their OI (any, > 0) and their GEX."""
    n = p.expiries.size

    def per_expiry(values: FloatArray, mask: NDArray[np.bool_] | None = None) -> FloatArray:
        weights = values if mask is None else np.where(mask, values, 0.0)
        return np.bincount(p.exp_idx, weights=weights, minlength=n)

    def count(mask: NDArray[np.bool_]) -> list[int]:
        return np.bincount(p.exp_idx[mask], minlength=n).tolist()

    oi_known = np.isfinite(p.oi)
    oi = np.where(oi_known, p.oi, 0.0)
    call_gex = per_expiry(np.where(gex_known, gex, 0.0), p.is_call)
    put_gex = per_expiry(np.where(gex_known, gex, 0.0), ~p.is_call)
    net_gex = call_gex + put_gex
    return {
        "call_gex_cents": _round2(call_gex),
        "put_gex_cents": _round2(put_gex),
        "net_gex_cents": _round2(net_gex),
        "contracts": np.bincount(p.exp_idx, minlength=n).tolist(),
        "has_oi": count(oi_known),
        "has_positive_oi": count(oi_known & (oi > 0)),
        "call_vol": per_expiry(p.volume, p.is_call).tolist(),
        "put_vol": per_expiry(p.volume, ~p.is_call).tolist(),
        "call_oi": per_expiry(oi, p.is_call).tolist(),
        "put_oi": per_expiry(oi, ~p.is_call).tolist(),
        "has_gex": count(gex_known),
    }


def _expiry_columns(
    p: _Prepared, atm: FloatArray, straddles: _Straddles, pain: FloatArray
) -> dict[str, list[Any]]:
    """Per expiry, the record fields that come straight from per-expiry arrays (the
    ``_RECORD_FIELDS``, None where not finite) and the expiry's own: date, DTE, T, usable."""
    spot = p.group_spot
    sigma_move = spot * atm * np.sqrt(p.t_exp)
    values = (atm, straddles.strike, straddles.mid, 100.0 * straddles.mid / spot, sigma_move,
              100.0 * sigma_move / spot, pain)  # fmt: skip
    return {
        "expiration": np.datetime_as_string(p.expiries).tolist(),
        "dte": p.dte.tolist(),
        "years": p.t_exp.tolist(),
        "usable": p.usable.tolist(),
        **{name: _nums(v) for name, v in zip(_RECORD_FIELDS, values, strict=True)},
    }


def _positioning_features(
    p: _Prepared,
    shared: _Shared,
    oi_change: FloatArray,
    config: AnalyticsConfig,
    out: _Out,
) -> None:
    """Max pain, GEX (by strike, by expiry, walls, zero gamma, 0DTE share), expected move and
    the per-expiry table ``by_expiry``."""
    pain = shared.pain
    rows = [
        {"expiration": str(p.expiries[i]), "strike": float(pain[i])}
        for i in np.flatnonzero(np.isfinite(pain))
    ]
    out.put("max_pain_by_expiry", rows or None, _oi_reason(p))
    usable = np.flatnonzero(p.usable & np.isfinite(pain))
    if usable.size:
        out.put("max_pain", float(pain[usable[0]]))
        out.put("max_pain_expiration", str(p.expiries[usable[0]]))
    else:
        reason = f"no usable expiry with open interest ({_oi_reason(p)})"
        out.miss("max_pain", reason)
        out.miss("max_pain_expiration", reason)

    _gex_features(p, shared.gex, shared.gex_known, shared.by_strike, config, out)
    change_reason = out.missing.get(
        "oi_change_total", "no contract with open interest known in this and the previous session"
    )
    records = _expiry_records(p, shared, pain, oi_change, change_reason, config)
    out.put("by_expiry", records, "no live expiry")
    _expected_move(p, records, config, out)


def _gex_features(
    p: _Prepared,
    gex: FloatArray,
    known: NDArray[np.bool_],
    by_strike: _ByStrike,
    config: AnalyticsConfig,
    out: _Out,
) -> None:
    names = ("gex_total", "gex_by_strike", "call_wall", "put_wall", "zero_gamma", "gex_0dte_share")
    if by_strike.strike.size == 0:
        with np.errstate(invalid="ignore"):
            has_oi = bool((p.oi > 0).any())
        reason = (
            "no contract with open interest > 0 has a gamma (no usable IV)"
            if has_oi
            else f"no contract with both gamma and open interest > 0 ({_oi_reason(p)})"
        )
        for name in names:
            out.miss(name, reason)
        return
    strikes, call_gex, put_gex = by_strike.strike, by_strike.call, by_strike.put
    out.put("gex_total", float(call_gex.sum() + put_gex.sum()))
    out.put("gex_by_strike", by_strike.rows)
    out.put(
        "call_wall",
        float(strikes[np.argmax(call_gex)]) if call_gex.max() > 0 else None,
        "no positive call gamma exposure",
    )
    out.put(
        "put_wall",
        float(strikes[np.argmin(put_gex)]) if put_gex.min() < 0 else None,
        "no negative put gamma exposure",
    )
    out.put(
        "zero_gamma",
        zero_gamma_level(
            p.spot,
            p.strike,
            p.t,
            p.iv,
            np.where(known, p.oi, np.nan),
            p.is_call,
            p.rate,
            p.div_yield,
            span=config.zero_gamma_range,
            points=config.zero_gamma_points,
        ),
        f"net GEX keeps one sign for spots within ±{config.zero_gamma_range:.0%}",
    )
    gross = np.abs(gex[known])
    same_day = p.dte[p.exp_idx[known]] == 0
    total = float(gross.sum())
    out.put(
        "gex_0dte_share",
        float(gross[same_day].sum()) / total if total > 0 else None,
        "gross gamma exposure is zero",
    )


def _expiry_records(
    p: _Prepared,
    shared: _Shared,
    pain: FloatArray,
    oi_change: FloatArray,
    change_reason: str,
    config: AnalyticsConfig,
) -> list[dict[str, Any]]:
    """One record per live expiry: ATM IV, straddle and 1σ move, max pain, PCRs, GEX, ΔOI."""
    n = p.expiries.size
    sums = shared.sums
    has_oi, has_positive_oi, has_gex = sums["has_oi"], sums["has_positive_oi"], sums["has_gex"]
    call_vol, put_vol = sums["call_vol"], sums["put_vol"]
    call_oi, put_oi = sums["call_oi"], sums["put_oi"]
    contracts, strike_gex = sums["contracts"], shared.strike_gex
    change_known = np.isfinite(oi_change)
    weights = np.where(change_known, oi_change, 0.0)
    change = np.bincount(p.exp_idx, weights=weights, minlength=n).tolist()
    has_change = np.bincount(p.exp_idx[change_known], minlength=n).tolist()
    call_cents, put_cents = sums["call_gex_cents"], sums["put_gex_cents"]
    net_cents = sums["net_gex_cents"]
    columns = zip(*(sums[name] for name in ("expiration", "dte", "years", "usable")),
                  *(sums[name] for name in _RECORD_FIELDS), strict=True)  # fmt: skip
    no_straddle = "no strikes on both sides of the forward, within the ATM band, with two-sided "
    no_straddle += "call and put quotes"
    too_close = f"closer than {config.min_dte_days:g} days: left out of volatility features"
    gex_reason = "no contract with both gamma and open interest > 0"
    reasons_by_usable = {
        usable: (
            iv_reason,
            no_straddle,
            no_straddle,
            no_straddle,
            f"atm_iv missing: {iv_reason}",
            f"atm_iv missing: {iv_reason}",
        )
        for usable, iv_reason in ((False, too_close), (True, _atm_reason(config)))
    }
    records = []
    for i, (expiry, dte, years, usable, *values) in enumerate(columns):
        record: dict[str, Any] = {
            "expiration": expiry,
            "dte": dte,
            "years": years,
            "contracts": contracts[i],
        }
        missing: dict[str, str] = {}
        no_oi = "open interest missing" if not has_oi[i] else "no open interest > 0"
        reasons = (*reasons_by_usable[usable], no_oi)
        for name, value, reason in zip(_RECORD_FIELDS, values, reasons, strict=True):
            record[name] = value
            if value is None:
                missing[name] = reason
        record["call_volume"] = int(call_vol[i])
        record["put_volume"] = int(put_vol[i])
        fields: tuple[tuple[str, Any, str], ...] = (
            ("put_call_volume_ratio", _num(put_call_ratio(put_vol[i], call_vol[i])),
             "no call volume"),
            ("call_open_interest", int(call_oi[i]) if has_oi[i] else None, no_oi),
            ("put_open_interest", int(put_oi[i]) if has_oi[i] else None, no_oi),
            (
                "put_call_oi_ratio",
                _num(put_call_ratio(put_oi[i], call_oi[i])) if has_positive_oi[i] else None,
                "no call open interest" if has_positive_oi[i] else no_oi,
            ),
            ("call_gex", _num(call_cents[i]) if has_gex[i] else None, gex_reason),
            ("put_gex", _num(put_cents[i]) if has_gex[i] else None, gex_reason),
            ("net_gex", _num(net_cents[i]) if has_gex[i] else None, gex_reason),
            ("oi_change", int(change[i]) if has_change[i] else None, change_reason),
        )  # fmt: skip
        for name, value, reason in fields:
            record[name] = value
            if value is None:
                missing[name] = reason
        if strike_gex[i]:
            record["gex_by_strike"] = strike_gex[i]
        else:
            record["gex_by_strike"] = None
            missing["gex_by_strike"] = gex_reason
        if missing:
            record["missing"] = missing  # last, after the fields it explains
        records.append(record)
    return records


# the fields of a ``by_expiry`` record that come straight from per-expiry arrays, in order
_RECORD_FIELDS = (
    "atm_iv",
    "atm_strike",
    "straddle",
    "straddle_pct",
    "sigma_move",
    "sigma_move_pct",
    "max_pain",
)


def _starts(changed: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Where a run starts, from "differs from the previous row" (the first row always does);
    what ``np.r_[True, changed]`` gives, without its per-call parsing."""
    return np.concatenate((np.ones(1, dtype=bool), changed))


def _nums(values: FloatArray) -> list[float | None]:
    """``_num`` of each value: finite floats, None for NaN and inf."""
    return [v if math.isfinite(v) else None for v in np.asarray(values, dtype=np.float64).tolist()]


def _gex_by_strike_per_expiry(
    p: _Prepared, gex: FloatArray, known: NDArray[np.bool_], config: AnalyticsConfig
) -> list[list[dict[str, float]]]:
    """Each expiry's call, put and net GEX per strike within the GEX strike window (the chart
    of a selected expiry; ``gex_by_strike`` is the whole chain's)."""
    with np.errstate(invalid="ignore"):
        moneyness = np.abs(p.strike / p.group_spot[p.exp_idx] - 1.0)
        near = np.flatnonzero(known & (moneyness <= config.gex_strike_window))
    out: list[list[dict[str, float]]] = [[] for _ in range(p.expiries.size)]
    if near.size == 0:
        return out
    # one (expiry, strike) group per row, summed in chain order as a per-expiry pass would
    e, k = p.exp_idx[near], p.strike[near]
    order = np.lexsort((k, e))
    first = _starts((e[order][1:] != e[order][:-1]) | (k[order][1:] != k[order][:-1]))
    group = np.empty(near.size, dtype=np.intp)
    group[order] = np.cumsum(first) - 1
    calls = p.is_call[near]
    call = np.bincount(group, weights=np.where(calls, gex[near], 0.0))
    put = np.bincount(group, weights=np.where(calls, 0.0, gex[near]))
    heads = order[first]
    table = zip(e[heads].tolist(), k[heads].tolist(), _round2(call), _round2(put),
                _round2(call + put), strict=True)  # fmt: skip
    for i, strike, c, q, t in table:
        out[i].append({"strike": strike, "call_gex": c, "put_gex": q, "net_gex": t})
    return out


def _round2(values: FloatArray) -> list[float]:
    """``round(v, 2)`` of each value, as the builtin gives it, without a Python call per value.

    rint(100·v)/100 is the builtin's result (the double nearest the decimal rounding of v)
    unless 100·v, itself rounded, lies too near a half to tell the side; those few, and huge
    or non-finite values, go through the builtin.
    """
    v = np.asarray(values, dtype=np.float64)
    scaled = v * 100.0
    out = (np.rint(scaled) / 100.0).tolist()
    with np.errstate(invalid="ignore"):
        size = np.abs(scaled)
        doubt = ~(size < 2.0**50) | (np.abs(size - np.floor(size) - 0.5) <= size * 1e-15 + 1e-12)
    for i in np.flatnonzero(doubt).tolist():
        out[i] = round(float(v[i]), 2)
    return out


def _set_field(record: dict[str, Any], name: str, value: Any, reason: str) -> None:
    """A record's field: a finite number (an int as is) or null, its reason under ``missing``."""
    number = value if isinstance(value, int) else _num(value)
    record[name] = number
    if number is None:
        record.setdefault("missing", {})[name] = reason


def _expected_move(
    p: _Prepared, records: list[dict[str, Any]], config: AnalyticsConfig, out: _Out
) -> None:
    """ATM straddle mid of the front usable expiry and the ±1σ move S·σ_ATM·√T."""
    usable = np.flatnonzero(p.usable)
    if usable.size == 0:
        out.miss("expected_move", "no usable expiry")
        return
    front = records[int(usable[0])]
    if front["straddle"] is None:
        out.miss(
            "expected_move",
            f"no strikes on both sides of the forward, within {config.atm_max_distance:.0%} of "
            "it, with two-sided call and put quotes on the front expiry",
        )
        return
    out.put(
        "expected_move",
        {
            "expiration": front["expiration"],
            "dte": front["dte"],
            "strike": front["atm_strike"],
            "straddle": front["straddle"],
            "straddle_pct": front["straddle_pct"],
            "sigma_move": front["sigma_move"],
            "sigma_move_pct": front["sigma_move_pct"],
            "atm_iv": front["atm_iv"],
        },
    )


def _unusual_features(
    p: _Prepared, history: ContractHistory | None, config: AnalyticsConfig, out: _Out
) -> None:
    """Contracts with OI > 0, volume/OI ≥ threshold and volume ≥ minimum, with volume z-scores."""
    with np.errstate(invalid="ignore"):
        any_oi = bool((p.oi > 0).any())
    if not any_oi:
        out.miss("unusual_count", _oi_reason(p))
        out.miss("unusual_contracts", _oi_reason(p))
        return
    hits = np.flatnonzero(unusual_mask(p.volume, p.oi, config))
    out.put("unusual_count", int(hits.size))
    if hits.size == 0:
        out.put("unusual_contracts", [])
        return
    hits = hits[np.argsort(-p.volume[hits], kind="stable")][: config.unusual_max_listed]
    keys = contract_keys(p.expiries[p.exp_idx[hits]], p.strike[hits], p.is_call[hits])
    if history is None or history.volume.size == 0:
        z, n_obs = np.full(hits.size, np.nan), np.zeros(hits.size, dtype=np.int64)
    else:
        z, n_obs = volume_zscores(
            keys,
            p.volume[hits],
            contract_keys(history.expiration, history.strike, history.is_call),
            history.volume,
            config.unusual_min_obs,
            config.unusual_log_std_floor,
        )
    rows = []
    for j, i in enumerate(hits):
        row = {
            "expiration": str(p.expiries[p.exp_idx[i]]),
            "strike": float(p.strike[i]),
            "right": "C" if p.is_call[i] else "P",
            "dte": int(p.dte[p.exp_idx[i]]),
            "volume": int(p.volume[i]),
            "open_interest": int(p.oi[i]),
            "vol_oi": float(p.volume[i] / p.oi[i]),
            "mid": _num(p.mid[i]),
            "premium": _num(p.mid[i] * p.volume[i] * CONTRACT_MULTIPLIER),
            "iv": _num(p.iv[i]),
            "delta": _num(p.delta[i]),
            "zscore": _num(z[j]),
            "history_days": int(n_obs[j]),
        }
        if row["zscore"] is None:
            row["zscore_missing"] = (
                f"{int(n_obs[j])} past days of volume, need {config.unusual_min_obs}"
            )
        rows.append(row)
    out.put("unusual_contracts", rows)


HV_WINDOWS = (10, 20, 60)


@dataclass(frozen=True)
class _Closes:
    """Daily closes for the history features: the positive finite ones strictly before the
    snapshot's day, then the spot when it is usable; and the historical volatilities.

    For a batch the tickers' closes lie end to end (``bounds``) and the log returns' standard
    deviations are taken in one pass: ``hv`` (one per ticker and window, NaN without enough
    closes) and ``hv20`` (``historical_volatility_series(closes, 20)`` laid end to end).
    """

    values: FloatArray
    kept: list[NDArray[np.bool_]]  # per ticker: which of its daily rows have a close
    today_ok: list[bool]
    bounds: NDArray[np.intp]
    hv: dict[int, FloatArray]
    hv20: FloatArray

    @classmethod
    def of(cls, items: Sequence[TickerInputs]) -> _Closes:
        parts, kept, today_ok = [], [], []
        for item in items:
            raw = np.asarray(item.history.close, dtype=np.float64)
            rows = np.isfinite(raw) & (raw > 0)
            ok = math.isfinite(item.spot) and item.spot > 0
            parts.append(raw[rows])
            if ok:
                parts.append(np.array([item.spot], dtype=np.float64))
            kept.append(rows)
            today_ok.append(ok)
        values = np.concatenate(parts) if parts else np.empty(0)
        sizes = np.array([k.sum() + t for k, t in zip(kept, today_ok, strict=True)], np.intp)
        bounds = np.concatenate(([0], np.cumsum(sizes))).astype(np.intp)
        returns = np.diff(np.log(values)) if values.size else np.empty(0)
        hv = {}
        for window in HV_WINDOWS:
            out = np.full(len(items), np.nan)
            enough = np.flatnonzero(sizes >= window + 1)
            if enough.size:
                start = bounds[enough + 1] - 1 - window  # the ticker's last ``window`` returns
                tails = returns[start[:, None] + np.arange(window)]
                out[enough] = np.std(tails, axis=1, ddof=1) * math.sqrt(TRADING_DAYS)
            hv[window] = out
        hv20 = np.full(max(values.size - 20, 0), np.nan)
        if returns.size >= 20:
            windows = sliding_window_view(returns, 20)
            hv20 = np.std(windows, axis=1, ddof=1) * math.sqrt(TRADING_DAYS)
        return cls(values, kept, today_ok, bounds, hv, hv20)

    def view(self, j: int) -> _TickerCloses:
        start, end = int(self.bounds[j]), int(self.bounds[j + 1])
        series = np.full(end - start, np.nan)
        if end - start >= 21:
            series[20:] = self.hv20[start : end - 20]
        return _TickerCloses(
            closes=self.values[start:end],
            kept=self.kept[j],
            today_ok=self.today_ok[j],
            hv={w: _num(v[j]) for w, v in self.hv.items()},
            hv20_series=series,
        )


@dataclass(frozen=True)
class _TickerCloses:
    """One ticker's share of ``_Closes``."""

    closes: FloatArray
    kept: NDArray[np.bool_]
    today_ok: bool
    hv: dict[int, float | None]
    hv20_series: FloatArray


def _history_features(
    history: DailyInputs,
    prepared: _TickerCloses,
    as_of: datetime,
    atm_iv: float | None,
    skew: float | None,
    config: AnalyticsConfig,
    out: _Out,
) -> None:
    """IV rank/percentile, change since the previous close, HV 10/20/60, IV/HV, IV − HV20,
    skew z-score, SMA 50/200."""
    past_iv = np.asarray(history.atm_iv, dtype=np.float64)[-config.iv_window_days :]
    n_iv = int(np.isfinite(past_iv).sum())
    out.put("iv_history_days", n_iv)
    if atm_iv is None:
        out.miss("iv_rank", "atm_iv missing")
        out.miss("iv_percentile", "atm_iv missing")
    elif n_iv < config.iv_min_history:
        reason = f"{n_iv} days of IV history, need {config.iv_min_history}"
        out.miss("iv_rank", reason)
        out.miss("iv_percentile", reason)
    else:
        out.put("iv_rank", iv_rank(past_iv, atm_iv, config.iv_window_days), "flat IV history")
        out.put("iv_percentile", iv_percentile(past_iv, atm_iv, config.iv_window_days))

    closes, kept, today_ok = prepared.closes, prepared.kept, prepared.today_ok
    past = closes.size - today_ok
    previous = float(closes[past - 1]) if past else None
    out.put("previous_close", previous, "no earlier daily close")
    if previous is None or not today_ok:
        out.miss("change_pct", "spot or the previous close missing")
    else:
        out.put("change_pct", 100.0 * (float(closes[-1]) / previous - 1.0))
    for window in HV_WINDOWS:
        out.put(f"hv_{window}", prepared.hv[window], f"{closes.size} closes, need {window + 1}")
    hv20 = out.values.get("hv_20")
    if atm_iv is None or not hv20:
        out.miss("iv_hv_ratio", "atm_iv or hv_20 missing")
        out.miss("iv_hv_spread", "atm_iv or hv_20 missing")
    else:
        out.put("iv_hv_ratio", atm_iv / hv20)
        out.put("iv_hv_spread", atm_iv - hv20)
    _iv_hv_history(history, kept, prepared.hv20_series, today_ok, as_of, atm_iv, config, out)

    past_skew = np.asarray(history.skew_25d, dtype=np.float64)[-config.skew_history_days :]
    past_skew = past_skew[np.isfinite(past_skew)]
    if skew is None:
        for name in ("skew_25d_zscore", "skew_25d_mean"):
            out.miss(name, "skew_25d missing")
    elif past_skew.size < config.skew_min_history:
        for name in ("skew_25d_zscore", "skew_25d_mean"):
            out.miss(name, f"{past_skew.size} days of skew history, need {config.skew_min_history}")
    else:
        sd = float(np.std(past_skew, ddof=1))
        out.put(
            "skew_25d_zscore",
            (skew - float(past_skew.mean())) / sd if sd > 0 else None,
            "flat skew history",
        )
        out.put("skew_25d_mean", float(past_skew.mean()))

    _moving_averages(closes, out)


def _iv_hv_history(
    history: DailyInputs,
    kept: NDArray[np.bool_],
    hv20_series: FloatArray,
    today_ok: bool,
    as_of: datetime,
    atm_iv: float | None,
    config: AnalyticsConfig,
    out: _Out,
) -> None:
    """The last ``iv_hv_history_days`` sessions (today last) of ATM IV, HV20 and IV − HV20.

    HV20 of a day is ``hv_20`` as it was that day: the 20 returns of closes up to it.
    """
    today = np.array([as_of.date()], dtype="datetime64[D]")
    days = np.concatenate((np.asarray(history.days).astype("datetime64[D]"), today))
    today_iv = np.nan if atm_iv is None else atm_iv
    iv = np.append(np.asarray(history.atm_iv, dtype=np.float64), today_iv)
    hv = np.full(days.size, np.nan)
    rows_with_close = np.flatnonzero(np.append(kept, today_ok))
    hv[rows_with_close] = hv20_series  # ``historical_volatility_series(closes, 20)``
    tail = slice(-config.iv_hv_history_days, None)
    days, iv, hv = days[tail], iv[tail], hv[tail]
    spread = iv - hv
    if not np.isfinite(spread).any():
        out.miss("iv_hv_spread_history", "no session with both atm_iv and hv_20")
        return
    out.put(
        "iv_hv_spread_history",
        {
            "day": np.datetime_as_string(days).tolist(),
            "atm_iv": _nums(iv),
            "hv_20": _nums(hv),
            "iv_hv_spread": _nums(spread),
        },
    )


def _moving_averages(closes: FloatArray, out: _Out) -> None:
    """SMA 50 and 200 of daily closes (today's included) and the last four days of each."""
    for window in (50, 200):
        if closes.size >= window:
            out.put(f"sma_{window}", float(closes[-window:].mean()))
        else:
            out.miss(f"sma_{window}", f"{closes.size} closes, need {window}")
    days = 4
    if closes.size < 200 + days - 1:
        out.miss("sma_recent", f"{closes.size} closes, need {200 + days - 1}")
        return
    cumulative = np.concatenate(([0.0], np.cumsum(closes)))
    end = np.arange(closes.size - days + 1, closes.size + 1)  # exclusive ends of the last days
    out.put(
        "sma_recent",
        {
            "close": closes[-days:].tolist(),
            "sma_50": ((cumulative[end] - cumulative[end - 50]) / 50).tolist(),
            "sma_200": ((cumulative[end] - cumulative[end - 200]) / 200).tolist(),
        },
    )


def _last_finite(values: FloatArray, window: int) -> FloatArray:
    tail = np.asarray(values, dtype=np.float64)[-window:]
    return tail[np.isfinite(tail)]


def _num(value: Any) -> float | None:
    """A finite float or None (NaN and inf never reach the JSON)."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None
