"""rich_premium: 30-day IV near the top of the ticker's own past year — premium is rich."""

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


class RichPremium:
    """Active when ``iv_percentile`` ≥ ``rich_iv_percentile`` and IV/HV20 ≥ ``rich_min_iv_hv``
    (IV below realised volatility is not rich: the stock moves as much as the options price).

    Gauge: the IV percentile, higher is stronger. Clear from ``rich_clear_band`` points below
    the threshold.
    excess = (IVP − threshold)/(100 − threshold) + max(0, IV/HV20 − 1.25), scale 1.
    """

    name = "rich_premium"

    def rule(self, config: AnalyticsConfig) -> EdgeRule:
        return EdgeRule(config.rich_intensify, config.rich_rearm_sessions)

    def read(self, features: FeatureSet, context: DetectorContext) -> Reading | None:
        cfg = context.config
        ivp, iv = number(features, "iv_percentile"), number(features, "atm_iv")
        if ivp is None or iv is None:
            return None
        iv_hv = number(features, "iv_hv_ratio")
        vetoed = iv_hv is not None and iv_hv < cfg.rich_min_iv_hv
        active = ivp >= cfg.rich_iv_percentile and not vetoed
        return Reading(
            value=ivp,
            label="IV percentile",
            template="{:.0f}",
            active=active,
            clear=ivp <= cfg.rich_iv_percentile - cfg.rich_clear_band,
            finding=self._finding(features, context, ivp, iv, iv_hv) if active else None,
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
        excess = (ivp - cfg.rich_iv_percentile) / (100.0 - cfg.rich_iv_percentile)
        excess += max(0.0, iv_hv - 1.25) if iv_hv is not None else 0.0
        metrics = {
            "atm_iv": iv,
            "iv_percentile": ivp,
            "iv_rank": number(features, "iv_rank"),
            "hv_20": number(features, "hv_20"),
            "iv_hv_ratio": iv_hv,
            "threshold": cfg.rich_iv_percentile,
            "min_iv_hv": cfg.rich_min_iv_hv,
        }
        days = context.days_to_earnings
        risks = [
            "High IV often comes with large moves: short premium carries tail risk.",
            "Volatility can rise further before it mean-reverts.",
        ]
        if days is not None and 0 <= days <= 30:
            risks.append(f"Earnings in {days} days may justify part of the premium.")
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
                    f"IV is above {ivp:.0f}% of the past year's days"
                    + (f" and {iv_hv:.2f}× 20-day realised volatility" if iv_hv else "")
                    + "; implied volatility tends to revert, so selling premium is paid well."
                ),
                key_metrics=metrics,
                risk_factors=risks,
            ),
            strategies=[
                "Iron condor or short strangle with defined wings (about 16Δ)",
                "Cash-secured puts or covered calls",
                "Credit spreads in the direction of your view",
            ],
        )
