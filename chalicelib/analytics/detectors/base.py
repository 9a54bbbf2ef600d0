"""What every detector shares: its input context, its ``Reading``, its ``Finding`` and the score
curve.

A detector is any object with a ``name``, ``read(features, context) -> Reading | None`` and
``rule(config) -> EdgeRule``. It reads only the ``FeatureSet`` and the context (no clock, no I/O,
no memory of earlier snapshots), so it is tested with hand-built features. A reading says where the
detector's gauge stands whether or not its condition holds; the edge trigger
(:mod:`~chalicelib.analytics.detectors.edges`) turns readings into alerts on changes only. Scores
are a continuous function of how far past its threshold a finding is: exactly at the threshold a
finding scores ``config.score_floor``, and the score approaches 100 smoothly, so alerts rank by
strength instead of piling up at 100.
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


@dataclass(frozen=True)
class Reading:
    """One detector's gauge on one snapshot, whether or not its condition holds.

    ``value`` is the gauge in the unit ``template`` prints it in (``label`` names it); ``stronger``
    says which way the condition intensifies (+1: higher values, −1: lower). ``active``: the entry
    condition holds, and ``finding`` says what it means. ``clear``: the gauge is back past the
    hysteresis band, so the snapshot counts toward re-arming; a reading neither active nor clear
    sits in the band. ``kind`` is the variant of the condition (backwardation or contango, ...); a
    new kind is a new condition. ``previous`` is the gauge's value one session earlier when the
    features themselves carry it (yesterday's close against its SMA); otherwise the edge trigger
    takes it from its state. ``none_text`` is how a missing value reads.
    """

    value: float | None
    label: str
    template: str
    active: bool
    clear: bool
    finding: Finding | None = None
    kind: str = ""
    stronger: int = 1
    previous: float | None = None
    none_text: str = "n/a"  # how a reading without a value reads ("none" unusual contracts)

    def text(self, value: float | None) -> str:
        return self.none_text if value is None else self.template.format(value)


@dataclass(frozen=True)
class EdgeRule:
    """How a detector's readings become alerts: the margin by which the gauge must pass the last
    alert's value to alert again while the condition holds (None: never; ``relative``: as a
    fraction of that value), and the whole sessions the condition must stay clear to re-arm."""

    margin: float | None
    rearm_sessions: int
    relative: bool = False


class Detector(Protocol):
    name: str

    def read(self, features: FeatureSet, context: DetectorContext) -> Reading | None: ...

    def rule(self, config: AnalyticsConfig) -> EdgeRule: ...


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
