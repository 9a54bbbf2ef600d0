"""low_iv: 30-day IV near the bottom of the ticker's own past year — options are cheap."""

from __future__ import annotations

from chalicelib.analytics.config import AnalyticsConfig
from chalicelib.analytics.detectors.base import (
    DetectorContext,
    EdgeRule,
    Finding,
    Reading,
    graded_score,
    number,
    ordinal,
    pct,
)
from chalicelib.domain.models import Explanation, FeatureSet


class LowIV:
    """Active when ``iv_percentile`` ≤ ``low_iv_percentile`` and IV/HV20 ≤ ``low_iv_max_iv_hv``
    (IV well above realised volatility is not cheap, whatever its percentile).

    Gauge: the IV percentile, lower is stronger. Clear from ``low_iv_clear_band`` points above
    the threshold.
    excess = (threshold − IVP)/threshold + max(0, 1 − IV/HV20), scored on a scale of 1.
    """

    name = "low_iv"

    def rule(self, config: AnalyticsConfig) -> EdgeRule:
        return EdgeRule(config.low_iv_intensify, config.low_iv_rearm_sessions)

    def read(self, features: FeatureSet, context: DetectorContext) -> Reading | None:
        cfg = context.config
        ivp, iv = number(features, "iv_percentile"), number(features, "atm_iv")
        if ivp is None or iv is None:
            return None
        iv_hv = number(features, "iv_hv_ratio")
        vetoed = iv_hv is not None and iv_hv > cfg.low_iv_max_iv_hv
        active = ivp <= cfg.low_iv_percentile and not vetoed
        return Reading(
            value=ivp,
            label="IV percentile",
            template="{:.0f}",
            active=active,
            clear=ivp >= cfg.low_iv_percentile + cfg.low_iv_clear_band,
            finding=self._finding(features, context, ivp, iv, iv_hv) if active else None,
            stronger=-1,
        )

    def _finding(
        self,
        features: FeatureSet,
        context: DetectorContext,
        ivp: float,
        iv: float,
        iv_hv: float | None,
    ) -> Finding:
        cfg = context.config
        excess = (cfg.low_iv_percentile - ivp) / cfg.low_iv_percentile
        excess += max(0.0, 1.0 - iv_hv) if iv_hv is not None else 0.0
        metrics = {
            "atm_iv": iv,
            "iv_percentile": ivp,
            "iv_rank": number(features, "iv_rank"),
            "hv_20": number(features, "hv_20"),
            "iv_hv_ratio": iv_hv,
            "threshold": cfg.low_iv_percentile,
            "max_iv_hv": cfg.low_iv_max_iv_hv,
        }
        below_hv = iv_hv is not None and iv_hv < 1.0
        hv_text = (
            ", and IV is even below recent realised volatility."
            if below_hv
            else f", and at {iv_hv:.2f}× 20-day realised volatility it is not rich against "
            "the stock's own moves either."
            if iv_hv is not None
            else "."
        )
        return Finding(
            detector=self.name,
            score=graded_score(excess, 1.0, cfg.score_floor),
            metrics=metrics,
            explanation=Explanation(
                summary=(
                    f"{context.ticker} 30-day IV {pct(iv)} sits in the {ordinal(ivp)} percentile "
                    "of its past year"
                ),
                rationale=(
                    f"Fewer than {cfg.low_iv_percentile:.0f}% of the past year's days had lower "
                    "implied volatility, so option premium is cheap against this ticker's own "
                    "history" + hv_text
                ),
                key_metrics=metrics,
                risk_factors=[
                    "Low volatility can persist for weeks; long premium decays every day.",
                    "Cheap against its own history is not cheap against a coming catalyst.",
                ],
            ),
            strategies=[
                "Long straddle or strangle in a 30–60 day expiry",
                "Calendar spread: sell the front month, buy a later month",
                "Debit spreads instead of stock for directional views",
            ],
        )
