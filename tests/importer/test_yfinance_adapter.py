"""The live adapter without the network: yfinance-shaped tables, a fake source, a fake clock."""

from __future__ import annotations

import importlib.util
import math
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from importkit import settings_for

from chalicelib.domain import calendar as cal
from chalicelib.domain.pricing import bs_greeks, bs_price
from chalicelib.errors import ConfigError
from chalicelib.write.providers.base import ProviderError
from chalicelib.write.providers.factory import make_provider
from chalicelib.write.providers.resilience import (
    CircuitBreaker,
    CircuitOpen,
    Guard,
    RateLimiter,
)
from chalicelib.write.providers.yfinance import (
    YFinanceProvider,
    YFinanceSource,
    chain_from_tables,
)
from chalicelib.write.scheduler import Scheduler
from chalicelib.write.store import Store

NOW = datetime(2026, 3, 2, 21, 0, tzinfo=UTC)  # Monday, the close
EXPIRIES = (date(2026, 3, 20), date(2026, 4, 17))
RATE = 0.045


class Table:
    """The part of a pandas DataFrame the adapter uses."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def to_dict(self, orient: str) -> list[dict[str, Any]]:
        assert orient == "records"
        return [dict(r) for r in self.rows]


def yahoo_rows(spot: float, expiry: date, right: str, sigma: float = 0.3) -> list[dict]:
    """One side of an expiry as yfinance lists it (every column, Yahoo's conventions)."""
    t = (cal.expiry_close(expiry) - NOW).total_seconds() / cal.SECONDS_PER_YEAR
    rows = []
    for strike in (90.0, 95.0, 100.0, 105.0, 110.0):
        mid = float(bs_price(spot, strike, t, RATE, sigma, right == "C"))
        rows.append({
            "contractSymbol": f"XYZ{expiry:%y%m%d}{right}{int(strike * 1000):08d}",
            "lastTradeDate": datetime(2026, 3, 2, 20, 59, tzinfo=UTC),
            "strike": strike, "lastPrice": round(mid, 2), "bid": round(mid - 0.02, 2),
            "ask": round(mid + 0.02, 2), "change": -0.1, "percentChange": -1.5,
            "volume": 12.0, "openInterest": 340.0, "impliedVolatility": sigma,
            "inTheMoney": (strike < spot) == (right == "C"), "contractSize": "REGULAR",
            "currency": "USD",
        })  # fmt: skip
    return rows


class FakeSource:
    """Answers like Yahoo; ``failing`` makes every request raise (a source that is down)."""

    def __init__(self, spot: float = 100.0) -> None:
        self.spot = spot
        self.failing = False
        self.requests: list[tuple[str, ...]] = []

    def _request(self, *what: str) -> None:
        self.requests.append(what)
        if self.failing:
            raise ConnectionError("HTTP 429 Too Many Requests")

    def expirations(self, symbol: str) -> Sequence[str]:
        self._request("expirations", symbol)
        return ["2026-02-27", *(e.isoformat() for e in EXPIRIES)]  # an expired one too

    def chain(self, symbol: str, expiration: str) -> tuple[Any, Any, float | None]:
        self._request("chain", symbol, expiration)
        expiry = date.fromisoformat(expiration)
        return (Table(yahoo_rows(self.spot, expiry, "C")), yahoo_rows(self.spot, expiry, "P"),
                self.spot)  # fmt: skip

    def closes(self, symbol: str, start: date, end: date) -> Sequence[tuple[date, float]]:
        self._request("closes", symbol)
        return [(d, self.spot) for d in cal.trading_days_between(start, end)]

    def earnings(self, symbol: str) -> Sequence[date]:
        self._request("earnings", symbol)
        return [date(2026, 4, 30)]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _provider(source: FakeSource, clock: FakeClock, threshold: int = 2) -> YFinanceProvider:
    guard = Guard("yfinance", RateLimiter(0.5, clock, clock.sleep),
                  CircuitBreaker(threshold, 300.0, clock))  # fmt: skip
    return YFinanceProvider(rate=RATE, source=source, guard=guard)


def test_tables_map_to_our_schema():
    calls = yahoo_rows(100.0, EXPIRIES[0], "C")
    calls[0].update(impliedVolatility=1e-05, volume=math.nan, openInterest=math.nan, lastPrice=0.0)
    puts = yahoo_rows(100.0, EXPIRIES[0], "P")
    batch = chain_from_tables("XYZ", NOW, EXPIRIES[0], Table(calls), puts)
    assert len(batch) == 10
    assert list(batch["right"]) == ["C"] * 5 + ["P"] * 5
    assert set(batch["ticker"]) == {"XYZ"}
    assert set(batch["expiration"].astype("datetime64[D]").tolist()) == {EXPIRIES[0]}
    assert batch["as_of"][0] == np.datetime64("2026-03-02T21:00:00", "us")
    assert list(batch["strike"][:5]) == [90.0, 95.0, 100.0, 105.0, 110.0]
    assert batch["bid"][1] == calls[1]["bid"] and batch["ask"][6] == puts[1]["ask"]
    # Yahoo's placeholders: no IV (1e-5), no volume (NaN → 0), unknown OI (stays missing)
    assert math.isnan(batch["implied_volatility"][0]) and batch["implied_volatility"][1] == 0.3
    assert batch["volume"][0] == 0 and batch["volume"][1] == 12
    assert math.isnan(batch["open_interest"][0]) and batch["open_interest"][1] == 340.0
    assert math.isnan(batch["last"][0]) and batch["last"][1] == calls[1]["lastPrice"]
    assert np.isnan(batch["delta"]).all()  # greeks come from the pricing core


def test_the_provider_computes_greeks_at_yahoos_iv():
    source, clock = FakeSource(), FakeClock()
    result = _provider(source, clock).fetch_chain("XYZ", NOW)
    batch = result.contracts
    assert result.underlying.price == 100.0 and result.underlying.as_of == NOW
    assert len(batch) == 20  # two live expiries; the expired listing is skipped
    t = np.array([(cal.expiry_close(d) - NOW).total_seconds() / cal.SECONDS_PER_YEAR
                  for d in batch["expiration"].astype("datetime64[D]").tolist()])  # fmt: skip
    want = bs_greeks(100.0, batch["strike"], t, RATE, 0.3, batch["right"] == "C")
    assert np.allclose(batch["implied_volatility"], 0.3)
    for name in ("delta", "gamma", "theta", "vega", "rho"):
        assert np.allclose(batch[name], getattr(want, name), rtol=1e-12), name
    assert clock.sleeps == [0.5, 0.5]  # three requests, half a second apart


def test_a_missing_iv_is_solved_from_the_mid():
    source, clock = FakeSource(), FakeClock()
    real_chain = source.chain

    def no_iv(symbol: str, expiration: str) -> tuple[Any, Any, float | None]:
        calls, puts, spot = real_chain(symbol, expiration)
        for row in puts:
            row["impliedVolatility"] = 0.0
        return calls, puts, spot

    source.chain = no_iv  # type: ignore[method-assign]
    batch = _provider(source, clock).fetch_chain("XYZ", NOW).contracts
    puts = batch["right"] == "P"
    assert np.allclose(batch["implied_volatility"][puts], 0.3, atol=0.01)
    assert np.isfinite(batch["delta"][puts]).all()


def test_the_rate_limiter_spaces_requests():
    clock = FakeClock()
    limiter = RateLimiter(0.5, clock, clock.sleep)
    limiter.wait()
    limiter.wait()
    clock.now += 0.2
    limiter.wait()
    clock.now += 2.0
    limiter.wait()
    assert clock.sleeps == pytest.approx([0.5, 0.3])


def test_the_breaker_opens_after_failures_and_fails_fast_until_the_cool_down_ends():
    clock = FakeClock()
    guard = Guard("src", RateLimiter(0.0, clock, clock.sleep), CircuitBreaker(3, 60.0, clock))
    calls: list[int] = []

    def flaky(ok: bool) -> str:
        calls.append(1)
        if not ok:
            raise TimeoutError("read timed out")
        return "data"

    for _ in range(3):
        with pytest.raises(ProviderError, match="TimeoutError: read timed out"):
            guard.call(flaky, False)
    assert guard.breaker.state == "open"
    with pytest.raises(CircuitOpen, match="retry in 60s"):
        guard.call(flaky, True)
    assert len(calls) == 3  # failed fast: the source was not called
    clock.now += 60.0
    assert guard.breaker.state == "half-open"
    with pytest.raises(ProviderError):
        guard.call(flaky, False)  # the trial fails: open again at once
    assert guard.breaker.state == "open" and len(calls) == 4
    clock.now += 60.0
    assert guard.call(flaky, True) == "data"
    assert guard.breaker.state == "closed" and guard.breaker.failures == 0


def test_a_failing_source_degrades_to_no_new_data(tmp_path: Path):
    settings = settings_for(tmp_path / "data", watchlist="AAA,BBB,CCC,DDD", provider="yfinance",
                            backfill_days="3")  # fmt: skip
    source, clock = FakeSource(), FakeClock()
    provider = _provider(source, clock, threshold=2)
    source.failing = True
    with Store(settings.database) as store:
        first = Scheduler(settings, store, provider).collect(NOW)
        # the backfill's failures opened the breaker: no chain request was even tried
        assert first["chains_collected"] == 0 and first["errors"] == []
        assert first["status"] == "completed"
        assert [r[0] for r in source.requests] == ["closes", "closes"]

        source.requests.clear()
        second = Scheduler(settings, store, provider).collect(NOW + timedelta(minutes=5))
        assert second["status"] == "completed" and second["chains_collected"] == 0
        assert source.requests == []  # fails fast: nothing new, nothing asked

        clock.now += 301.0  # cool-down over; the source is back
        source.failing = False
        third = Scheduler(settings, store, provider).collect(NOW + timedelta(minutes=10))
        assert third["status"] == "completed" and third["chains_collected"] == 4
        assert store.count("option_quotes") == 4 * 20


def test_failures_before_the_breaker_opens_are_recorded(tmp_path: Path):
    settings = settings_for(tmp_path / "data", watchlist="AAA,BBB,CCC,DDD", provider="yfinance")
    source, clock = FakeSource(), FakeClock()
    source.failing = True
    with Store(settings.database) as store:
        run = Scheduler(settings, store, _provider(source, clock, threshold=2)).collect(NOW)
    assert len(run["errors"]) == 2 and "HTTP 429" in run["errors"][0]
    assert run["chains_collected"] == 0
    assert len(source.requests) == 2  # then the breaker opened: CCC and DDD were not asked


def test_choosing_yfinance_without_the_package_is_a_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "yfinance" else real(name)
    )
    settings = settings_for(tmp_path / "data", provider="yfinance")
    with pytest.raises(ConfigError, match=r"OCD_PROVIDER=yfinance .* requirements-live\.txt"):
        make_provider(settings)


def test_the_module_imports_without_yfinance(monkeypatch: pytest.MonkeyPatch):
    assert "yfinance" not in sys.modules
    monkeypatch.setitem(sys.modules, "yfinance", None)  # as if it were not installed
    with pytest.raises(ProviderError, match=r"requirements-live\.txt"):
        YFinanceSource().expirations("SPY")
