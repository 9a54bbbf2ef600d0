"""skew_anomaly: the 25Δ risk reversal is far from its own recent history (z-score)."""

from __future__ import annotations

from chalicelib.analytics.config import AnalyticsConfig
from chalicelib.analytics.detectors.base import (
    DetectorContext,
    EdgeRule,
    Finding,
    Reading,
    graded_score,
    number,
)
from chalicelib.domain.models import Explanation, FeatureSet


def vol_points(value: float) -> str:
    return f"{100.0 * value:+.1f} vol pts"


class SkewAnomaly:
    """Active when |``skew_25d_zscore``| ≥ ``skew_zscore``; excess = |z| − bound, scale 1.5.

    Negative z: puts bid more than usual (fear); positive z: skew flatter than usual (calls bid,
    or complacency about downside). Kind: steep or flat (the sign). Gauge: the z-score, stronger
    away from 0. Clear once |z| is ``skew_clear_band`` below the bound.
    """

    name = "skew_anomaly"

    def rule(self, config: AnalyticsConfig) -> EdgeRule:
        return EdgeRule(config.skew_intensify, config.skew_rearm_sessions)

    def read(self, features: FeatureSet, context: DetectorContext) -> Reading | None:
        cfg = context.config
        z, skew = number(features, "skew_25d_zscore"), number(features, "skew_25d")
        if z is None or skew is None:
            return None
        active = abs(z) >= cfg.skew_zscore
        return Reading(
            value=z,
            label="25Δ risk-reversal z-score",
            template="{:+.1f}",
            active=active,
            clear=abs(z) <= cfg.skew_zscore - cfg.skew_clear_band,
            finding=self._finding(features, context, z, skew) if active else None,
            kind="steep" if z < 0 else "flat",
            stronger=-1 if z < 0 else 1,
        )

    def _finding(
        self, features: FeatureSet, context: DetectorContext, z: float, skew: float
    ) -> Finding:
        cfg = context.config
        mean = number(features, "skew_25d_mean")
        metrics = {
            "skew_25d": skew,
            "skew_25d_mean": mean,
            "skew_25d_zscore": z,
            "iv_25d_call": number(features, "iv_25d_call"),
            "iv_25d_put": number(features, "iv_25d_put"),
            "skew_expiration": features.values.get("skew_expiration"),
            "threshold": cfg.skew_zscore,
        }
        usual = f" (usual {vol_points(mean)})" if mean is not None else ""
        if z < 0:
            summary = f"{context.ticker} put skew unusually steep: RR25 {vol_points(skew)}{usual}"
            rationale = (
                f"The 25Δ risk reversal is {abs(z):.1f} standard deviations below its recent "
                "mean: downside puts are bid far more than usual, a sign of hedging demand."
            )
            strategies = [
                "Sell put spreads (rich downside IV) against a long position",
                "Risk reversal: sell the 25Δ put, buy the 25Δ call if the view is neutral-bullish",
                "Put ratio spreads to finance protection",
            ]
            risks = [
                "Hedging demand can be informed: the feared drop may come.",
                "Short downside premium loses most in a crash.",
            ]
        else:
            summary = f"{context.ticker} skew unusually flat: RR25 {vol_points(skew)}{usual}"
            rationale = (
                f"The 25Δ risk reversal is {z:.1f} standard deviations above its recent mean: "
                "calls are bid relative to puts, or downside protection is unusually cheap."
            )
            strategies = [
                "Buy put protection while downside IV is cheap relative to calls",
                "Call spreads or covered calls to sell the rich upside IV",
            ]
            risks = [
                "Call demand may reflect a real upside catalyst (squeeze, takeover).",
                "Skew can keep flattening in a strong rally.",
            ]
        return Finding(
            detector=self.name,
            score=graded_score(abs(z) - cfg.skew_zscore, 1.5, cfg.score_floor),
            metrics=metrics,
            explanation=Explanation(
                summary=summary, rationale=rationale, key_metrics=metrics, risk_factors=risks
            ),
            strategies=strategies,
        )
