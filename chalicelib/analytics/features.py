"""Features of one ticker's option chain at one snapshot: pure and vectorised, no clock, no I/O.

``compute_features`` turns a chain, the spot, the snapshot time and the ticker's own daily history
into a ``FeatureSet``: JSON-ready numbers (and small lists/dicts of numbers) in ``values``. A
feature that cannot be computed is ``None`` there and ``missing`` says why; bad or missing market
data never raise. Every array pass covers the whole chain at once: the only Python loops are over
a handful of expiries (their closing times) or over the few contracts reported as unusual.

Conventions
- IVs, HVs, skew, butterfly and slopes are annualised fractions (0.25 = 25 %); ratios are plain
  numbers; names ending in ``_pct`` are percent; ``iv_rank`` and ``iv_percentile`` are 0–100.
- T runs to the 16:00 New York close of the expiration day, in years of 365 days; ``dte`` is
  whole calendar days. The forward is F = S·e^{(r−q)T}.
- Expiries closer than ``min_dte_days`` are left out of every volatility feature (their IVs are
  mostly noise), so "front" or "nearest" means the nearest expiry at least that far away.
- GEX follows the naive dealer convention (dealers long calls, short puts): calls +, puts −, in
  dollars per 1 % move of the underlying, Γ·OI·100·S²·0.01.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

from chalicelib.analytics.config import DEFAULT_CONFIG, AnalyticsConfig
from chalicelib.domain import calendar as cal
from chalicelib.domain.chain import ChainBatch
from chalicelib.domain.models import FeatureSet
from chalicelib.domain.pricing import bs_greeks, implied_volatility

FloatArray = NDArray[np.float64]
TRADING_DAYS = 252
CONTRACT_MULTIPLIER = 100.0


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


def gamma_exposure(
    gamma: FloatArray, open_interest: FloatArray, spot: float, is_call: NDArray[np.bool_]
) -> FloatArray:
    """Dealer gamma exposure per contract line, $ per 1 % move: ±Γ·OI·100·S²·0.01 (calls +)."""
    sign = np.where(np.asarray(is_call, dtype=bool), 1.0, -1.0)
    return sign * gamma * open_interest * CONTRACT_MULTIPLIER * spot * spot * 0.01


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
) -> FloatArray:
    """Per expiry, argmin over strikes P of Σ_K [OI_c·max(P−K,0) + OI_p·max(K−P,0)]·100.

    Ties go to the lowest strike. Computed in O(n) with grouped running sums instead of the
    n² pairwise table: below P the call pain is P·ΣOI_c − Σ(OI_c·K), above it the put pain is
    Σ(OI_p·K) − P·ΣOI_p. Missing OI counts as zero; an expiry with no OI at all gives NaN.
    """
    out = np.full(n_expiries, np.nan)
    oi_known = np.isfinite(open_interest)
    if not oi_known.any():
        return out
    oi = np.where(oi_known, open_interest, 0.0)
    order = np.lexsort((strike, exp_idx))
    e, k = exp_idx[order], strike[order]
    call_oi = np.where(is_call[order], oi[order], 0.0)
    put_oi = oi[order] - call_oi
    row_start = np.flatnonzero(np.r_[True, (e[1:] != e[:-1]) | (k[1:] != k[:-1])])
    e, k = e[row_start], k[row_start]  # one row per (expiry, strike)
    c, p = np.add.reduceat(call_oi, row_start), np.add.reduceat(put_oi, row_start)
    first = np.flatnonzero(np.r_[True, e[1:] != e[:-1]])
    group = np.cumsum(np.r_[True, e[1:] != e[:-1]]) - 1

    def below(values: FloatArray) -> FloatArray:  # Σ over strikes strictly below, per expiry
        exclusive = np.cumsum(values) - values
        return exclusive - exclusive[first][group]

    def total(values: FloatArray) -> FloatArray:
        return np.add.reduceat(values, first)[group]

    c_below, ck_below = below(c), below(c * k)
    p_upto, pk_upto = below(p) + p, below(p * k) + p * k
    p_above, pk_above = total(p) - p_upto, total(p * k) - pk_upto
    pain = (k * c_below - ck_below + pk_above - k * p_above) * CONTRACT_MULTIPLIER
    lowest = np.minimum.reduceat(pain, first)[group]
    at_min = np.flatnonzero(pain <= lowest + 1e-9 * np.maximum(np.abs(lowest), 1.0))
    winners = at_min[np.r_[True, group[at_min][1:] != group[at_min][:-1]]]  # lowest strike
    has_oi = np.bincount(exp_idx, weights=oi_known.astype(float), minlength=n_expiries) > 0
    chosen = np.full(n_expiries, np.nan)
    chosen[e[winners]] = k[winners]
    out[has_oi] = chosen[has_oi]
    return out


def risk_reversal_25d(
    delta: FloatArray, iv: FloatArray, is_call: NDArray[np.bool_]
) -> tuple[float | None, float | None]:
    """IV at the 25Δ call and at the −25Δ put of one expiry, linear in delta.

    Call delta falls from ~1 to 0 as the strike rises and put delta falls from 0 to ~−1, so both
    are sorted by delta before interpolating (np.interp needs increasing x).
    """
    side = (~np.asarray(is_call, dtype=bool)).astype(np.intp)  # 0 call, 1 put
    targets = np.array([0.25, -0.25])
    values = _interp_by_group(side, np.asarray(delta, float), np.asarray(iv, float), targets, 2)
    return _num(values[0]), _num(values[1])


def constant_maturity_iv(t: FloatArray, iv: FloatArray, target_t: float) -> float | None:
    """IV at maturity ``target_t``: total variance σ²T linear in T between the bracketing
    expiries, flat in vol outside them. ``None`` without a single usable expiry."""
    ok = np.isfinite(t) & np.isfinite(iv) & (t > 0) & (iv > 0)
    if not ok.any():
        return None
    order = np.argsort(t[ok])
    tt, vol = t[ok][order], iv[ok][order]
    if target_t <= tt[0]:
        return float(vol[0])
    if target_t >= tt[-1]:
        return float(vol[-1])
    variance = float(np.interp(target_t, tt, vol * vol * tt))
    return math.sqrt(variance / target_t) if variance > 0 else None


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
) -> tuple[FloatArray, NDArray[np.int64]]:
    """z of today's volume against each contract's own past daily volumes, and the count used.

    z = (v − mean)/s with s the sample stdev (ddof=1) floored at 1 contract, so a contract that
    never traded and now trades thousands scores high instead of dividing by zero. NaN where the
    contract has fewer than ``min_obs`` past days.
    """
    z = np.full(keys.size, np.nan)
    n_obs = np.zeros(keys.size, dtype=np.int64)
    ok = np.isfinite(history_volume)
    if keys.size == 0 or not ok.any():
        return z, n_obs
    uniq, inverse = np.unique(history_keys[ok], return_inverse=True)
    hv = history_volume[ok]
    count = np.bincount(inverse, minlength=uniq.size)
    mean = np.bincount(inverse, weights=hv, minlength=uniq.size) / count
    square = np.bincount(inverse, weights=(hv - mean[inverse]) ** 2, minlength=uniq.size)
    std = np.sqrt(square / np.maximum(count - 1, 1))
    pos = np.clip(np.searchsorted(uniq, keys), 0, uniq.size - 1)
    found = uniq[pos] == keys
    n_obs[found] = count[pos[found]]
    enough = found & (n_obs >= min_obs)
    z[enough] = (volume[enough] - mean[pos[enough]]) / np.maximum(std[pos[enough]], 1.0)
    return z, n_obs


def unusual_mask(
    volume: NDArray, open_interest: FloatArray, config: AnalyticsConfig = DEFAULT_CONFIG
) -> NDArray[np.bool_]:
    """Contracts with volume ≥ the minimum and volume/OI ≥ the threshold (OI 0 counts as 1).

    Contracts with unknown OI are never unusual: the ratio is undefined.
    """
    vol = np.asarray(volume, dtype=np.float64)
    oi = np.asarray(open_interest, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return (
            np.isfinite(oi)
            & (vol >= config.unusual_min_volume)
            & (vol / np.maximum(oi, 1.0) >= config.unusual_vol_oi)
        )


# ---- the entry point -----------------------------------------------------------------------
def compute_features(
    chain: ChainBatch,
    spot: float,
    as_of: datetime,
    history: DailyInputs,
    contract_history: ContractHistory | None = None,
    *,
    ticker: str | None = None,
    rate: float = 0.045,
    div_yield: float = 0.0,
    config: AnalyticsConfig = DEFAULT_CONFIG,
) -> FeatureSet:
    """All features of one ticker at one snapshot (see the module docstring for units).

    ``history`` must hold days strictly before the snapshot's day: today's close is ``spot`` and
    today's IV comes from the chain. ``contract_history`` holds the contracts' volumes on earlier
    days (for the unusual-activity z-scores); ``None`` means none is known.
    """
    name = ticker or (str(chain["ticker"][0]) if len(chain) else "")
    out = _Out()
    as_of = as_of.astimezone(UTC) if as_of.tzinfo else as_of.replace(tzinfo=UTC)
    out.put("underlying_price", spot)
    out.put("contracts", len(chain))
    spot_ok = math.isfinite(spot) and spot > 0
    prepared = _prepare(chain, spot, as_of, rate, div_yield, config) if spot_ok else None
    if not spot_ok:
        out.miss("underlying_price", "spot price missing or not positive")
    if prepared is None:
        reason = "empty chain" if len(chain) == 0 else "no usable contracts or spot"
        for feature in _CHAIN_FEATURES:
            out.miss(feature, reason)
    else:
        atm = _atm_by_expiry(prepared)
        _volatility_features(prepared, atm, config, out)
        _flow_features(prepared, out)
        _positioning_features(prepared, atm, config, out)
        _unusual_features(prepared, contract_history, config, out)
    atm_iv, skew = out.values.get("atm_iv"), out.values.get("skew_25d")
    _history_features(history, spot, atm_iv, skew, config, out)
    return FeatureSet(ticker=name, as_of=as_of, values=out.values, missing=out.missing)


# ---- internals -----------------------------------------------------------------------------
_CHAIN_FEATURES = (
    "atm_iv",
    "atm_iv_front",
    "atm_iv_back",
    "term_slope",
    "term_structure",
    "skew_25d",
    "butterfly_25d",
    "put_call_volume_ratio",
    "put_call_oi_ratio",
    "spread_pct",
    "max_pain",
    "max_pain_by_expiry",
    "gex_total",
    "gex_by_strike",
    "call_wall",
    "put_wall",
    "expected_move",
    "unusual_contracts",
)


class _Out:
    """Collects values and reasons: a ``None`` value always comes with its reason."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.missing: dict[str, str] = {}

    def put(self, name: str, value: Any, reason: str = "") -> None:
        if isinstance(value, float | np.floating) and not math.isfinite(value):
            value = None
        if value is None:
            self.miss(name, reason or "not computable")
        else:
            self.values[name] = value.item() if isinstance(value, np.generic) else value

    def miss(self, name: str, reason: str) -> None:
        self.values[name] = None
        self.missing[name] = reason


@dataclass(frozen=True)
class _Prepared:
    """The chain as arrays, with T, forwards, filled IVs/greeks and usable expiries."""

    spot: float
    expiries: NDArray[np.datetime64]  # sorted unique expiration days
    t_exp: FloatArray
    dte: NDArray[np.int64]
    usable: NDArray[np.bool_]  # per expiry: at least min_dte_days away
    exp_idx: NDArray[np.intp]
    strike: FloatArray
    is_call: NDArray[np.bool_]
    bid: FloatArray
    ask: FloatArray
    mid: FloatArray
    volume: FloatArray
    oi: FloatArray
    iv: FloatArray
    delta: FloatArray
    gamma: FloatArray
    log_moneyness: FloatArray  # ln(K/F)


@lru_cache(maxsize=4096)
def _expiry_close_seconds(day: date) -> int:
    return int(cal.expiry_close(day).timestamp())


def _prepare(
    chain: ChainBatch,
    spot: float,
    as_of: datetime,
    rate: float,
    div_yield: float,
    config: AnalyticsConfig,
) -> _Prepared | None:
    if len(chain) == 0:
        return None
    exp_day = np.asarray(chain["expiration"]).astype("datetime64[D]")
    expiries, exp_idx = np.unique(exp_day, return_inverse=True)
    closes = np.array([_expiry_close_seconds(d) for d in expiries.tolist()], dtype=np.float64)
    t_exp = (closes - as_of.timestamp()) / cal.SECONDS_PER_YEAR
    live = t_exp[exp_idx] > 0
    if not live.any():
        return None
    if not live.all():  # an expired line (or a bad clock) must not poison the rest
        chain = chain.filter(live)
        exp_day = exp_day[live]
        expiries, exp_idx = np.unique(exp_day, return_inverse=True)
        keep = np.flatnonzero(t_exp > 0)
        t_exp = t_exp[keep]
    as_of_day = np.datetime64(as_of.date(), "D")
    dte = (expiries - as_of_day).astype(np.int64)
    strike = np.asarray(chain["strike"], dtype=np.float64)
    is_call = np.asarray(chain["right"]) == "C"
    bid = np.asarray(chain["bid"], dtype=np.float64)
    ask = np.asarray(chain["ask"], dtype=np.float64)
    with np.errstate(invalid="ignore"):
        mid = np.where((ask > 0) & (bid >= 0) & (ask >= bid), 0.5 * (bid + ask), np.nan)
    t = t_exp[exp_idx]
    forward = spot * np.exp((rate - div_yield) * t_exp)
    iv = np.array(chain["implied_volatility"], dtype=np.float64)
    if not np.isfinite(iv).any():  # a source without IVs: solve them from two-sided quotes
        solve = (bid > 0) & np.isfinite(mid)
        iv[solve] = implied_volatility(
            mid[solve], spot, strike[solve], t[solve], rate, is_call[solve], div_yield
        ).iv
    delta = np.array(chain["delta"], dtype=np.float64)
    gamma = np.array(chain["gamma"], dtype=np.float64)
    fill = np.isfinite(iv) & (~np.isfinite(delta) | ~np.isfinite(gamma))
    if fill.any():
        greeks = bs_greeks(spot, strike[fill], t[fill], rate, iv[fill], is_call[fill], div_yield)
        delta[fill] = np.where(np.isfinite(delta[fill]), delta[fill], greeks.delta)
        gamma[fill] = np.where(np.isfinite(gamma[fill]), gamma[fill], greeks.gamma)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_moneyness = np.log(strike / forward[exp_idx])
    return _Prepared(
        spot=spot,
        expiries=expiries,
        t_exp=t_exp,
        dte=dte,
        usable=t_exp * 365.0 >= config.min_dte_days,
        exp_idx=exp_idx,
        strike=strike,
        is_call=is_call,
        bid=bid,
        ask=ask,
        mid=mid,
        volume=np.asarray(chain["volume"], dtype=np.float64),
        oi=np.asarray(chain["open_interest"], dtype=np.float64),
        iv=iv,
        delta=delta,
        gamma=gamma,
        log_moneyness=log_moneyness,
    )


def _interp_by_group(
    group: NDArray[np.intp], x: FloatArray, y: FloatArray, target: FloatArray, n_groups: int
) -> FloatArray:
    """For each group g, y interpolated linearly in x at ``target[g]`` — one sort for all groups.

    Flat beyond a group's ends; NaN for a group without finite points. The groups are laid end
    to end on one increasing axis (group·span + x) so a single searchsorted finds every bracket.
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
    if idx.size == 0:
        return out
    low_x = float(xs.min())
    width = float(xs.max()) - low_x
    span = width + 1.0
    key = g * span + (xs - low_x)
    goal = idx * span + np.clip(target[idx] - low_x, 0.0, width)
    hi = np.clip(np.searchsorted(key, goal), start[idx], end[idx] - 1)
    lo = np.maximum(hi - 1, start[idx])
    dx = xs[hi] - xs[lo]
    safe = np.where(dx > 0, dx, 1.0)
    w = np.where(dx > 0, np.clip((target[idx] - xs[lo]) / safe, 0.0, 1.0), 1.0)
    out[idx] = ys[lo] + w * (ys[hi] - ys[lo])
    return out


def _atm_by_expiry(p: _Prepared) -> FloatArray:
    """ATM IV per expiry: IV interpolated in strike at the forward, mean of call and put sides."""
    n = p.expiries.size
    sides = _interp_by_group(
        p.exp_idx * 2 + (~p.is_call), p.log_moneyness, p.iv, np.zeros(2 * n), 2 * n
    ).reshape(n, 2)
    count = np.isfinite(sides).sum(axis=1)
    total = np.where(np.isfinite(sides), sides, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        atm = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    atm[~p.usable] = np.nan
    return atm


def _volatility_features(p: _Prepared, atm: FloatArray, config: AnalyticsConfig, out: _Out) -> None:
    """atm_iv (30-day CM), front/back, slope, term structure, 25Δ skew and butterfly."""
    good = np.flatnonzero(np.isfinite(atm))
    if good.size == 0:
        for name in ("atm_iv", "atm_iv_front", "atm_iv_back", "term_slope", "term_structure"):
            out.miss(name, f"no expiry ≥ {config.min_dte_days} days away with ATM IV")
        for name in ("skew_25d", "butterfly_25d"):
            out.miss(name, "no expiry with ATM IV")
        return
    out.put("atm_iv", constant_maturity_iv(p.t_exp[good], atm[good], config.target_days / 365.0))
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

    nearest = int(good[np.argmin(np.abs(p.t_exp[good] * 365.0 - config.target_days))])
    out.put("skew_expiration", str(p.expiries[nearest]))
    on = p.exp_idx == nearest
    call25, put25 = risk_reversal_25d(p.delta[on], p.iv[on], p.is_call[on])
    if call25 is None or put25 is None:
        out.miss("skew_25d", "no deltas/IVs to interpolate on the expiry nearest 30 days")
        out.miss("butterfly_25d", "no deltas/IVs to interpolate on the expiry nearest 30 days")
        return
    out.put("skew_25d", call25 - put25)
    out.put("butterfly_25d", 0.5 * (call25 + put25) - float(atm[nearest]))
    out.put("iv_25d_call", call25)
    out.put("iv_25d_put", put25)


def _flow_features(p: _Prepared, out: _Out) -> None:
    """Put/call ratios (volume, OI) and the median quoted spread."""
    call_volume = float(p.volume[p.is_call].sum())
    put_volume = float(p.volume[~p.is_call].sum())
    out.put("call_volume", int(call_volume))
    out.put("put_volume", int(put_volume))
    out.put(
        "put_call_volume_ratio",
        put_call_ratio(put_volume, call_volume),
        "no call volume",
    )
    known = np.isfinite(p.oi)
    if not known.any():
        for name in ("call_open_interest", "put_open_interest", "put_call_oi_ratio"):
            out.miss(name, "open interest missing for every contract")
    else:
        call_oi = float(p.oi[known & p.is_call].sum())
        put_oi = float(p.oi[known & ~p.is_call].sum())
        out.put("call_open_interest", int(call_oi))
        out.put("put_open_interest", int(put_oi))
        out.put("put_call_oi_ratio", put_call_ratio(put_oi, call_oi), "no call open interest")
    quoted = (p.bid > 0) & np.isfinite(p.mid)
    if quoted.any():
        spread = (p.ask[quoted] - p.bid[quoted]) / p.mid[quoted]
        out.put("spread_pct", 100.0 * float(np.median(spread)))
    else:
        out.miss("spread_pct", "no two-sided quotes")


def _positioning_features(
    p: _Prepared, atm: FloatArray, config: AnalyticsConfig, out: _Out
) -> None:
    """Max pain, GEX by strike with call/put walls, and the front expiry's expected move."""
    n = p.expiries.size
    pain = max_pain_by_expiry(p.exp_idx, p.strike, p.is_call, p.oi, n)
    rows = [
        {"expiration": str(p.expiries[i]), "strike": float(pain[i])}
        for i in np.flatnonzero(np.isfinite(pain))
    ]
    out.put("max_pain_by_expiry", rows or None, "open interest missing for every contract")
    usable = np.flatnonzero(p.usable & np.isfinite(pain))
    if usable.size:
        out.put("max_pain", float(pain[usable[0]]))
        out.put("max_pain_expiration", str(p.expiries[usable[0]]))
    else:
        out.miss("max_pain", "no usable expiry with open interest")

    gex = gamma_exposure(p.gamma, p.oi, p.spot, p.is_call)
    known = np.isfinite(gex)
    if not known.any():
        for name in ("gex_total", "gex_by_strike", "call_wall", "put_wall"):
            out.miss(name, "no contract with both gamma and open interest")
    else:
        strikes, where = np.unique(p.strike[known], return_inverse=True)
        calls = p.is_call[known]
        call_gex = np.bincount(
            where, weights=np.where(calls, gex[known], 0.0), minlength=len(strikes)
        )
        put_gex = np.bincount(
            where, weights=np.where(calls, 0.0, gex[known]), minlength=len(strikes)
        )
        out.put("gex_total", float(call_gex.sum() + put_gex.sum()))
        near = np.flatnonzero(np.abs(strikes / p.spot - 1.0) <= config.gex_strike_window)
        out.put(
            "gex_by_strike",
            [
                {
                    "strike": float(strikes[i]),
                    "call_gex": round(float(call_gex[i]), 2),
                    "put_gex": round(float(put_gex[i]), 2),
                    "net_gex": round(float(call_gex[i] + put_gex[i]), 2),
                }
                for i in near
            ],
        )
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
    _expected_move(p, atm, out)


def _expected_move(p: _Prepared, atm: FloatArray, out: _Out) -> None:
    """ATM straddle mid of the front expiry and the ±1σ move S·σ_ATM·√(DTE/365)."""
    usable = np.flatnonzero(p.usable)
    if usable.size == 0:
        out.miss("expected_move", "no usable expiry")
        return
    front = int(usable[0])
    on = (p.exp_idx == front) & np.isfinite(p.mid) & (p.bid > 0)
    call_k, put_k = p.strike[on & p.is_call], p.strike[on & ~p.is_call]
    both = np.intersect1d(call_k, put_k)
    if both.size == 0:
        out.miss("expected_move", "no strike with two-sided call and put quotes on the front")
        return
    atm_k = float(both[np.argmin(np.abs(both - p.spot))])
    at = on & (p.strike == atm_k)
    straddle = float(p.mid[at & p.is_call][0] + p.mid[at & ~p.is_call][0])
    sigma = atm[front]
    move = p.spot * float(sigma) * math.sqrt(p.t_exp[front]) if np.isfinite(sigma) else None
    out.put(
        "expected_move",
        {
            "expiration": str(p.expiries[front]),
            "dte": int(p.dte[front]),
            "strike": atm_k,
            "straddle": straddle,
            "straddle_pct": 100.0 * straddle / p.spot,
            "sigma_move": move,
            "sigma_move_pct": None if move is None else 100.0 * move / p.spot,
            "atm_iv": _num(sigma),
        },
    )


def _unusual_features(
    p: _Prepared, history: ContractHistory | None, config: AnalyticsConfig, out: _Out
) -> None:
    """Contracts with volume/OI ≥ threshold and volume ≥ minimum, each with its volume z-score."""
    if not np.isfinite(p.oi).any():
        out.miss("unusual_contracts", "open interest missing for every contract")
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
            "vol_oi": float(p.volume[i] / max(p.oi[i], 1.0)),
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


def _history_features(
    history: DailyInputs,
    spot: float,
    atm_iv: float | None,
    skew: float | None,
    config: AnalyticsConfig,
    out: _Out,
) -> None:
    """IV rank/percentile, HV 10/20/60, IV/HV, skew z-score and SMA 50/200 on daily closes."""
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

    closes = np.asarray(history.close, dtype=np.float64)
    closes = closes[np.isfinite(closes) & (closes > 0)]
    if math.isfinite(spot) and spot > 0:
        closes = np.append(closes, spot)
    for window in (10, 20, 60):
        out.put(
            f"hv_{window}",
            historical_volatility(closes, window),
            f"{closes.size} closes, need {window + 1}",
        )
    hv20 = out.values.get("hv_20")
    if atm_iv is None or not hv20:
        out.miss("iv_hv_ratio", "atm_iv or hv_20 missing")
    else:
        out.put("iv_hv_ratio", atm_iv / hv20)

    past_skew = np.asarray(history.skew_25d, dtype=np.float64)[-config.skew_history_days :]
    past_skew = past_skew[np.isfinite(past_skew)]
    if skew is None:
        out.miss("skew_25d_zscore", "skew_25d missing")
    elif past_skew.size < config.skew_min_history:
        out.miss(
            "skew_25d_zscore",
            f"{past_skew.size} days of skew history, need {config.skew_min_history}",
        )
    else:
        sd = float(np.std(past_skew, ddof=1))
        out.put(
            "skew_25d_zscore",
            (skew - float(past_skew.mean())) / sd if sd > 0 else None,
            "flat skew history",
        )
        out.put("skew_25d_mean", float(past_skew.mean()))

    _moving_averages(closes, out)


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
    cumulative = np.r_[0.0, np.cumsum(closes)]
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
