"""The seven detectors and a runner that keeps one detector's failure from hiding the rest."""

from __future__ import annotations

from collections.abc import Sequence

from chalicelib.analytics.detectors.base import (
    Detector,
    DetectorContext,
    EdgeRule,
    Finding,
    Reading,
    graded_score,
)
from chalicelib.analytics.detectors.earnings_crush import EarningsCrush
from chalicelib.analytics.detectors.low_iv import LowIV
from chalicelib.analytics.detectors.regime_shift import RegimeShift
from chalicelib.analytics.detectors.rich_premium import RichPremium
from chalicelib.analytics.detectors.skew_anomaly import SkewAnomaly
from chalicelib.analytics.detectors.term_kink import TermKink
from chalicelib.analytics.detectors.unusual_activity import UnusualActivity
from chalicelib.domain.models import FeatureSet

DETECTORS: tuple[Detector, ...] = (
    LowIV(),
    RichPremium(),
    EarningsCrush(),
    TermKink(),
    SkewAnomaly(),
    RegimeShift(),
    UnusualActivity(),
)


def run_detectors(
    features: FeatureSet,
    context: DetectorContext,
    detectors: Sequence[Detector] = DETECTORS,
) -> tuple[list[tuple[Detector, Reading]], list[str]]:
    """Every detector's reading for one ticker (None readings left out: nothing to judge on),
    and an error line per detector that raised."""
    readings: list[tuple[Detector, Reading]] = []
    errors: list[str] = []
    for detector in detectors:
        try:
            reading = detector.read(features, context)
        except Exception as exc:  # a detector bug must not silence the other six
            errors.append(f"{context.ticker}: {detector.name}: {type(exc).__name__}: {exc}")
            continue
        if reading is not None:
            readings.append((detector, reading))
    return readings, errors


__all__ = [
    "DETECTORS",
    "Detector",
    "DetectorContext",
    "EarningsCrush",
    "EdgeRule",
    "Finding",
    "LowIV",
    "Reading",
    "RegimeShift",
    "RichPremium",
    "SkewAnomaly",
    "TermKink",
    "UnusualActivity",
    "graded_score",
    "run_detectors",
]
