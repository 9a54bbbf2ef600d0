"""unusual_activity: contracts trading far above their open interest and their own usual volume."""

from __future__ import annotations

import math
from typing import Any

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


def contract_strength(row: dict[str, Any], cfg: AnalyticsConfig) -> float | None:
    """ln(vol/OI ÷ threshold) + 0.25·ln(1 + (z − z₀)⁺/z₀); ×0.7 without a z-score.

    z is the z-score of ln(1 + volume) against the contract's own past days (see
    ``features.volume_zscores``).

    ``None`` when the contract's z-score is known and below ``unusual_zscore``: busy today but
    not unusual for that contract.
    """
    ratio = row.get("vol_oi") or 0.0
    if ratio < cfg.unusual_vol_oi:
        return None
    base = math.log(ratio / cfg.unusual_vol_oi)
    z = row.get("zscore")
    if z is None:
        return 0.7 * base
    if z < cfg.unusual_zscore:
        return None
    return base + 0.25 * math.log1p((z - cfg.unusual_zscore) / cfg.unusual_zscore)


class UnusualActivity:
    """Active while some contract is unusual; reports the strongest, scored on a scale of 2.5.

    Gauge: the strongest contract's volume/OI, higher is stronger; it re-alerts while flow stays
    unusual only once that is ``1 + unusual_intensify`` times the last alert's. Clear when no
    contract is unusual (bursts in other contracts a day later are the same episode of flow).
    """

    name = "unusual_activity"

    def rule(self, config: AnalyticsConfig) -> EdgeRule:
        return EdgeRule(config.unusual_intensify, config.unusual_rearm_sessions, relative=True)

    def read(self, features: FeatureSet, context: DetectorContext) -> Reading | None:
        cfg = context.config
        rows = features.values.get("unusual_contracts")
        if rows is None:
            return None
        scored = [(s, r) for r in rows if (s := contract_strength(r, cfg)) is not None]
        top = max(scored, key=lambda item: item[0])[1] if scored else None
        return Reading(
            value=float(top["vol_oi"]) if top is not None else None,
            label="top contract volume/OI",
            template="{:.1f}×",
            active=top is not None,
            clear=top is None,
            finding=self._finding(features, context, scored) if scored else None,
            none_text="none",
        )

    def _finding(
        self,
        features: FeatureSet,
        context: DetectorContext,
        scored: list[tuple[float, dict[str, Any]]],
    ) -> Finding:
        cfg = context.config
        strength, top = max(scored, key=lambda item: item[0])
        premium = sum(r.get("premium") or 0.0 for _, r in scored)
        calls = sum(1 for _, r in scored if r["right"] == "C")
        metrics = {
            "contract": {k: top.get(k) for k in ("expiration", "strike", "right", "dte")},
            "volume": top["volume"],
            "open_interest": top["open_interest"],
            "vol_oi": top["vol_oi"],
            "zscore": top.get("zscore"),
            "premium": top.get("premium"),
            "contracts_flagged": len(scored),
            "total_premium": premium,
            "call_share": calls / len(scored),
            "spot": number(features, "underlying_price"),
        }
        label = f"{top['expiration']} {top['strike']:g}{top['right']}"
        z = top.get("zscore")
        z_text = (
            f" and {z:,.1f} standard deviations above its own usual daily volume (log scale)"
            if z is not None
            else " (too little history for a z-score)"
        )
        side = "calls" if top["right"] == "C" else "puts"
        return Finding(
            detector=self.name,
            score=graded_score(strength, 2.5, cfg.score_floor),
            metrics=metrics,
            explanation=Explanation(
                summary=(
                    f"{context.ticker} unusual volume in {label}: {top['volume']:,} contracts "
                    f"vs {top['open_interest']:,} open"
                ),
                rationale=(
                    f"Volume is {top['vol_oi']:.1f}× open interest{z_text}: new positions "
                    f"are being opened in size in {side}."
                ),
                key_metrics=metrics,
                risk_factors=[
                    "Volume does not say who bought: the flow may be hedging or closing.",
                    "Short-dated flow can be a one-day bet that reverses.",
                ],
            ),
            strategies=[
                f"Follow the flow with a defined-risk {side[:-1]} spread in the same expiry",
                "Check news and the earnings calendar for the catalyst before acting",
            ],
        )
