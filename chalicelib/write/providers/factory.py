"""Chooses the market-data adapter from configuration: the one place adapters are picked."""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from chalicelib.config import Settings
from chalicelib.errors import ConfigError
from chalicelib.write.providers.base import MarketDataProvider

if TYPE_CHECKING:
    from chalicelib.write.store import Store

_CACHE: dict[tuple[str, int, float], MarketDataProvider] = {}


def make_provider(settings: Settings, store: Store | None = None) -> MarketDataProvider:
    """The adapter ``OCD_PROVIDER`` names.

    ``file`` replays what ``ocd.py import`` staged in the database, so it reads through the
    caller's open ``store`` and is built per run (a cached one would keep a closed connection).
    The others are cached: warm Lambdas and the local runner reuse simulated paths, and the live
    adapter keeps its rate limiter and circuit breaker across cycles.
    """
    if settings.provider == "file":
        if store is None:
            raise ValueError("OCD_PROVIDER=file replays the staged imports of a store: pass one")
        from chalicelib.write.providers.file import FileProvider

        return FileProvider(store, settings.watchlist, rate=settings.risk_free_rate)
    key = (settings.provider, settings.seed, settings.risk_free_rate)
    if key not in _CACHE:
        if settings.provider == "yfinance":
            from chalicelib.write.providers.yfinance import YFinanceProvider

            if importlib.util.find_spec("yfinance") is None:  # found, not imported (lazy)
                raise ConfigError(
                    "OCD_PROVIDER=yfinance needs the yfinance package: "
                    "pip install -r requirements-live.txt"
                )
            _CACHE[key] = YFinanceProvider(rate=settings.risk_free_rate)
        else:
            from chalicelib.write.providers.synthetic import SyntheticMarket

            _CACHE[key] = SyntheticMarket(seed=settings.seed, rate=settings.risk_free_rate)
    return _CACHE[key]
