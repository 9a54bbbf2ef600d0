"""term_kink: the ATM term structure is inverted (backwardation) or unusually steep (contango)."""

from __future__ import annotations

from chalicelib.analytics.detectors.base import (
    DetectorContext,
    Finding,
    graded_score,
    number,
    pct,
)
from chalicelib.domain.models import Explanation, FeatureSet


class TermKink:
    """Compares back and front ATM IV (``atm_iv_back`` / ``atm_iv_front``).

    Backwardation: ratio ≤ ``backwardation_ratio``, excess = (bound − ratio)/0.15.
    Steep contango: ratio ≥ ``contango_ratio``, excess = (ratio − bound)/0.25. Scale 1.
    """

    name = "term_kink"

    def detect(self, features: FeatureSet, context: DetectorContext) -> Finding | None:
        cfg = context.config
        front, back = number(features, "atm_iv_front"), number(features, "atm_iv_back")
        slope = number(features, "term_slope")
        if front is None or back is None or slope is None or front <= 0:
            return None
        ratio = back / front
        if ratio <= cfg.backwardation_ratio:
            shape, excess = "backwardation", (cfg.backwardation_ratio - ratio) / 0.15
        elif ratio >= cfg.contango_ratio:
            shape, excess = "contango", (ratio - cfg.contango_ratio) / 0.25
        else:
            return None
        metrics = {
            "shape": shape,
            "atm_iv_front": front,
            "atm_iv_back": back,
            "front_expiration": features.values.get("front_expiration"),
            "back_expiration": features.values.get("back_expiration"),
            "term_slope": slope,
            "term_ratio": ratio,
            "bounds": [cfg.backwardation_ratio, cfg.contango_ratio],
        }
        if shape == "backwardation":
            summary = (
                f"{context.ticker} term structure inverted: front {pct(front)} > back {pct(back)}"
            )
            rationale = (
                f"Back-month IV is only {ratio:.2f}× the front month. Inversion signals near-term "
                "stress or an event the market expects to pass; front IV usually falls back "
                "toward the back month once it does."
            )
            risks = [
                "Inversion can deepen while the stress lasts.",
                "A known event (earnings, a ruling) may justify the front-month premium.",
            ]
            strategies = [
                "Long calendar spread: sell the rich front month, buy a later month",
                "Short front-month premium with defined risk (iron condor)",
            ]
        else:
            summary = (
                f"{context.ticker} term structure steep: back {pct(back)} vs front {pct(front)}"
            )
            rationale = (
                f"Back-month IV is {ratio:.2f}× the front month: near-dated options are cheap "
                "relative to later ones, which happens in calm markets or ahead of a known "
                "later event."
            )
            risks = [
                "Calm can end abruptly; long back-month vega loses if IV falls across the curve.",
                "A later event (earnings) may explain the back-month premium.",
            ]
            strategies = [
                "Reverse calendar: buy the cheap front month, sell a later month",
                "Diagonal spreads that own near-dated gamma",
            ]
        return Finding(
            detector=self.name,
            score=graded_score(excess, 1.0, cfg.score_floor),
            metrics=metrics,
            explanation=Explanation(
                summary=summary, rationale=rationale, key_metrics=metrics, risk_factors=risks
            ),
            strategies=strategies,
        )
