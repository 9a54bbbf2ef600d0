"""The embedded default market: a deterministic simulator that looks real to the analytics.

For a given seed and clock every number is reproducible, whatever was asked before and in
whichever process: every draw is seeded by what it describes (a ticker's series, a day, a
contract), never by the order of calls. Per ticker:
- underlying: geometric Brownian motion from 2018 with a three-state regime chain (calm, normal,
  stressed) that scales volatility. Part of each day's move happens overnight (the gap to the
  open); inside the session the price follows a Brownian bridge from the open to the day's close,
  seeded per (ticker, day), so 30-minute returns carry the daily volatility, not fresh noise;
- earnings: reported after the close on the earnings date; the jump lands in the next session's
  opening gap, and IV crushes at that open (until then, expiries after the report price it);
- volatility: 30-day ATM IV follows a mean-reverting AR(1) in log space around the regime's level,
  with occasional spikes that decay; realised vol runs below implied (a variance risk premium);
- term structure: sigma(T) = v_inf + (v_now - v_inf)·exp(-T/tau), so calm markets are in contango
  and stressed ones in backwardation; expiries spanning earnings carry extra event variance;
- smile: SSVI (Gatheral & Jacquier 2014) with negative, slowly wandering rho;
- chain: listed expirations (dailies for SPY/QQQ/IWM, weeklies, third-Friday monthlies), OCC
  strike spacing, mid prices from the pricing core inside quote widths that follow vega,
  liquidity and moneyness (never wider than the exchange maximum);
- positioning: open interest is the sum of cohorts of opening flow (ten trading days each,
  centred on the price before the cohort began: calls above it, puts below, round strikes
  favoured) that are closed a little every night, plus positions opened in unusual-volume bursts.
  The cohorts' call and put appetites wander (more puts when vol is high), so the put/call ratio,
  the GEX sign and the walls move from day to day. It is a closed form per (contract, day), so
  any process computes the same number without replaying history. A day's volume is at least
  the next morning's change in open interest (no position opens or closes without a trade), plus
  turnover, and accrues monotonically through the session along a U-shaped intraday curve.

Chains and histories are computed in blocks of tickers; with enough blocks and a second core, a
forked child computes the later half of them (``forked.in_two``) and sends back each block with the
paths it simulated, so the parent's caches end as warm as if it had computed them itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import pickle
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache

import numpy as np
from numpy.random.bit_generator import ISeedSequence
from numpy.typing import NDArray

from chalicelib.domain import calendar as cal
from chalicelib.domain.chain import CHAIN_COLUMNS, ChainBatch
from chalicelib.domain.models import UnderlyingQuote
from chalicelib.domain.normal import norm_cdf
from chalicelib.domain.pricing import bs_greeks, bs_price, implied_volatility
from chalicelib.write import forked
from chalicelib.write.providers.base import (
    ChainResult,
    DailyHistory,
    MarketDataProvider,
    ProviderError,
)

EPOCH = date(2018, 1, 2)
_SERIES = (  # a path's random series, each from its own stream
    "regime", "vol", "ret", "spike", "rho", "gap", "spike_size", "jump",
    "call_tilt", "put_tilt", "call_shift", "put_shift", "burst",
)  # fmt: skip
AHEAD = timedelta(days=92)  # a path runs a quarter past the day asked: cycles reuse it
REGIME_VOL = np.array([0.8, 1.0, 1.6])  # calm, normal, stressed multipliers of base vol
REGIME_STAY = np.array([0.985, 0.985, 0.95])
SOLVED = ("implied_volatility", "delta", "gamma", "theta", "vega", "rho")
BATCH_TICKERS = 64  # chains whose implied vols are solved together
LIQUID = 8.0  # liquidity above which a name lists $1 strikes near the money and more weeklies
VRP = 0.85  # realised / implied
TERM_TAU = 0.3  # years: how fast the term structure reverts to its long-run level
SSVI_ETA, SSVI_GAMMA = 1.0, 0.5
ETFS = frozenset({"SPY", "QQQ", "IWM", "DIA", "XLF", "XLE", "GLD", "TLT", "EEM", "SMH"})
DAILY_EXPIRIES = frozenset({"SPY", "QQQ", "IWM"})  # list Mon–Fri expiries; quote in pennies
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
OVERNIGHT = 0.2  # share of a day's diffusive variance realised between the close and the open
COHORT_DAYS = 10  # trading days of opening flow that share one centre price and appetite
COHORTS = 10  # cohorts remembered; the oldest fades out over its last COHORT_DAYS
HOLD = 0.99  # share of the positions open tonight still open tomorrow night
_HELD = HOLD ** np.arange(COHORT_DAYS + 1)
BURST_ODDS = 0.2  # chance that a day brings unusual volume in a few short-dated OTM contracts
BURST_MEMORY = 10  # trading days a burst's opened positions are remembered in open interest
WIDE_AT = 40.0  # liquidity at which quotes are as tight as SPY's
# the history's 30-day smile grid: log-moneyness per unit of 4·vol (times sqrt(30 / 365))
_SMILE_K = np.linspace(-0.6, 0.4, 161)[None, :] * np.sqrt(30 / 365)


def _stable_hash(*parts: object) -> int:
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def _generator(*entropy: int) -> np.random.Generator:
    """``np.random.default_rng(list(entropy))``, the same stream: the integers are cut into the
    32-bit words (least significant first) numpy's SeedSequence would make of the list, which
    spares its per-call list coercion (a dozen generators per ticker)."""
    return np.random.default_rng(np.array(_words(entropy), dtype=np.uint32))


def _words(entropy: Sequence[int]) -> list[int]:
    words = []
    for n in entropy:
        if n < 0:
            raise ValueError(f"entropy must be non-negative, got {n}")
        words.append(n & 0xFFFFFFFF)
        n >>= 32
        while n:
            words.append(n & 0xFFFFFFFF)
            n >>= 32
    return words


def _generators(entropies: Sequence[Sequence[int]]) -> list[np.random.Generator]:
    """``[_generator(*e) for e in entropies]``, the same streams at a seventh of the cost:
    SeedSequence's hash of every entropy done together on arrays (``_seed_words``), each
    PCG64 then seeded with its words as numpy's own SeedSequence would hand them over."""
    words = [_words(e) for e in entropies]
    out: list[np.random.Generator | None] = [None] * len(words)
    for length in {len(w) for w in words}:
        rows = [n for n, w in enumerate(words) if len(w) == length]
        seeds = _seed_words(np.array([words[n] for n in rows], dtype=np.uint32).reshape(-1, length))
        for n, seed in zip(rows, seeds, strict=True):
            out[n] = np.random.Generator(np.random.PCG64(_SeedWords(seed)))
    return out  # type: ignore[return-value]


class _SeedWords(ISeedSequence):
    """A seed sequence whose state is already generated: PCG64 asks it for four 64-bit words."""

    __slots__ = ("words",)

    def __init__(self, words: NDArray[np.uint64]) -> None:
        self.words = words

    def generate_state(self, n_words: int, dtype: type = np.uint32) -> NDArray[np.uint64]:
        if n_words != 4 or np.dtype(dtype) != np.uint64:
            raise ValueError("seed words are PCG64's: four 64-bit words")
        return self.words


# numpy's SeedSequence (bit_generator.pyx): a pool of four 32-bit words, its hash constants
_POOL = 4
_INIT_A, _MULT_A, _INIT_B, _MULT_B = 0x43B0D7E5, 0x931E8875, 0x8B51F9DD, 0x58F38DED
_MIX_L, _MIX_R = np.uint32(0xCA01F9DD), np.uint32(0x4973F715)
_SHIFT = np.uint32(16)


def _seed_words(entropy: NDArray[np.uint32]) -> NDArray[np.uint64]:
    """Per row of 32-bit entropy words, ``SeedSequence(row).generate_state(4, np.uint64)``:
    the same mixing, one array operation for every row (uint32 arithmetic wraps as C's does)."""
    rows, length = entropy.shape
    const = _INIT_A

    def hashmix(value: NDArray[np.uint32]) -> NDArray[np.uint32]:
        nonlocal const
        value = value ^ np.uint32(const)
        const = (const * _MULT_A) & 0xFFFFFFFF
        value = value * np.uint32(const)
        return value ^ (value >> _SHIFT)

    def mix(x: NDArray[np.uint32], y: NDArray[np.uint32]) -> NDArray[np.uint32]:
        result = _MIX_L * x - _MIX_R * y
        return result ^ (result >> _SHIFT)

    zero = np.zeros(rows, dtype=np.uint32)
    pool = [hashmix(entropy[:, i] if i < length else zero) for i in range(_POOL)]
    for src in range(_POOL):
        for dst in range(_POOL):
            if src != dst:
                pool[dst] = mix(pool[dst], hashmix(pool[src]))
    for src in range(_POOL, length):
        for dst in range(_POOL):
            pool[dst] = mix(pool[dst], hashmix(entropy[:, src]))
    const = _INIT_B
    state = np.empty((rows, 2 * _POOL), dtype=np.uint32)
    for i in range(2 * _POOL):
        value = pool[i % _POOL] ^ np.uint32(const)
        const = (const * _MULT_B) & 0xFFFFFFFF
        value = value * np.uint32(const)
        state[:, i] = value ^ (value >> _SHIFT)
    return state.view(np.uint64)  # as numpy views its words: pairs, in native byte order


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
        rng = _generator(seed, _stable_hash("profile", ticker))
        spot0, vol, q, liq = KNOWN.get(ticker) or (
            float(np.exp(rng.uniform(np.log(15), np.log(500)))),
            float(rng.uniform(0.2, 0.65)),
            float(rng.choice([0.0, 0.0, rng.uniform(0.003, 0.03)])),
            float(np.exp(rng.uniform(np.log(0.3), np.log(6)))),
        )
        phase = None if ticker in ETFS else int(rng.integers(20, 91))
        return cls(ticker, spot0, vol, q, liq, phase)

    @property
    def liquid(self) -> bool:
        return self.liquidity >= LIQUID

    @property
    def put_appetite(self) -> float:
        """Put open interest per call open interest in normal markets (index hedging in ETFs)."""
        return 1.6 if self.ticker in ETFS else 0.8

    @property
    def event_sd(self) -> float:
        """Standard deviation of the earnings jump (log return at the next open)."""
        return 0.6 * self.base_vol / 4


@dataclass(frozen=True)
class DailyPath:
    """Daily state, index 0 = EPOCH's trading day. Open interest of day i is built from the
    state at i - 1 (what the market knew at the previous close)."""

    days: list[date]
    day64: NDArray  # the same days as datetime64[D]
    open: NDArray[np.float64]
    close: NDArray[np.float64]
    vol: NDArray[np.float64]  # 30-day ATM IV level excluding earnings variance
    rho: NDArray[np.float64]
    earnings: frozenset[date]  # reports through max(horizon_days, 30) days past the last day
    call_tilt: NDArray[np.float64]  # log appetite for opening calls, wandering
    put_tilt: NDArray[np.float64]
    call_shift: NDArray[np.float64]  # how far above the price calls are opened, in widths
    put_shift: NDArray[np.float64]  # how far below it puts are opened
    burst_draw: NDArray[np.float64]  # < BURST_ODDS: an unusual-volume day

    def at(self, day: date) -> int:
        """Index of trading day ``day``."""
        i = int(np.searchsorted(self.day64, np.datetime64(day, "D")))
        if i >= len(self.days) or self.days[i] != day:
            raise ValueError(f"{day} is not a trading day of the simulated path")
        return i


@dataclass(frozen=True)
class _Contracts:
    """Contract identities of one chain (or of one day's bursts), one row per contract; what
    depends on the expiry only is kept once per expiry (``slot`` says whose)."""

    expiry: NDArray  # datetime64[D]
    strike: NDArray[np.float64]
    is_call: NDArray[np.bool_]
    slot: NDArray[np.intp]  # index into the per-expiry arrays below
    expiries: NDArray  # datetime64[D], each expiry once
    kinds: NDArray[np.int8]  # per expiry: 0 monthly, 1 weekly, 2 daily
    listed: NDArray  # per expiry, datetime64[D]: the day the expiry was listed
    ident: NDArray[np.uint64]
    lumpy: NDArray[np.float64]  # the contract's own, lasting share of its neighbours' interest

    @classmethod
    def build(
        cls,
        market: SyntheticMarket,
        p: TickerProfile,
        expiries: Sequence[date],
        where: NDArray[np.intp],
        strike: NDArray[np.float64],
        is_call: NDArray[np.bool_],
    ) -> _Contracts:
        """Contracts on ``expiries[where]``; ``expiries`` holds each expiry once."""
        days, kinds, listed = _expiry_table(
            tuple(expiries), market._weeklies(p), market.horizon_days, market._dailies(p)
        )
        expiry = days[where]
        ident = _contract_ident(expiry, strike, is_call)
        return cls(
            expiry=expiry,
            strike=strike,
            is_call=is_call,
            slot=where,
            expiries=days,
            kinds=kinds,
            listed=listed,
            ident=ident,
            lumpy=np.exp(0.35 * _normal(market._key(p, None, "oi"), ident)),
        )

    @classmethod
    def concat(cls, parts: Sequence[_Contracts]) -> _Contracts:
        """The contracts of ``parts`` as one set, each part's expiries its own slots."""
        offsets = np.cumsum([0, *(c.expiries.size for c in parts[:-1])])

        def cat(name: str) -> NDArray:
            return np.concatenate([getattr(c, name) for c in parts])

        return cls(
            expiry=cat("expiry"),
            strike=cat("strike"),
            is_call=cat("is_call"),
            slot=np.concatenate([c.slot + o for c, o in zip(parts, offsets, strict=True)]),
            expiries=cat("expiries"),
            kinds=cat("kinds"),
            listed=cat("listed"),
            ident=cat("ident"),
            lumpy=cat("lumpy"),
        )


@dataclass(frozen=True)
class _Bursts:
    """One day's unusual-volume contracts: their full-day volume and when in the session."""

    contracts: _Contracts
    volume: NDArray[np.float64]
    start: NDArray[np.float64]  # fraction of the session at which the burst begins


Result = ChainResult | DailyHistory | Exception  # what one ticker's computation ends in
Pairs = list[tuple[str, Result]]


class SyntheticMarket(MarketDataProvider):
    """Deterministic simulated market; ``seed`` and the clock passed in fix every number.

    ``workers``: 1 computes chains in this process; 2 forks a child for half the blocks of
    ``fetch_chains``; None (the default) is 2 when ``os.fork`` and a second core are there.
    """

    name = "synthetic"

    def __init__(
        self,
        seed: int = 7,
        rate: float = 0.045,
        weeklies: int = 8,
        horizon_days: int = 370,
        strike_sigmas: float = 2.8,
        dailies: int = 10,
        workers: int | None = None,
    ) -> None:
        if workers not in (None, 1, 2):
            raise ValueError(f"workers must be None, 1 or 2, got {workers!r}")
        self.seed = seed
        self.rate = rate
        self.weeklies = weeklies
        self.horizon_days = horizon_days
        self.strike_sigmas = strike_sigmas
        self.dailies = dailies
        self.workers = workers if workers is not None else 2 if forked.can_fork() else 1
        self._paths: dict[str, DailyPath] = {}
        self._profiles: dict[str, TickerProfile] = {}
        self._bursts: dict[tuple[str, int], _Bursts | None] = {}

    # ---- daily model -------------------------------------------------------------------
    def profile(self, ticker: str) -> TickerProfile:
        cached = self._profiles.get(ticker)
        if cached is None:
            cached = self._profiles[ticker] = TickerProfile.for_ticker(ticker, self.seed)
        return cached

    def path(self, ticker: str, through: date) -> DailyPath:
        cached = self._paths.get(ticker)
        if cached is None or cached.days[-1] <= through:
            cached = self._simulate(ticker, *_trading_days(_path_end(through)))
            self._paths[ticker] = cached
        return cached

    def _simulate(self, ticker: str, days: list[date], day64: NDArray) -> DailyPath:
        return self._simulate_many([ticker], days, day64)[0]

    def _simulate_paths(self, tickers: Sequence[str], through: date) -> None:
        """The paths ``path`` would simulate for ``tickers``, simulated together (numpy calls
        per block of tickers, not per ticker); a ticker that cannot be is left to ``path``."""
        todo = [t for t in tickers if (c := self._paths.get(t)) is None or c.days[-1] <= through]
        if len(todo) < 2:
            return
        with contextlib.suppress(Exception):  # ``path`` raises it for the ticker at fault
            paths = self._simulate_many(todo, *_trading_days(_path_end(through)))
            self._paths.update(zip(todo, paths, strict=True))

    def _simulate_many(
        self, tickers: Sequence[str], days: list[date], day64: NDArray
    ) -> list[DailyPath]:
        """Each ticker's path, a row per ticker: every draw comes from the ticker's own
        streams and every row gets the arithmetic of a lone ticker's, element for element."""
        ps = [self.profile(t) for t in tickers]
        n = len(days)

        # one generator per series: the first n draws do not depend on how long the path is,
        # so a day's numbers do not depend on which date was asked for first
        keys = [(name, t) for name in _SERIES for t in tickers]
        entropies = [(self.seed, _stable_hash("path", t, name)) for name, t in keys]
        streams = dict(zip(keys, _generators(entropies), strict=True))

        def draws(
            name: str, draw: Callable[[np.random.Generator, TickerProfile], NDArray]
        ) -> NDArray[np.float64]:
            out = np.empty((len(ps), n))
            for row, (ticker, p) in enumerate(zip(tickers, ps, strict=True)):
                out[row] = draw(streams[name, ticker], p)
            return out

        def per_ticker(attr: str) -> NDArray[np.float64]:
            return np.array([getattr(p, attr) for p in ps], dtype=np.float64)[:, None]

        def along_days(x: NDArray[np.float64], phi: float) -> NDArray[np.float64]:
            return _ar1(x.T, phi).T

        def random(g: np.random.Generator, p: TickerProfile) -> NDArray[np.float64]:
            return g.random(n)

        def normal(g: np.random.Generator, p: TickerProfile) -> NDArray[np.float64]:
            return g.standard_normal(n)

        u_regime, z_vol, z_ret = draws("regime", random), draws("vol", normal), draws("ret", normal)
        u_spike, z_rho, z_gap = draws("spike", random), draws("rho", normal), draws("gap", normal)
        regime = np.stack([_regimes(row) for row in u_regime])
        spike_size = draws("spike_size", lambda g, p: g.uniform(0.25, 0.7, n))
        shocks = 0.06 * z_vol + np.where(u_spike > 0.992, spike_size, 0.0)
        log_dev = along_days(shocks, 0.96)
        vol = per_ticker("base_vol") * REGIME_VOL[regime]
        vol *= np.exp(log_dev - 0.5 * 0.06**2 / (1 - 0.96**2))
        rho = np.clip(-0.65 + 0.12 * along_days(0.25 * z_rho, 0.97), -0.95, -0.15)
        # a chain on the path's last day lists expiries up to horizon_days later, and its
        # history's 30-day IV spans reports up to 30 days later: the calendar runs past the path
        reports_end = days[-1] + timedelta(days=max(self.horizon_days, 30))
        earnings = [self._earnings(p, days[0], reports_end) for p in ps]
        realised = VRP * vol / np.sqrt(252)
        # reported after the close: the jump is in the next session's opening gap
        after_report = np.zeros((len(ps), n), dtype=bool)
        for row, dates in enumerate(earnings):
            reported = np.searchsorted(day64, np.array(dates, dtype="datetime64[D]")) + 1
            after_report[row, reported[reported < n]] = True
        jump = after_report * draws("jump", lambda g, p: g.normal(0, p.event_sd, n))
        diffusive = 0.07 / 252 - 0.5 * realised**2 + realised * z_ret
        # the overnight share of the diffusive move, drawn given the day's total
        gap = jump + OVERNIGHT * diffusive + np.sqrt(OVERNIGHT * (1 - OVERNIGHT)) * realised * z_gap
        log_ret = diffusive + jump
        log_ret[:, 0] = gap[:, 0] = 0.0
        level = np.cumsum(log_ret, axis=1)
        anchor = min(int(np.searchsorted(day64, np.datetime64(ANCHOR))), n - 1)
        close = per_ticker("spot0") * np.exp(level - level[:, anchor : anchor + 1])
        open_ = close * np.exp(gap - log_ret)
        # appetites wander (AR(1), sd ~0.2); each cohort of opening flow takes them as it starts
        call_tilt, put_tilt, call_shift, put_shift = (
            along_days(0.04 * draws(k, normal), 0.97)
            for k in ("call_tilt", "put_tilt", "call_shift", "put_shift")
        )
        call_shift += 0.5
        put_shift += 0.8
        burst_draw = draws("burst", random)
        return [
            DailyPath(
                days=days,  # one list for the block's paths (no one changes it)
                day64=day64,
                open=open_[row],
                close=close[row],
                vol=vol[row],
                rho=rho[row],
                earnings=frozenset(earnings[row]),
                call_tilt=call_tilt[row],
                put_tilt=put_tilt[row],
                call_shift=call_shift[row],
                put_shift=put_shift[row],
                burst_draw=burst_draw[row],
            )
            for row in range(len(ps))
        ]

    @staticmethod
    def _earnings(p: TickerProfile, start: date, end: date) -> list[date]:
        if p.earnings_phase is None:
            return []
        return list(_earnings_calendar(p.earnings_phase, start, end))

    def earnings_dates(self, ticker: str, start: date, end: date) -> list[date]:
        """Report dates in [start, end]; each report comes after that day's close.

        The calendar alone (no price path): the same dates as ``path(ticker, end).earnings``.
        """
        p = self.profile(ticker)
        return [d for d in self._earnings(p, EPOCH, end) if start <= d <= end]

    # ---- surfaces ----------------------------------------------------------------------
    def _total_variance(
        self,
        p: TickerProfile,
        vol_now: float | NDArray[np.float64],
        rho: float | NDArray[np.float64],
        k: NDArray[np.float64],
        t: NDArray[np.float64],
        event_var: NDArray[np.float64],
    ) -> NDArray[np.float64]:
        v_inf = p.base_vol * 1.05
        atm = v_inf + (vol_now - v_inf) * np.exp(-t / TERM_TAU)
        theta = atm**2 * t + event_var
        phi = SSVI_ETA / (theta**SSVI_GAMMA * (1 + theta) ** (1 - SSVI_GAMMA))
        # 0.5·theta·(1 + rho·phi·k + sqrt((phi·k + rho)² + 1 − rho²)), in place over the grid
        smile = np.multiply(rho * phi, k)
        smile += 1
        root = np.multiply(phi, k)
        root += rho
        root **= 2
        root += 1
        root -= rho**2
        smile += np.sqrt(root, out=root)
        smile *= 0.5 * theta
        return smile

    def fetch_history(self, ticker: str, end: date, days: int) -> DailyHistory:
        path = self.path(ticker, end)
        stop = int(np.searchsorted(path.day64, np.datetime64(end, "D"), side="right"))
        start = max(0, stop - days)
        p = self.profile(ticker)
        t30 = 30 / 365
        event = p.event_sd**2 * _earnings_within(path.day64[start:stop], path.earnings, 30)
        vol, rho, close = path.vol[start:stop], path.rho[start:stop], path.close[start:stop]
        k = _SMILE_K * vol[:, None]
        k *= 4
        # t is the same for every strike of a row: the row's ATM level and SSVI phi are
        # computed once per day and broadcast over the grid (the same numbers per element)
        t_rows = np.full((vol.size, 1), t30)
        iv = self._total_variance(p, vol[:, None], rho[:, None], k, t_rows, event[:, None])
        iv /= t30
        np.sqrt(iv, out=iv)
        atm_iv = np.sqrt(
            self._total_variance(p, vol, rho, np.zeros_like(vol), np.full_like(vol, t30), event)
            / t30
        )
        skew = _risk_reversal_from_grid(k, iv, t30, self.rate, p.div_yield)
        return DailyHistory(ticker, path.days[start:stop], close.copy(), atm_iv, skew)

    # ---- intraday ----------------------------------------------------------------------
    def _spot_at(
        self, p: TickerProfile, path: DailyPath, i: int, minute: int, minutes: int
    ) -> float:
        """The price ``minute`` minutes into day i's session of ``minutes``: a Brownian bridge
        from the open to the close, with the day's intraday share of realised variance."""
        if minute >= minutes:
            return float(path.close[i])
        o, c = path.open[i], path.close[i]
        rng = self._rng(p, path.days[i], "bridge")
        walk = np.concatenate([[0.0], np.cumsum(rng.standard_normal(minutes))]) / np.sqrt(minutes)
        f = minute / minutes
        bridge = walk[minute] - f * walk[-1]
        sd = np.sqrt(1 - OVERNIGHT) * VRP * path.vol[i] / np.sqrt(252)
        return float(o * np.exp(f * np.log(c / o) + sd * bridge))

    # ---- chains ------------------------------------------------------------------------
    def quote_time(self, now: datetime) -> datetime:
        return cal.market_clock(now)[2]

    def fetch_chain(self, ticker: str, now: datetime) -> ChainResult:
        raws = [self._raw_chain(ticker, now)]
        self._price(raws)
        return _finish(raws)[0]

    def fetch_chains(
        self, tickers: Sequence[str], now: datetime
    ) -> Iterator[tuple[str, ChainResult | Exception]]:
        """Chains for many tickers; model mids, then implied vols and greeks, are solved in one
        vectorised pass per block of tickers (per-call overhead, not arithmetic, dominates
        small chains)."""
        yield from self._in_blocks(tickers, lambda block: self._block(block, now))

    def fetch_histories(
        self, tickers: Sequence[str], end: date, days: int
    ) -> Iterator[tuple[str, DailyHistory | Exception]]:
        """Histories for many tickers, in blocks like ``fetch_chains`` (a child computes the
        later half, and its paths warm this process's cache for the chains that follow)."""
        yield from self._in_blocks(tickers, lambda block: self._history_block(block, end, days))

    def _in_blocks(
        self, tickers: Sequence[str], compute: Callable[[Sequence[str]], Pairs]
    ) -> Iterator[tuple[str, Result]]:
        """``compute`` over blocks of BATCH_TICKERS tickers, the later half in a forked child
        when there are enough blocks and a second worker."""
        blocks = [tickers[s : s + BATCH_TICKERS] for s in range(0, len(tickers), BATCH_TICKERS)]
        if self.workers < 2 or len(blocks) < forked.MIN_BLOCKS or not hasattr(os, "fork"):
            for block in blocks:
                yield from compute(block)
            return
        known = _Known(dict(self._paths), dict(self._profiles), len(self._bursts))
        for pairs in forked.in_two(
            blocks, compute, lambda block, pairs: self._pack(known, block, pairs), self._unpack
        ):
            yield from pairs

    def _history_block(self, tickers: Sequence[str], end: date, days: int) -> Pairs:
        self._simulate_paths(tickers, end)
        out: Pairs = []
        for ticker in tickers:
            try:
                out.append((ticker, self.fetch_history(ticker, end, days)))
            except Exception as exc:  # one ticker's failure is reported, not raised
                out.append((ticker, exc))
        return out

    def _block(self, tickers: Sequence[str], now: datetime) -> Pairs:
        """One block's chains: failures first, in ticker order, then the priced chains."""
        self._simulate_paths(tickers, _session_minute(now)[0])
        out: Pairs = []
        raws: list[_RawChain] = []
        for ticker in tickers:
            try:
                raws.append(self._raw_chain(ticker, now))
            except Exception as exc:  # one ticker's failure is reported, not raised
                out.append((ticker, exc))
        self._price(raws)
        out.extend(zip([r.underlying.ticker for r in raws], _finish(raws), strict=True))
        return out

    def _pack(self, known: _Known, tickers: Sequence[str], pairs: Pairs) -> object:
        """In the child: a block's results and what it added to the caches since the fork."""
        paths = {t: self._paths[t] for t in tickers if self._paths.get(t) is not known.paths.get(t)}
        profiles = {
            t: self._profiles[t]
            for t in tickers
            if self._profiles.get(t) is not known.profiles.get(t)
        }
        if len(self._bursts) < known.bursts:  # the cache was cleared: all of it is new
            known.bursts = 0
        bursts = dict(list(self._bursts.items())[known.bursts :])
        known.bursts = len(self._bursts)
        return [(t, _portable(r)) for t, r in pairs], paths, profiles, bursts

    def _unpack(self, tickers: Sequence[str], payload: object) -> Pairs:
        """In the parent: the child's block, checked, its cache entries made ours."""
        pairs, paths, profiles, bursts = payload  # type: ignore[misc]
        if not (
            isinstance(pairs, list)
            and all(isinstance(t, str) and isinstance(r, Result) for t, r in pairs)
            and sorted(t for t, _ in pairs) == sorted(tickers)
            and all(isinstance(c, dict) for c in (paths, profiles, bursts))
        ):
            raise ValueError("not the results of the block's tickers")
        self._paths.update(paths)
        self._profiles.update(profiles)
        self._bursts.update(bursts)
        return pairs

    def _weeklies(self, p: TickerProfile) -> int:
        return self.weeklies + 4 if p.liquid else self.weeklies

    def _dailies(self, p: TickerProfile) -> int:
        return self.dailies if p.ticker in DAILY_EXPIRIES else 0

    def _expirations(self, p: TickerProfile, day: date) -> tuple[date, ...]:
        return _listed(day, self._weeklies(p), self.horizon_days, self._dailies(p))

    def _raw_chain(self, ticker: str, now: datetime) -> _RawChain:
        day, quote_time, minute, minutes = _session_minute(now)
        fraction = minute / minutes
        path = self.path(ticker, day)
        i = path.at(day)
        p = self.profile(ticker)
        spot = self._spot_at(p, path, i, minute, minutes)
        prev = max(i - 1, 0)
        vol_now = float(path.vol[prev] + fraction * (path.vol[i] - path.vol[prev]))
        expirations = [e for e in self._expirations(p, day) if _close_time(e) > quote_time]
        columns, unquoted = self._chain(
            p, path, i, quote_time, spot, vol_now, minute, fraction, expirations
        )
        width = _underlying_width(spot, p.liquidity)
        underlying = UnderlyingQuote(
            ticker=ticker,
            as_of=quote_time,
            price=round(spot, 4),
            bid=float(np.floor((spot - width / 2) * 100) / 100),
            ask=float(np.ceil((spot + width / 2) * 100) / 100),
            volume=int(p.liquidity * 2e6 * _accrued(fraction)),
            dividend_yield=p.div_yield,
        )
        return _RawChain(underlying, columns, spot, self.rate, p.div_yield, unquoted)

    def _chain(
        self,
        p: TickerProfile,
        path: DailyPath,
        i: int,
        quote_time: datetime,
        spot: float,
        vol_now: float,
        minute: int,
        fraction: float,
        expirations: list[date],
    ) -> tuple[dict[str, NDArray], _Unquoted | None]:
        """Every column but the quotes (priced later, many chains at once: ``_price``) and
        implied vol and greeks (solved after them: ``_finish``)."""
        r, q, day = self.rate, p.div_yield, path.days[i]
        if not expirations:
            empty = ChainBatch.empty().columns
            return {"t": np.empty(0), **{k: v for k, v in empty.items() if k not in SOLVED}}, None
        close_ts = np.array([_close_seconds(e) for e in expirations])
        quote_s = np.datetime64(quote_time.replace(tzinfo=None), "s")
        t_expiry = (close_ts - quote_s).astype("int64") / cal.SECONDS_PER_YEAR
        width = np.maximum(0.12, self.strike_sigmas * vol_now * np.sqrt(t_expiry))
        owner, strikes = chain_strikes(spot, width, p.liquid)
        exp_index = np.tile(owner, 2)
        strike = np.tile(strikes, 2)
        is_call = np.repeat([True, False], strikes.size)
        contracts = _Contracts.build(self, p, expirations, exp_index, strike, is_call)
        expiry_day = contracts.expiry
        t = t_expiry[exp_index]
        event = np.zeros_like(t)
        for e in path.earnings:  # until the report (after e's close), expiries after e price it
            if day <= e:
                event += np.where(expiry_day > np.datetime64(e), p.event_sd**2, 0.0)
        forward = spot * np.exp((r - q) * t)
        k = np.log(strike / forward)
        sigma = np.sqrt(self._total_variance(p, vol_now, float(path.rho[i]), k, t, event) / t)
        self._draw_bursts(p, path, range(max(i - BURST_MEMORY, 1), i + 1))  # all it reads
        oi, oi_next = self._open_interest(p, path, (i, i + 1), contracts)
        volume = self._volume(p, path, i, contracts, oi, oi_next, fraction)
        size = strike.size
        columns = {
            "t": t,
            "ticker": np.full(size, p.ticker, dtype=object),
            "as_of": np.full(size, np.datetime64(quote_time.replace(tzinfo=None), "us")),
            "expiration": expiry_day.astype("datetime64[s]"),
            "strike": strike,
            "right": np.where(is_call, "C", "P").astype(object),
            "volume": volume,
            "open_interest": oi.astype(CHAIN_COLUMNS["open_interest"]),
        }
        return columns, _Unquoted(
            p, day, minute, spot, strike, t, sigma, k, is_call, contracts.ident
        )

    def _price(self, raws: list[_RawChain]) -> None:
        """Model mids of every chain in one vectorised pass, then each chain's bid, ask and
        last around them (per-call overhead, not arithmetic, dominates small chains)."""
        todo = [r for r in raws if r.unquoted is not None]
        parts = [u for u in (r.unquoted for r in raws) if u is not None]
        if not parts:
            return
        sizes = [u.strike.size for u in parts]

        def cat(name: str) -> NDArray:
            return np.concatenate([getattr(u, name) for u in parts])

        spot = np.repeat([u.spot for u in parts], sizes).astype(np.float64)
        q = np.repeat([u.p.div_yield for u in parts], sizes).astype(np.float64)
        mid = bs_price(spot, cat("strike"), cat("t"), self.rate, cat("sigma"), cat("is_call"), q)
        bounds = np.cumsum([0, *sizes])
        for n, raw in enumerate(todo):
            raw.columns.update(self._quotes(parts[n], mid[bounds[n] : bounds[n + 1]], raw))

    def _quotes(
        self, u: _Unquoted, mid: NDArray[np.float64], raw: _RawChain
    ) -> dict[str, NDArray[np.float64]]:
        """Bid, ask and last of one chain around its model mids."""
        p, q, t, k, spot = u.p, u.p.div_yield, u.t, u.k, u.spot
        total_vol = u.sigma * np.sqrt(t)
        d1 = -k / total_vol + 0.5 * total_vol
        vega_points = spot * np.exp(-q * t - 0.5 * d1**2) / np.sqrt(2 * np.pi) * np.sqrt(t) / 100
        call_delta = np.exp(-q * t) / (1 + np.exp(-1.702 * d1))  # logistic: close enough here
        delta = np.where(u.is_call, call_delta, call_delta - np.exp(-q * t))
        bid, ask = _quote(
            mid,
            vega_points,
            delta,
            np.abs(k) / total_vol,
            p,
            _underlying_width(spot, p.liquidity),
            _uniform(self._key(p, u.day, "spread"), u.ident),
        )
        noise = self._rng(p, u.day, "last", u.minute).uniform(-0.4, 0.4, mid.size)
        last = np.where(
            raw.columns["volume"] > 0,
            np.round(np.clip(mid + noise * (ask - bid), bid, ask), 2),
            np.nan,
        )
        return {"bid": bid, "ask": ask, "last": last}

    def _key(self, p: TickerProfile, day: date | None, *parts: object) -> int:
        return _stable_hash(self.seed, p.ticker, *parts, day.toordinal() if day else "")

    def _rng(self, p: TickerProfile, day: date, *parts: object) -> np.random.Generator:
        return _generator(self.seed, _stable_hash(p.ticker, *parts), day.toordinal())

    # ---- positioning -------------------------------------------------------------------
    def _positions(
        self,
        p: TickerProfile,
        path: DailyPath,
        days: Sequence[int | NDArray[np.intp]],
        c: _Contracts,
    ) -> list[NDArray[np.float64]]:
        """Open interest before the open of each day index in ``days``, bursts aside; a day
        may also be an array of day indices, one per expiry of ``c`` (contracts of several days
        at once, each at its own: a cohort outside a day's range weighs an exact zero there).

        Positions are opened day by day, in cohorts of COHORT_DAYS trading days that share the
        price before the cohort began (calls opened above it, puts below, in widths that grow
        with the time left), the ticker's appetites then, and more appetite for puts when vol
        is high; each night a share 1 - HOLD of what is open is closed. A cohort's mass is a
        geometric sum over its opening days since the contract was listed, so open interest
        is a closed form per contract: a new listing starts at zero and fills up, and a day's
        change is one day's opening and closing, not a whole profile moving with the price.
        Computed as a (cohort × contract) array: about a dozen cohorts, no Python loop.
        """
        low, high = min(int(np.min(i)) for i in days), max(int(np.max(i)) for i in days)
        oldest = max(0, (low - 1) // COHORT_DAYS - COHORTS)
        first = np.arange(oldest, (high - 1) // COHORT_DAYS + 1) * COHORT_DAYS
        anchor = np.maximum(first - 1, 0)
        col = (slice(None), None)  # per cohort, broadcast over contracts (or expiries)
        slot = c.slot
        # (cohort × expiry) first, then read per contract: the time left, widths and decay
        # depend on the expiry only
        days_left = c.expiries.astype(np.int64) - path.day64[first].astype(np.int64)[col]
        t = (np.maximum(days_left, 0) + 1) / 365.0
        width = (0.6 * p.base_vol * np.sqrt(t) + 0.04)[:, slot]
        term = (np.array([1.0, 0.5, 0.4])[c.kinds] * (0.6 + 0.4 * np.exp(-t / 0.25)))[:, slot]
        x = (np.log(c.strike) - np.log(path.close[anchor])[col]) / width
        shift = np.where(c.is_call, path.call_shift[anchor][col], -path.put_shift[anchor][col])
        strike = c.strike
        round_strike = (
            0.6 * (strike % 50 == 0) + 0.3 * (strike % 25 == 0) + 0.2 * (strike % 10 == 0)
        )
        # opened out of the money, where positions cluster on round strikes
        otm = 1 / (1 + np.exp(-4 * np.where(c.is_call, x, -x)))
        protection = p.put_appetite * np.exp(path.put_tilt[anchor])
        protection *= np.sqrt(path.vol[anchor] / p.base_vol)
        side = np.where(c.is_call, np.exp(path.call_tilt[anchor])[col], protection[col])
        flow = np.exp(-0.5 * (x - shift) ** 2) * (1 + otm * round_strike) * side
        flow *= term
        opened_from = np.maximum(first[col], np.searchsorted(path.day64, c.listed))
        scale = 400 * p.liquidity * c.lumpy
        expiry = c.expiry.astype(np.int64)
        out = []
        for i in days:
            if isinstance(i, np.ndarray):  # (cohort × expiry), each expiry at its own day
                at, starts = i[None, :], first[col]
                today = path.day64[i].astype(np.int64)[slot]
            else:
                at, starts, today = i, first, path.day64[i].astype(np.int64)
            end = np.minimum(starts + COHORT_DAYS, at)  # each cohort's opening days end here
            fade = np.clip((COHORTS + 1) * COHORT_DAYS - (at - starts), 0, COHORT_DAYS)
            weight = np.where(end > starts, HOLD ** (at - end) * fade / COHORT_DAYS, 0.0)
            if isinstance(i, np.ndarray):
                count = np.clip(end - opened_from, 0, COHORT_DAYS)
                kept = (weight * (1 - _HELD[count]))[:, slot]
            else:
                count = np.clip(end[col] - opened_from, 0, COHORT_DAYS)
                kept = (weight[col] * (1 - _HELD[count]))[:, slot]
            held = (flow * kept).sum(axis=0)  # row after row (two contracts or more)
            out.append(np.where(expiry >= today, held * scale, 0.0))
        return out

    def _open_interest(
        self, p: TickerProfile, path: DailyPath, days: Sequence[int], c: _Contracts
    ) -> list[NDArray[np.float64]]:
        """Open interest as published before the open of each of ``days``: fixed for the whole
        session, a function of the contract and the previous days only (not the intraday spot).
        """
        out = []
        for i, positions in zip(days, self._positions(p, path, days, c), strict=True):
            for j in range(max(i - BURST_MEMORY, 1), i):
                burst = self._burst(p, path, j)
                if burst is not None:  # 60 % of a burst opened positions, soon closed
                    fade = min(BURST_MEMORY - (i - j), 4) / 4
                    held = 0.6 * burst.volume * 0.9 ** (i - 1 - j) * fade
                    positions += _lookup(burst.contracts.ident, held, c.ident)
            out.append(np.floor(positions))
        return out

    def _volume(
        self,
        p: TickerProfile,
        path: DailyPath,
        i: int,
        c: _Contracts,
        oi: NDArray[np.float64],
        oi_next: NDArray[np.float64],
        fraction: float,
    ) -> NDArray[np.int64]:
        """Cumulative volume at ``fraction`` of day i's session.

        The day's total covers the overnight change in open interest (every opened or closed
        position is a trade), a burst if one hits the contract, and turnover that leaves open
        interest alone: ~0.2-0.5 % of it, busier near the money, and much busier in the last
        days before expiry (same-day round trips: about a tenth of an at-the-money 0DTE's open
        interest). It accrues along a U-shaped curve, each contract at its own pace, so it never
        falls within a session.
        """
        day = path.days[i]
        change = np.abs(oi_next - oi)
        change[c.expiry <= np.datetime64(day, "D")] = 0.0  # expiring today: nothing carries over
        burst = self._burst(p, path, i)
        spike = np.zeros(oi.size)
        start = np.ones(oi.size)
        if burst is not None:
            spike = _lookup(burst.contracts.ident, burst.volume, c.ident)
            start = _lookup(burst.contracts.ident, burst.start, c.ident, missing=1.0)
        days_left = (c.expiry - np.datetime64(day, "D")).astype(np.int64)
        width = 0.6 * p.base_vol * np.sqrt((days_left + 1) / 365.0) + 0.04
        near_money = np.exp(-0.5 * (np.log(c.strike / path.close[max(i - 1, 0)]) / width) ** 2)
        rate = 0.0015 + 0.003 * _uniform(self._key(p, day, "turnover"), c.ident)
        rate *= 0.5 + 0.8 * near_money + 40 * near_money * np.exp(-days_left)
        turnover = np.floor(oi * rate)
        total = np.maximum(change, spike) + turnover
        pace = np.exp(0.3 * (2 * _uniform(self._key(p, day, "pace"), c.ident) - 1))
        steady = _accrued(fraction) ** pace
        bursting = np.clip((fraction - start) / 0.08, 0.0, 1.0)
        accrued = spike * bursting + (total - spike) * steady
        return np.floor(accrued + 1e-9).astype(np.int64)

    def _burst(self, p: TickerProfile, path: DailyPath, i: int) -> _Bursts | None:
        """Day i's unusual volume: up to three short-dated OTM contracts trading several times
        their open interest, starting at a random time of the session (cached per day)."""
        key = (p.ticker, i)
        if key not in self._bursts:
            self._draw_bursts(p, path, (i,))
        return self._bursts[key]

    def _draw_bursts(self, p: TickerProfile, path: DailyPath, days: Iterable[int]) -> None:
        """Cache the bursts of ``days`` not cached yet; their contracts' open interest is
        computed in one pass (each at its own day)."""
        todo = [i for i in days if (p.ticker, i) not in self._bursts]
        if len(self._bursts) + len(todo) > 100_000:  # a pure cache: a writer running for months
            self._bursts.clear()
        drawn = []
        picks = 3
        for i in todo:
            self._bursts[(p.ticker, i)] = None
            if i == 0 or path.burst_draw[i] >= BURST_ODDS:
                continue
            day, spot = path.days[i], float(path.close[i - 1])
            expiries = [e for e in self._expirations(p, day) if 0 < (e - day).days <= 55]
            if not expiries:
                continue
            rng = self._rng(p, day, "burst")
            which = rng.integers(len(expiries), size=picks)
            k = rng.uniform(0.02, 0.11, picks) * rng.choice([-1.0, 1.0], picks)
            strike = np.array([_listed_strike(spot * np.exp(x), p.liquid) for x in k])
            contracts = _Contracts.build(self, p, expiries, which, strike, k > 0)  # OTM
            drawn.append((i, contracts, rng.uniform(3, 12, picks), rng.uniform(0.1, 0.85, picks)))
        if not drawn:
            return
        every = _Contracts.concat([c for _, c, _, _ in drawn])
        at = np.repeat([i for i, *_ in drawn], [c.expiries.size for _, c, _, _ in drawn])
        (base,) = self._positions(p, path, (at,), every)
        for n, (i, contracts, factor, start) in enumerate(drawn):
            volume = np.floor(base[n * picks : (n + 1) * picks] * factor + 800)
            self._bursts[(p.ticker, i)] = _Bursts(contracts, volume, start)


@dataclass
class _Known:
    """The caches as they were at the fork: what the child need not send back."""

    paths: dict[str, DailyPath]
    profiles: dict[str, TickerProfile]
    bursts: int  # entries of the bursts cache (new ones are appended)


def _portable(result: Result) -> Result:
    """``result`` if it survives a pickle round trip, else a ProviderError with its message."""
    if isinstance(result, Exception):
        try:
            pickle.loads(pickle.dumps(result))
        except Exception:  # whatever the exception holds, its message travels
            return ProviderError(f"{type(result).__name__}: {result}")
    return result


@dataclass(frozen=True)
class _RawChain:
    underlying: UnderlyingQuote
    columns: dict[str, NDArray]  # CHAIN_COLUMNS but the solved ones, plus "t" (years)
    spot: float
    rate: float
    div_yield: float
    unquoted: _Unquoted | None  # until ``_price`` adds bid, ask and last to the columns


@dataclass(frozen=True)
class _Unquoted:
    """What a chain's quotes need once its model mids are priced."""

    p: TickerProfile
    day: date
    minute: int
    spot: float
    strike: NDArray[np.float64]
    t: NDArray[np.float64]
    sigma: NDArray[np.float64]
    k: NDArray[np.float64]  # log-moneyness against the forward
    is_call: NDArray[np.bool_]
    ident: NDArray[np.uint64]


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
        columns = {k: solved[k][part] if k in solved else raw.columns[k] for k in CHAIN_COLUMNS}
        out.append(ChainResult(raw.underlying, ChainBatch(columns)))
    return out


def _regimes(u: NDArray[np.float64]) -> NDArray[np.int8]:
    """The regime Markov chain, state 1 first: on day i the state moves on when u[i] exceeds
    its REGIME_STAY (by one, or by two when u[i] is in the upper half of the rest). Sequential,
    but only a few percent of days can move any state: the loop visits just those, and the days
    between keep the state (the same chain as a loop over every day, a fraction of the cost)."""
    stay = REGIME_STAY.tolist()
    candidates = np.flatnonzero(u > REGIME_STAY.min())
    state, starts, states = 1, [0], [1]
    for i, draw in zip(candidates.tolist(), u[candidates].tolist(), strict=True):
        if draw > stay[state]:
            state = (state + (1 if draw > (1 + stay[state]) / 2 else 2)) % 3
            starts.append(i)
            states.append(state)
    lengths = np.diff(np.append(starts, u.size))
    return np.repeat(np.array(states, dtype=np.int8), lengths)


@lru_cache(maxsize=8)
def _trading_days_cached(end: date) -> tuple[tuple[date, ...], NDArray]:
    days = tuple(cal.trading_days_between(EPOCH, end))
    day64 = np.array(days, dtype="datetime64[D]")
    day64.flags.writeable = False  # shared by every path of this length
    return days, day64


def _path_end(through: date) -> date:
    """The last day of a path simulated for ``through``: a quarter ahead (the next trading
    day's open interest is read too), and always past ANCHOR, through which every path is
    scaled (draws are by day index from EPOCH, so a longer path repeats a shorter one)."""
    return max(through, ANCHOR) + AHEAD


def _trading_days(end: date) -> tuple[list[date], NDArray]:
    days, day64 = _trading_days_cached(end)
    return list(days), day64


def _is_monthly(day: date) -> bool:
    third = cal.third_friday(day.year, day.month)
    return day in (third, third - timedelta(days=1))


@lru_cache(maxsize=4096)
def _listed(day: date, weeklies: int, horizon_days: int, dailies: int) -> tuple[date, ...]:
    """The listing calendar, shared by every ticker that lists alike."""
    return tuple(cal.listed_expirations(day, weeklies, horizon_days, dailies=dailies))


@lru_cache(maxsize=4096)
def _expiry_table(
    expiries: tuple[date, ...], weeklies: int, horizon_days: int, dailies: int
) -> tuple[NDArray, NDArray[np.int8], NDArray]:
    """(days, kinds, listing days) of a list of expiries, shared by every chain listing them."""
    info = [_expiry_info(d, weeklies, horizon_days, dailies) for d in expiries]
    days = np.array(expiries, dtype="datetime64[D]")
    kinds = np.array([k for k, _ in info], dtype=np.int8)
    listed = np.array([d for _, d in info], dtype="datetime64[D]")
    for array in (days, kinds, listed):
        array.flags.writeable = False
    return days, kinds, listed


@lru_cache(maxsize=4096)
def _expiry_info(expiry: date, weeklies: int, horizon_days: int, dailies: int) -> tuple[int, date]:
    """(kind, listing day) of an expiry: 0 monthly, 1 weekly, 2 daily; listed when it first
    falls inside the listing window of its kind (approximately, in calendar days)."""
    friday = expiry.weekday() == 4 or (
        expiry.weekday() == 3 and not cal.is_trading_day(expiry + timedelta(days=1))
    )
    if _is_monthly(expiry):
        return 0, expiry - timedelta(days=horizon_days)
    if friday:
        return 1, expiry - timedelta(weeks=weeklies)
    return 2, expiry - timedelta(days=dailies * 7 // 5)


@lru_cache(maxsize=1024)
def _earnings_calendar(phase: int, start: date, end: date) -> tuple[date, ...]:
    """Report dates in [start, end] of a name whose first report is ``phase`` days after
    EPOCH: every 91 days, moved to the next trading day (shared by names of one phase)."""
    out, day = [], EPOCH + timedelta(days=phase)
    while day <= end:
        moved = day
        while not cal.is_trading_day(moved):
            moved += timedelta(days=1)
        if moved >= start:
            out.append(moved)
        day += timedelta(days=91)
    return tuple(out)


@lru_cache(maxsize=64)
def _powers(phi: float, n: int) -> NDArray[np.float64]:
    """phi ** arange(n), read-only (shared by every series of that length)."""
    out = phi ** np.arange(n)
    out.flags.writeable = False
    return out


@lru_cache(maxsize=4096)
def _close_time(expiry: date) -> datetime:
    """When options on ``expiry`` stop trading (UTC), shared by every ticker."""
    return cal.expiry_close(expiry)


@lru_cache(maxsize=4096)
def _close_seconds(expiry: date) -> np.datetime64:
    return np.datetime64(_close_time(expiry).replace(tzinfo=None), "s")


@lru_cache(maxsize=64)
def _session_minute(now: datetime) -> tuple[date, datetime, int, int]:
    """(session day, quote time, minute of the session, minutes in it) for a clock reading;
    everything a chain shows depends on the quote's minute only, so re-collecting is
    idempotent (shared by every ticker of a collect)."""
    day, _, quote_time = cal.market_clock(now)
    open_, close_ = cal.session_bounds(day)
    minutes = round((close_ - open_).total_seconds() / 60)
    minute = min(max(round((quote_time - open_).total_seconds() / 60), 0), minutes)
    return day, quote_time, minute, minutes


@lru_cache(maxsize=1024)
def _accrued(fraction: float) -> np.float64:
    """``_accrual`` at one fraction of the session."""
    return _accrual(np.array([fraction]))[0]


def _ar1(shocks: NDArray[np.float64], phi: float) -> NDArray[np.float64]:
    """x[i] = phi·x[i-1] + shocks[i], x[-1] = 0, along axis 0, vectorised a block at a time.

    Inside a block x[i] = phi^i·(x0 + Σ_j≤i shocks[j]·phi^-j); blocks keep phi^-j below 1e150
    (the rounding error stays eps·|shock|/(1 - phi) whatever the block length). Blocks start at
    index 0 whatever the series' length, so a longer path repeats a shorter one's numbers.
    """
    block = max(1, int(150 * np.log(10) / -np.log(phi)))
    out = np.empty_like(shocks)
    carry: float | NDArray[np.float64] = 0.0
    for start in range(0, shocks.shape[0], block):
        part = shocks[start : start + block]
        powers = _powers(phi, part.shape[0]).reshape(-1, *[1] * (part.ndim - 1))
        values = powers * (phi * carry + np.cumsum(part / powers, axis=0))
        out[start : start + part.shape[0]] = values
        carry = values[-1]
    return out


def _accrual(fraction: NDArray[np.float64]) -> NDArray[np.float64]:
    """Share of a day's volume traded by ``fraction`` of the session: the integral of a
    U-shaped intensity (busy open, quieter midday, busy close); 0 at the open, 1 at the close."""
    f = np.clip(fraction, 0.0, 1.0)

    def integral(x: NDArray[np.float64]) -> NDArray[np.float64]:
        return x + 0.15 * (1 - np.exp(-x / 0.1)) + 0.1 * (np.exp(-(1 - x) / 0.1) - np.exp(-10.0))

    return integral(f) / integral(np.ones(1))


_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix64(x: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """SplitMix64's finaliser: a well-spread 64-bit hash of each element (wraps on purpose)."""
    x = x ^ (x >> np.uint64(30))
    x = x * _MIX1
    x = x ^ (x >> np.uint64(27))
    x = x * _MIX2
    return x ^ (x >> np.uint64(31))


def _contract_ident(
    expiry_day: NDArray, strike: NDArray[np.float64], is_call: NDArray[np.bool_]
) -> NDArray[np.uint64]:
    """A 64-bit identity per contract (expiry, strike in cents, right), hashed."""
    cents = np.round(strike * 100).astype(np.uint64)
    days = expiry_day.astype("datetime64[D]").astype(np.int64).astype(np.uint64)
    return _mix64((days << np.uint64(33)) ^ (cents << np.uint64(1)) ^ is_call.astype(np.uint64))


def _uniform(key: int, ident: NDArray[np.uint64]) -> NDArray[np.float64]:
    """A uniform draw in (0, 1) per contract, fixed by ``key`` and the contract's identity."""
    h = _mix64(ident ^ np.uint64(key))
    return ((h >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53


def _normal(key: int, ident: NDArray[np.uint64]) -> NDArray[np.float64]:
    """A standard normal draw per contract (Box–Muller on two keyed uniforms)."""
    u1 = _uniform(key, ident)
    u2 = _uniform(key ^ 0x9E3779B97F4A7C15, ident)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def _lookup(
    keys: NDArray[np.uint64],
    values: NDArray[np.float64],
    wanted: NDArray[np.uint64],
    missing: float = 0.0,
) -> NDArray[np.float64]:
    """values summed per key, read at each of ``wanted`` (``missing`` where a key is absent)."""
    unique, where = np.unique(keys, return_inverse=True)
    totals = np.bincount(where, weights=values, minlength=unique.size)
    pos = np.clip(np.searchsorted(unique, wanted), 0, unique.size - 1)
    return np.where(unique[pos] == wanted, totals[pos], missing)


def chain_strikes(
    spot: float, width: NDArray[np.float64], liquid: bool
) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """The strikes of every expiry at once, as (expiry index, strike), by expiry then strike.

    Expiry j lists OCC-style strikes in spot·exp(±width[j]): $2.50 below $25, $5 up to $200,
    $10 above; liquid names add $1 strikes ($0.50 under $25) within min(width[j], 0.08)
    log-moneyness. Every strike is a whole number of half dollars, so each is kept as an
    integer key (expiry, strike in half dollars) and one sort-unique does every expiry's union.
    """
    owner = np.arange(width.size)
    low, high = spot * np.exp(-width), spot * np.exp(width)
    parts = [
        _steps(np.maximum(low, lo), np.minimum(high, hi), step, owner) for lo, hi, step in _BANDS
    ]
    if liquid:
        step = 0.5 if spot < 25 else 1.0
        near = np.minimum(width, 0.08)
        parts.append(_steps(spot * np.exp(-near), spot * np.exp(near), step, owner))
    keys = np.unique(np.concatenate(parts))
    halves = keys & (_KEY_SPAN - 1)
    keep = halves > 0
    return (keys[keep] >> _KEY_BITS).astype(np.intp), halves[keep] / 2.0


_BANDS = ((0.0, 25.0, 2.5), (25.0, 200.0, 5.0), (200.0, np.inf, 10.0))
_KEY_BITS = 32
_KEY_SPAN = 1 << _KEY_BITS


def _steps(
    low: NDArray[np.float64], high: NDArray[np.float64], step: float, owner: NDArray[np.intp]
) -> NDArray[np.int64]:
    """For each j with low[j] <= high[j], ``np.arange(ceil(low[j] / step)·step, high[j] + 1e-9,
    step)`` (the same count, the same exact multiples of ``step``), as keys (owner[j], value
    in half dollars)."""
    first = np.ceil(low / step) * step
    count = np.where(low <= high, np.maximum(np.ceil((high + 1e-9 - first) / step), 0), 0)
    count = count.astype(np.int64)
    at = np.repeat(np.arange(count.size), count)
    offset = np.arange(at.size) - np.repeat(np.cumsum(count) - count, count)
    values = first[at] + offset * step
    return (owner[at].astype(np.int64) << _KEY_BITS) + np.rint(values * 2).astype(np.int64)


def _listed_strike(price: float, liquid: bool) -> float:
    """The listed strike nearest ``price`` (on the OCC grid; $1 steps for liquid names)."""
    if liquid:
        step = 0.5 if price < 25 else 1.0
    else:
        step = 2.5 if price < 25 else 5.0 if price < 200 else 10.0
    return round(max(step, round(price / step) * step), 2)


def max_quote_width(mid: NDArray[np.float64]) -> NDArray[np.float64]:
    """Exchange maximum bid/ask widths by price (ISE-style table)."""
    return np.select([mid < 2, mid < 5, mid < 10, mid < 20], [0.25, 0.375, 0.5, 0.75], default=1.0)


def _underlying_width(spot: float, liquidity: float) -> float:
    """The stock's own quoted width: a cent for the busiest names, wider for thin ones."""
    return max(0.01, round(spot * 1e-5 * WIDE_AT / liquidity, 2))


def _quote(
    mid: NDArray[np.float64],
    vega_points: NDArray[np.float64],
    delta: NDArray[np.float64],
    moneyness_sd: NDArray[np.float64],
    p: TickerProfile,
    underlying_width: float,
    draw: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Bid/ask around ``mid`` as a market maker quotes them: a width in vol points (times vega,
    wider in the wings and for thinner names) plus the stock's width per unit of delta plus a
    small share of the premium; never wider than the exchange rule or the option's own value.

    SPY-like names quote in pennies at every price, others in nickels from $3 up.
    """
    thin = WIDE_AT / p.liquidity
    wings = np.minimum(moneyness_sd, 6.0)
    vol_points = 0.05 * thin**0.8 * (1 + 0.3 * wings)
    width = vega_points * vol_points + np.abs(delta) * underlying_width
    width = (width + mid * 0.002 * np.sqrt(thin) * (1 + 0.5 * wings)) * (0.8 + 0.4 * draw)
    tick = np.full(mid.size, 0.01) if p.ticker in DAILY_EXPIRIES else np.where(mid < 3, 0.01, 0.05)
    width = np.minimum(width, max_quote_width(mid))
    # nor wider than a cheap option's value (two ticks at least): else far-wing asks would climb
    # with moneyness and an OTM call's mid would rise with its strike
    width = np.minimum(width, np.maximum(mid, 2 * tick))
    bid = np.maximum(np.floor((mid - width / 2) / tick + 1e-7) * tick, 0.0)
    ask = np.maximum(np.ceil((mid + width / 2) / tick - 1e-7) * tick, bid + tick)
    return np.round(bid, 2), np.round(ask, 2)


def _risk_reversal_from_grid(
    k: NDArray[np.float64], iv: NDArray[np.float64], t: float, r: float, q: float
) -> NDArray[np.float64]:
    """IV(25Δ call) − IV(25Δ put) per row of a (days × log-moneyness) smile grid."""
    # d1 = (-k + 0.5·iv²·t) / (iv·sqrt(t)), in place over the grid
    d1 = iv**2
    d1 *= 0.5
    d1 *= t
    d1 -= k
    d1 /= iv * np.sqrt(t)
    carry = np.exp(-q * t)
    # call delta = carry·N(d1), put delta = call delta − carry: both fall as strike rises;
    # interpolate each row where it crosses the target
    return _cross_falling(d1, iv, carry, None, 0.25) - _cross_falling(d1, iv, carry, carry, -0.25)


def _cross_falling(
    d1: NDArray[np.float64],
    y: NDArray[np.float64],
    carry: float,
    less: float | None,
    target: float,
) -> NDArray[np.float64]:
    """Per row, y where the decreasing row of x = carry·N(d1) (minus ``less``) crosses
    ``target`` (clamped to the row's ends).

    The crossing index counts a row's x above the target. x grows with d1, so a d1 clearly
    either side of the level where x meets the target settles its element without the normal
    CDF; only the few within a hair of it (a margin far above the CDF's rounding) and the two
    elements interpolated between are evaluated, with the same arithmetic as the whole grid.
    """
    rows, cols = d1.shape
    level = _normal_quantile((target + (less or 0.0)) / float(carry))
    margin = 1e-7
    above = d1 > level + margin
    maybe = d1 >= level - margin  # above, or too close to tell (NaN is neither: x is NaN)

    def delta(values: NDArray[np.float64]) -> NDArray[np.float64]:
        x = carry * norm_cdf(values)
        return x if less is None else x - less

    if np.count_nonzero(maybe) != np.count_nonzero(above) or math.isnan(level):
        unsure = maybe & ~above if not math.isnan(level) else np.ones_like(above)
        above[unsure] = delta(d1[unsure]) > target
    right = np.clip(np.count_nonzero(above, axis=1), 1, cols - 1)  # first index at/below
    row = np.arange(rows)
    x = delta(np.concatenate([d1[row, right - 1], d1[row, right]]))
    x0, x1 = x[:rows], x[rows:]
    y0, y1 = y[row, right - 1], y[row, right]
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.clip(np.where(x0 != x1, (x0 - target) / (x0 - x1), 0.0), 0.0, 1.0)
    return y0 + w * (y1 - y0)


@lru_cache(maxsize=1024)
def _normal_quantile(p: float) -> float:
    """d with N(d) = p, by Newton on math.erfc (accurate far beyond what a margin needs);
    NaN outside (0, 1)."""
    if not 0.0 < p < 1.0:
        return math.nan
    d = 0.0
    for _ in range(50):
        step = (0.5 * math.erfc(-d / math.sqrt(2)) - p) / (
            math.exp(-0.5 * d * d) / math.sqrt(2 * math.pi)
        )
        d -= step
        if abs(step) < 1e-15:
            break
    return d


def _earnings_within(days: NDArray, earnings: frozenset[date], horizon: int) -> NDArray[np.float64]:
    """1.0 for each day (datetime64[D]) whose ``horizon``-day expiry spans a report: one dated
    in [day, day + horizon), reported after that date's close; else 0.0."""
    if not earnings or not days.size:
        return np.zeros(days.size)
    marks = np.array(sorted(earnings), dtype="datetime64[D]")
    first = np.searchsorted(marks, days, side="left")
    last = np.searchsorted(marks, days + np.timedelta64(horizon, "D"), side="left")
    return (last > first).astype(np.float64)
