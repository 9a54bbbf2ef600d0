"""What every detector shares: its input context, its output ``Finding`` and the score curve.

A detector is any object with a ``name`` and ``detect(features, context) -> Finding | None``; it
reads only the ``FeatureSet`` and the context (no clock, no I/O), so it is tested with hand-built
features. Scores are a continuous function of how far past its threshold a finding is: exactly at
the threshold a finding scores ``config.score_floor``, and the score approaches 100 smoothly, so
alerts rank by strength instead of piling up at 100.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from chalicelib.analytics.config import DEFAULT_CONFIG, AnalyticsConfig
from chalicelib.domain.models import Explanation, FeatureSet


@dataclass(frozen=True)
class DetectorContext:
    """What a detector may know beyond the features: the calendar and the thresholds."""

    ticker: str
    as_of: datetime
    next_earnings: date | None = None
    config: AnalyticsConfig = DEFAULT_CONFIG

    @property
    def days_to_earnings(self) -> int | None:
        if self.next_earnings is None:
            return None
        return (self.next_earnings - self.as_of.date()).days


class Finding(BaseModel):
    """One detector's verdict on one ticker: how strong, on which numbers, and what to do."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    detector: str
    score: float = Field(ge=0, le=100)
    metrics: dict[str, Any]
    explanation: Explanation
    strategies: list[str]


class Detector(Protocol):
    name: str

    def detect(self, features: FeatureSet, context: DetectorContext) -> Finding | None: ...


def graded_score(excess: float, scale: float, floor: float) -> float:
    """floor + (100 − floor)·(1 − e^{−excess/scale}), for excess ≥ 0 past the threshold.

    Continuous and strictly increasing: ``scale`` is the excess that covers 63 % of the way from
    the floor to 100. Rounded to 0.1 so stored scores are stable across platforms.
    """
    excess = max(0.0, excess) if math.isfinite(excess) else 0.0
    return round(floor + (100.0 - floor) * (1.0 - math.exp(-excess / scale)), 1)


def number(features: FeatureSet, name: str) -> float | None:
    """A numeric feature as a float, or None when missing or not a finite number."""
    value = features.values.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def pct(value: float) -> str:
    """A fraction as percent text: 0.2345 → '23.5%'."""
    return f"{100.0 * value:.1f}%"


def ordinal(value: float) -> str:
    """A percentile as an English ordinal: 1 → '1st', 73.4 → '73rd', 100 → '100th'."""
    n = round(value)
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
