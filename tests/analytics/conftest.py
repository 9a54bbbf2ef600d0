"""Fixtures of the analytics tests: hand-made chains (``analyticskit``) and feature sets."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from analyticskit import AS_OF, ChainFactory, build_chain

from chalicelib.domain.models import FeatureSet


@pytest.fixture
def chain_factory() -> ChainFactory:
    return build_chain


def make_features(ticker: str = "TEST", as_of: datetime = AS_OF, **values: Any) -> FeatureSet:
    return FeatureSet(ticker=ticker, as_of=as_of, values=values)


@pytest.fixture
def features_factory() -> Callable[..., FeatureSet]:
    return make_features


@pytest.fixture
def as_of() -> datetime:
    return AS_OF
