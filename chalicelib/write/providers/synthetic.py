"""The embedded default market: a deterministic simulator that looks real to the analytics.

For a given seed and clock every number is reproducible. Per ticker:
- underlying: geometric Brownian motion from 2018 with a three-state regime chain (calm, normal,
  stressed) that scales volatility, plus an earnings jump on each (quarterly) earnings day;
- volatility: 30-day ATM IV follows a mean-reverting AR(1) in log space around the regime's level,
  with occasional spikes that decay; realised vol runs below implied (a variance risk premium);
- term structure: sigma(T) = v_inf + (v_now - v_inf)·exp(-T/tau), so calm markets are in contango
  and stressed ones in backwardation; expiries spanning earnings carry extra event variance;
- smile: SSVI (Gatheral & Jacquier 2014) with negative, slowly wandering rho;
- chain: listed expirations (weeklies + third-Friday monthlies), OCC strike spacing, mid prices from
  the pricing core inside exchange-style quote widths, open interest that changes only overnight,
  volume around 1-2 % of OI accruing through the session, and occasional unusual-volume bursts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from chalicelib.domain import calendar as cal
from chalicelib.domain.chain import CHAIN_COLUMNS, ChainBatch
from chalicelib.domain.models import UnderlyingQuote
from chalicelib.domain.normal import norm_cdf
from chalicelib.domain.pricing import bs_greeks, bs_price, implied_volatility
from chalicelib.write.providers.base import ChainResult, DailyHistory, MarketDataProvider

EPOCH = date(2018, 1, 2)
REGIME_VOL = np.array([0.8, 1.0, 1.6])  # calm, normal, stressed multipliers of base vol
REGIME_STAY = np.array([0.985, 0.985, 0.95])
SOLVED = ("implied_volatility", "delta", "gamma", "theta", "vega", "rho")
BATCH_TICKERS = 64  # chains whose implied vols are solved together
LIQUID = 8.0  # liquidity above which a name lists $1 strikes near the money and more weeklies
VRP = 0.85  # realised / implied
TERM_TAU = 0.3  # years: how fast the term structure reverts to its long-run level
SSVI_ETA, SSVI_GAMMA = 1.0, 0.5
ETFS = frozenset({"SPY", "QQQ", "IWM", "DIA", "XLF", "XLE", "GLD", "TLT", "EEM", "SMH"})
ANCHOR = date(2026, 1, 2)  # profile spots are prices on this day; paths are scaled through it
KNOWN = {  # ticker: (spot at ANCHOR, base ATM vol, dividend yield, liquidity)
    "SPY": (590.0, 0.15, 0.013, 40.0),
    "QQQ": (515.0, 0.19, 0.006, 25.0),
    "IWM": (222.0, 0.22, 0.012, 12.0),
    "AAPL": (243.0, 0.27, 0.005, 20.0),
    "MSFT": (418.0, 0.25, 0.008, 10.0),
    "NVDA": (138.0, 0.50, 0.0003, 30.0),
    "TSLA": (379.0, 0.58, 0.0, 30.0),
    "AMD": (120.0, 0.50, 0.0, 12.0),
    "AMZN": (220.0, 0.32, 0.0, 14.0),
    "META": (599.0, 0.35, 0.003, 10.0),
    "GOOGL": (190.0, 0.29, 0.004, 9.0),
    "JPM": (240.0, 0.23, 0.021, 5.0),
}


def _stable_hash(*parts: object) -> int:
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


@dataclass(frozen=True)
class TickerProfile:
    ticker: str
    spot0: float
    base_vol: float
    div_yield: float
    liquidity: float
    earnings_phase: int | None  # days after EPOCH of the first earnings date; None for ETFs

    @classmethod
    def for_ticker(cls, ticker: str, seed: int) -> TickerProfile:
        rng = np.random.default_rng([seed, _stable_hash("profile", ticker)])
        spot0, vol, q, liq = KNOWN.get(ticker) or (
            float(np.exp(rng.uniform(np.log(15), np.log(500)))),
            float(rng.uniform(0.2, 0.65)),
            float(rng.choice([0.0, 0.0, rng.uniform(0.003, 0.03)])),
            float(np.exp(rng.uniform(np.log(0.3), np.log(6)))),
        )
        phase = None if ticker in ETFS else int(rng.integers(20, 91))
        return cls(ticker, spot0, vol, q, liq, phase)


@dataclass(frozen=True)
class DailyPath:
    """Daily state, index 0 = EPOCH's trading day."""

    days: list[date]
    close: NDArray[np.float64]
    vol: NDArray[np.float64]  # 30-day ATM IV level excluding earnings variance
    rho: NDArray[np.float64]
    earnings: frozenset[date]


class SyntheticMarket(MarketDataProvider):
    """Deterministic simulated market; ``seed`` and the clock passed in fix every number."""

    name = "synthetic"

    def __init__(
        self,
        seed: int = 7,
        rate: float = 0.045,
        weeklies: int = 8,
        horizon_days: int = 370,
        strike_sigmas: float = 2.8,
    ) -> None:
        self.seed = seed
        self.rate = rate
        self.weeklies = weeklies
        self.horizon_days = horizon_days
        self.strike_sigmas = strike_sigmas
        self._paths: dict[str, DailyPath] = {}

    # ---- daily model -------------------------------------------------------------------
    def profile(self, ticker: str) -> TickerProfile:
        return TickerProfile.for_ticker(ticker, self.seed)

    def path(self, ticker: str, through: date) -> DailyPath:
        # a chain on ``through`` needs the earnings dates up to its last listed expiry
        need = through + timedelta(days=self.horizon_days)
        cached = self._paths.get(ticker)
        if cached is None or cached.days[-1] < need:
            # simulate a year further so consecutive cycles reuse one path; always past ANCHOR
            # so every path is scaled through the same day
            end = max(need, ANCHOR) + timedelta(days=366)
            cached = self._simulate(ticker, _trading_days(end))
            self._paths[ticker] = cached
        return cached

    def _simulate(self, ticker: str, days: list[date]) -> DailyPath:
        p = self.profile(ticker)
        n = len(days)

        def stream(name: str) -> np.random.Generator:
            # one generator per series: the first n draws do not depend on how long the path
            # is, so a day's numbers do not depend on which date was asked for first
            return np.random.default_rng([self.seed, _stable_hash("path", ticker, name)])

        u_regime, z_vol, z_ret, u_spike, z_rho = (
            stream("regime").random(n),
            stream("vol").standard_normal(n),
            stream("ret").standard_normal(n),
            stream("spike").random(n),
            stream("rho").standard_normal(n),
        )
        regime = np.empty(n, dtype=np.int8)
        state = 1
        for i in range(n):  # a Markov chain is sequential; n is a few thousand
            if u_regime[i] > REGIME_STAY[state]:
                state = (state + (1 if u_regime[i] > (1 + REGIME_STAY[state]) / 2 else 2)) % 3
            regime[i] = state
        shocks = 0.06 * z_vol + np.where(
            u_spike > 0.992, stream("spike_size").uniform(0.25, 0.7, n), 0.0
        )
        log_dev = _ar1(shocks, 0.96)
        vol = p.base_vol * REGIME_VOL[regime] * np.exp(log_dev - 0.5 * 0.06**2 / (1 - 0.96**2))
        rho = np.clip(-0.65 + 0.12 * _ar1(0.25 * z_rho, 0.97), -0.95, -0.15)
        earnings = self._earnings(p, days[0], days[-1])
        realised = VRP * vol / np.sqrt(252)
        earnings_set = set(earnings)
        jump = np.array([d in earnings_set for d in days]) * stream("jump").normal(
            0, 0.6 * p.base_vol / 4, n
        )
        log_ret = 0.07 / 252 - 0.5 * realised**2 + realised * z_ret + jump
        log_ret[0] = 0.0
        level = np.cumsum(log_ret)
        anchor = min(int(np.searchsorted(np.array(days), np.datetime64(ANCHOR))), n - 1)
        close = p.spot0 * np.exp(level - level[anchor])
        return DailyPath(days, close, vol, rho, frozenset(earnings))

    @staticmethod
    def _earnings(p: TickerProfile, start: date, end: date) -> list[date]:
        if p.earnings_phase is None:
            return []
        out, day = [], EPOCH + timedelta(days=p.earnings_phase)
        while day <= end:
            moved = day
            while not cal.is_trading_day(moved):
                moved += timedelta(days=1)
            if moved >= start:
                out.append(moved)
            day += timedelta(days=91)
        return out

    def earnings_dates(self, ticker: str, start: date, end: date) -> list[date]:
        return [d for d in self.path(ticker, end).earnings if start <= d <= end]

    def _event_variance(self, p: TickerProfile) -> float:
        return (0.6 * p.base_vol / 4) ** 2

    # ---- surfaces ----------------------------------------------------------------------
    def _total_variance(
        self,
        p: TickerProfile,
        vol_now: float,
        rho: float,
        k: NDArray[np.float64],
        t: NDArray[np.float64],
        event_var: NDArray[np.float64],
    ) -> NDArray[np.float64]:
        v_inf = p.base_vol * 1.05
        atm = v_inf + (vol_now - v_inf) * np.exp(-t / TERM_TAU)
        theta = atm**2 * t + event_var
        phi = SSVI_ETA / (theta**SSVI_GAMMA * (1 + theta) ** (1 - SSVI_GAMMA))
        return 0.5 * theta * (1 + rho * phi * k + np.sqrt((phi * k + rho) ** 2 + 1 - rho**2))

    def fetch_history(self, ticker: str, end: date, days: int) -> DailyHistory:
        path = self.path(ticker, end)
        stop = int(np.searchsorted(np.array(path.days), np.datetime64(end), side="right"))
        start = max(0, stop - days)
        p = self.profile(ticker)
        t30 = 30 / 365
        window = path.days[start:stop]
        event = self._event_variance(p) * _earnings_within(window, path.earnings, 30)
        vol, rho, close = path.vol[start:stop], path.rho[start:stop], path.close[start:stop]
        k = np.linspace(-0.6, 0.4, 161)[None, :] * np.sqrt(t30) * vol[:, None] * 4
        w = self._total_variance(
            p, vol[:, None], rho[:, None], k, np.full_like(k, t30), event[:, None]
        )
        iv = np.sqrt(w / t30)
        atm_iv = np.sqrt(
            self._total_variance(p, vol, rho, np.zeros_like(vol), np.full_like(vol, t30), event)
            / t30
        )
        skew = _risk_reversal_from_grid(k, iv, t30, self.rate, p.div_yield)
        return DailyHistory(ticker, list(window), close.copy(), atm_iv, skew)

    # ---- chains ------------------------------------------------------------------------
    def quote_time(self, now: datetime) -> datetime:
        return cal.market_clock(now)[2]

    def fetch_chain(self, ticker: str, now: datetime) -> ChainResult:
        return _finish([self._raw_chain(ticker, now)])[0]

    def fetch_chains(
        self, tickers: Sequence[str], now: datetime
    ) -> Iterator[tuple[str, ChainResult | Exception]]:
        """Chains for many tickers; implied vols and greeks are solved in one vectorised pass
        per block of tickers (per-call overhead, not arithmetic, dominates small chains)."""
        for start in range(0, len(tickers), BATCH_TICKERS):
            raws: list[_RawChain] = []
            for ticker in tickers[start : start + BATCH_TICKERS]:
                try:
                    raws.append(self._raw_chain(ticker, now))
                except Exception as exc:  # one ticker's failure is reported, not raised
                    yield ticker, exc
            yield from zip([r.underlying.ticker for r in raws], _finish(raws), strict=True)

    def _raw_chain(self, ticker: str, now: datetime) -> _RawChain:
        day, fraction, quote_time = cal.market_clock(now)
        path = self.path(ticker, day)
        i = path.days.index(day)
        p = self.profile(ticker)
        rng = np.random.default_rng(
            [self.seed, _stable_hash("chain", ticker), day.toordinal(), int(fraction * 390)]
        )
        prev_close, close = path.close[max(i - 1, 0)], path.close[i]
        bridge = np.sqrt(fraction * (1 - fraction)) * path.vol[i] * VRP / np.sqrt(252)
        spot = float(
            prev_close
            * np.exp(fraction * np.log(close / prev_close) + bridge * rng.standard_normal())
        )
        vol_now = float(
            path.vol[max(i - 1, 0)] + fraction * (path.vol[i] - path.vol[max(i - 1, 0)])
        )
        weeklies = self.weeklies + 4 if p.liquidity >= LIQUID else self.weeklies
        expirations = [
            e
            for e in cal.listed_expirations(day, weeklies, self.horizon_days)
            if cal.expiry_close(e) > quote_time
        ]
        columns = self._chain(
            p, path, day, quote_time, spot, vol_now, float(path.rho[i]), fraction, expirations
        )
        underlying = UnderlyingQuote(
            ticker=ticker,
            as_of=quote_time,
            price=round(spot, 4),
            bid=round(spot * 0.9999, 2),
            ask=round(spot * 1.0001, 2),
            volume=int(p.liquidity * 2e6 * fraction),
            dividend_yield=p.div_yield,
        )
        return _RawChain(underlying, columns, spot, self.rate, p.div_yield)

    def _chain(
        self,
        p: TickerProfile,
        path: DailyPath,
        day: date,
        quote_time: datetime,
        spot: float,
        vol_now: float,
        rho: float,
        fraction: float,
        expirations: list[date],
    ) -> dict[str, NDArray]:
        """Every column but implied vol and greeks (solved later, many chains at once)."""
        r, q = self.rate, p.div_yield
        exp_list, strike_list = [], []
        for expiry in expirations:
            t = (cal.expiry_close(expiry) - quote_time).total_seconds() / cal.SECONDS_PER_YEAR
            width = max(0.12, self.strike_sigmas * vol_now * np.sqrt(t))
            strikes = strike_grid(spot * np.exp(-width), spot * np.exp(width))
            if p.liquidity >= LIQUID:
                near = fine_strikes(spot, min(width, 0.08))
                strikes = np.union1d(strikes, near)
            exp_list.append(np.full(strikes.size, np.datetime64(expiry, "s")))
            strike_list.append(strikes)
        if not strike_list:
            empty = ChainBatch.empty().columns
            return {"t": np.empty(0), **{k: v for k, v in empty.items() if k not in SOLVED}}
        expiry_s = np.concatenate(exp_list)
        strike = np.concatenate(strike_list)
        n = strike.size
        expiry_s, strike = np.tile(expiry_s, 2), np.tile(strike, 2)
        is_call = np.repeat([True, False], n)
        close_ts = np.array(
            [np.datetime64(cal.expiry_close(e).replace(tzinfo=None), "s") for e in expirations]
        )
        exp_index = np.searchsorted(
            np.array([np.datetime64(e, "s") for e in expirations]), expiry_s
        )
        quote_s = np.datetime64(quote_time.replace(tzinfo=None), "s")
        t = (close_ts[exp_index] - quote_s).astype("int64") / cal.SECONDS_PER_YEAR
        event = np.zeros_like(t)
        for e in path.earnings:  # expiries after an upcoming earnings date carry its variance
            if day <= e:
                event += np.where(
                    expiry_s.astype("datetime64[D]") >= np.datetime64(e),
                    self._event_variance(p),
                    0.0,
                )
        forward = spot * np.exp((r - q) * t)
        k = np.log(strike / forward)
        sigma = np.sqrt(self._total_variance(p, vol_now, rho, k, t, event) / t)
        mid = bs_price(spot, strike, t, r, sigma, is_call, q)
        bid, ask = _quote(mid, k / (sigma * np.sqrt(t)), t, self._rng(p, day, "spread"))
        oi = self._open_interest(p, path, day, strike, is_call, expiry_s)
        volume = self._volume(p, day, fraction, oi, k, t, is_call)
        noise = self._rng(p, day, "last", int(fraction * 390)).uniform(-0.4, 0.4, oi.size)
        last = np.where(
            volume > 0, np.round(np.clip(mid + noise * (ask - bid), bid, ask), 2), np.nan
        )
        size = strike.size
        return {
            "t": t,
            "ticker": np.full(size, p.ticker, dtype=object),
            "as_of": np.full(size, np.datetime64(quote_time.replace(tzinfo=None), "us")),
            "expiration": expiry_s,
            "strike": strike,
            "right": np.where(is_call, "C", "P").astype(object),
            "bid": bid,
            "ask": ask,
            "last": last,
            "volume": volume,
            "open_interest": oi.astype(CHAIN_COLUMNS["open_interest"]),
        }

    def _rng(self, p: TickerProfile, day: date, *parts: object) -> np.random.Generator:
        return np.random.default_rng([self.seed, _stable_hash(p.ticker, *parts), day.toordinal()])

    def _open_interest(
        self,
        p: TickerProfile,
        path: DailyPath,
        day: date,
        strike: NDArray[np.float64],
        is_call: NDArray[np.bool_],
        expiry: NDArray,
    ) -> NDArray[np.float64]:
        """Open interest as published before the open: fixed for the whole session.

        It depends only on the contract and the previous close, never on the intraday spot or
        on the contract's position in the chain (listings move with the spot during the day).
        """
        i = path.days.index(day)
        ref_spot, ref_vol = path.close[max(i - 1, 0)], path.vol[max(i - 1, 0)]
        expiry_day = expiry.astype("datetime64[D]")
        t = ((expiry_day - np.datetime64(day, "D")).astype(np.int64) + 1) / 365.0
        k = np.log(strike / (ref_spot * np.exp((self.rate - p.div_yield) * t)))
        spread = 0.6 * ref_vol * np.sqrt(t) + 0.04
        profile = np.exp(-0.5 * (k / spread) ** 2)
        round_boost = (
            1 + 1.0 * (strike % 50 == 0) + 0.4 * (strike % 25 == 0) + 0.2 * (strike % 10 == 0)
        )
        days, index = np.unique(expiry_day, return_inverse=True)
        is_monthly = np.array([_is_monthly(d) for d in days.tolist()])[index]
        term = np.where(is_monthly, 1.0, 0.45) * np.exp(-t / 0.8) + 0.05
        side = np.where(is_call, 1.0, 1.6 if p.ticker in ETFS else 0.8)
        base = 400 * p.liquidity * profile * round_boost * term * side
        key = _stable_hash(self.seed, p.ticker, "oi", day.toordinal())
        z = _contract_normal(key, expiry_day, strike, is_call)
        return np.floor(base * np.exp(0.35 * z))

    def _volume(
        self,
        p: TickerProfile,
        day: date,
        fraction: float,
        oi: NDArray[np.float64],
        k: NDArray[np.float64],
        t: NDArray[np.float64],
        is_call: NDArray[np.bool_],
    ) -> NDArray[np.int64]:
        """Daily volume ≈ 1-2 % of OI, near-dated contracts busier; accrues through the day."""
        rng = self._rng(p, day, "volume")
        daily = oi * rng.uniform(0.006, 0.016, oi.size) * (1 + 0.6 * np.exp(-t / 0.05))
        burst_rng = self._rng(p, day, "burst")
        if burst_rng.random() < 0.2:  # an unusual-volume day: a few short-dated OTM contracts
            candidates = np.flatnonzero((t < 0.15) & (np.abs(k) > 0.02) & (np.abs(k) < 0.15))
            if candidates.size:
                picks = burst_rng.choice(candidates, size=min(3, candidates.size), replace=False)
                daily[picks] = oi[picks] * burst_rng.uniform(3, 12, picks.size) + 800
        accrued = rng.poisson(np.maximum(daily * fraction, 0))
        return accrued.astype(np.int64)


@dataclass(frozen=True)
class _RawChain:
    underlying: UnderlyingQuote
    columns: dict[str, NDArray]  # CHAIN_COLUMNS but the solved ones, plus "t" (years)
    spot: float
    rate: float
    div_yield: float


def _finish(raws: list[_RawChain]) -> list[ChainResult]:
    """Solve implied vol from each quote's mid, then greeks at it, for all chains at once."""
    if not raws:
        return []
    sizes = [len(r.columns["strike"]) for r in raws]

    def cat(name: str) -> NDArray:
        return np.concatenate([r.columns[name] for r in raws])

    def per_contract(attr: str) -> NDArray[np.float64]:
        return np.repeat([getattr(r, attr) for r in raws], sizes).astype(np.float64)

    spot, rate, q = per_contract("spot"), per_contract("rate"), per_contract("div_yield")
    strike, t, is_call = cat("strike"), cat("t"), cat("right") == "C"
    mid = (cat("bid") + cat("ask")) / 2
    iv = implied_volatility(mid, spot, strike, t, rate, is_call, q, tol=1e-10).iv
    greeks = bs_greeks(spot, strike, t, rate, iv, is_call, q)
    solved = {"implied_volatility": iv, **greeks._asdict()}
    bounds = np.cumsum([0, *sizes])
    out = []
    for n, raw in enumerate(raws):
        part = slice(bounds[n], bounds[n + 1])
        columns = {k: v for k, v in raw.columns.items() if k != "t"}
        columns.update({k: v[part] for k, v in solved.items()})
        out.append(ChainResult(raw.underlying, ChainBatch(columns)))
    return out


@lru_cache(maxsize=8)
def _trading_days_cached(end: date) -> tuple[date, ...]:
    return tuple(cal.trading_days_between(EPOCH, end))


def _trading_days(end: date) -> list[date]:
    return list(_trading_days_cached(end))


def _is_monthly(day: date) -> bool:
    third = cal.third_friday(day.year, day.month)
    return day in (third, third - timedelta(days=1))


def _ar1(shocks: NDArray[np.float64], phi: float, block: int = 256) -> NDArray[np.float64]:
    """x[i] = phi·x[i-1] + shocks[i], x[-1] = 0, vectorised a block at a time.

    Inside a block x[i] = phi^i·(x0 + Σ_j≤i shocks[j]·phi^-j); blocks keep phi^-j finite.
    """
    out = np.empty_like(shocks)
    carry = 0.0
    for start in range(0, shocks.size, block):
        part = shocks[start : start + block]
        powers = phi ** np.arange(part.size)
        values = powers * (phi * carry + np.cumsum(part / powers))
        out[start : start + part.size] = values
        carry = float(values[-1]) if values.size else carry
    return out


_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix64(x: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """SplitMix64's finaliser: a well-spread 64-bit hash of each element (wraps on purpose)."""
    x = x ^ (x >> np.uint64(30))
    x = x * _MIX1
    x = x ^ (x >> np.uint64(27))
    x = x * _MIX2
    return x ^ (x >> np.uint64(31))


def _contract_normal(
    key: int, expiry_day: NDArray, strike: NDArray[np.float64], is_call: NDArray[np.bool_]
) -> NDArray[np.float64]:
    """A standard normal draw per contract, fixed by ``key`` and the contract's identity."""
    cents = np.round(strike * 100).astype(np.uint64)
    ident = (
        (expiry_day.astype(np.int64).astype(np.uint64) << np.uint64(33))
        ^ (cents << np.uint64(1))
        ^ is_call.astype(np.uint64)
    )
    h1 = _mix64(ident ^ np.uint64(key))
    h2 = _mix64(h1 ^ np.uint64(0x9E3779B97F4A7C15))
    u1 = ((h1 >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53  # in (0, 1)
    u2 = (h2 >> np.uint64(11)).astype(np.float64) / 2.0**53
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)  # Box–Muller


def strike_grid(low: float, high: float) -> NDArray[np.float64]:
    """OCC-style strikes in [low, high]: $2.50 below $25, $5 up to $200, $10 above."""
    bands = ((0.0, 25.0, 2.5), (25.0, 200.0, 5.0), (200.0, np.inf, 10.0))
    parts = []
    for lo, hi, step in bands:
        a, b = max(low, lo), min(high, hi)
        if a <= b:
            first = np.ceil(a / step) * step
            parts.append(np.arange(first, b + 1e-9, step))
    grid = np.unique(np.round(np.concatenate(parts), 2)) if parts else np.empty(0)
    return grid[grid > 0]


def fine_strikes(spot: float, width: float) -> NDArray[np.float64]:
    """$1 strikes ($0.50 under $25) within ``width`` log-moneyness, as liquid names list."""
    step = 0.5 if spot < 25 else 1.0
    low, high = spot * np.exp(-width), spot * np.exp(width)
    return np.round(np.arange(np.ceil(low / step) * step, high + 1e-9, step), 2)


def max_quote_width(mid: NDArray[np.float64]) -> NDArray[np.float64]:
    """Exchange maximum bid/ask widths by price (ISE-style table)."""
    return np.select([mid < 2, mid < 5, mid < 10, mid < 20], [0.25, 0.375, 0.5, 0.75], default=1.0)


def _quote(
    mid: NDArray[np.float64],
    moneyness_sd: NDArray[np.float64],
    t: NDArray[np.float64],
    rng: np.random.Generator,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Bid/ask around ``mid``: tighter near the money and near-dated, never wider than the rule."""
    illiquid = np.clip(0.15 * np.abs(moneyness_sd) + 0.3 * t, 0, 1)
    width = max_quote_width(mid) * np.clip(
        0.12 + 0.5 * illiquid + rng.uniform(0, 0.1, mid.size), 0.05, 1.0
    )
    tick = np.where(mid < 3, 0.01, 0.05)
    # nor wider than a cheap option's value (two ticks at least): else far-wing asks would climb
    # with moneyness and an OTM call's mid would rise with its strike
    width = np.minimum(width, np.maximum(mid, 2 * tick))
    bid = np.maximum(np.floor((mid - width / 2) / tick) * tick, 0.0)
    ask = np.maximum(np.ceil((mid + width / 2) / tick) * tick, bid + tick)
    return np.round(bid, 2), np.round(ask, 2)


def _risk_reversal_from_grid(
    k: NDArray[np.float64], iv: NDArray[np.float64], t: float, r: float, q: float
) -> NDArray[np.float64]:
    """IV(25Δ call) − IV(25Δ put) per row of a (days × log-moneyness) smile grid."""
    d1 = (-k + 0.5 * iv**2 * t) / (iv * np.sqrt(t))
    call_delta = np.exp(-q * t) * norm_cdf(d1)
    put_delta = call_delta - np.exp(-q * t)
    # both deltas fall as strike rises: interpolate each row where it crosses the target
    return _interp_falling(call_delta, iv, 0.25) - _interp_falling(put_delta, iv, -0.25)


def _interp_falling(
    x: NDArray[np.float64], y: NDArray[np.float64], target: float
) -> NDArray[np.float64]:
    """Per row, y at the point where the decreasing row of x crosses ``target`` (clamped)."""
    cols = x.shape[1]
    right = np.clip((x > target).sum(axis=1), 1, cols - 1)[:, None]  # first index at/below
    x0, x1 = np.take_along_axis(x, right - 1, 1), np.take_along_axis(x, right, 1)
    y0, y1 = np.take_along_axis(y, right - 1, 1), np.take_along_axis(y, right, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.clip(np.where(x0 != x1, (x0 - target) / (x0 - x1), 0.0), 0.0, 1.0)
    return (y0 + w * (y1 - y0))[:, 0]


def _earnings_within(
    days: list[date], earnings: frozenset[date], horizon: int
) -> NDArray[np.float64]:
    """1.0 for each day with an earnings date in (day, day + horizon], else 0.0."""
    if not earnings or not days:
        return np.zeros(len(days))
    marks = np.array(sorted(earnings), dtype="datetime64[D]")
    start = np.array(days, dtype="datetime64[D]")
    first = np.searchsorted(marks, start, side="right")
    last = np.searchsorted(marks, start + np.timedelta64(horizon, "D"), side="right")
    return (last > first).astype(np.float64)
