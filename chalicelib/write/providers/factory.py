"""Chooses the market-data adapter from configuration: the one place adapters are picked."""

from __future__ import annotations

from chalicelib.config import Settings
from chalicelib.write.providers.base import MarketDataProvider

_CACHE: dict[tuple[str, int, float], MarketDataProvider] = {}


def make_provider(settings: Settings) -> MarketDataProvider:
    key = (settings.provider, settings.seed, settings.risk_free_rate)
    if key not in _CACHE:  # warm Lambdas and the local runner reuse simulated paths
        from chalicelib.write.providers.synthetic import SyntheticMarket

        _CACHE[key] = SyntheticMarket(seed=settings.seed, rate=settings.risk_free_rate)
    return _CACHE[key]
