"""earnings_crush: earnings within the window and IV inflated for it; IV collapses after."""

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
    ordinal,
    pct,
)
from chalicelib.domain.models import Explanation, FeatureSet


def event_premium(
    term_structure: list[dict[str, Any]], earnings: str, fallback_iv: float | None
) -> dict[str, float] | None:
    """IV of the first expiry after earnings against the pre-event IV, and the implied move.

    Reports come after the close, so an expiry on the earnings date itself is before the event.
    The pre-event IV is the last expiry on or before earnings (else ``fallback_iv``). The post-event
    expiry's total variance is the ordinary variance of every day but the event's, plus the
    event's own: σ_post²·T_post = σ_pre²·(T_post − 1/365) + event variance. So the event variance
    is σ_post²·T_post − σ_pre²·(T_post − 1/365), and the implied one-day earnings move is √ of
    that (a fraction of the price). T_post is the expiry's dte in years of 365 days (at least 1).
    """
    post = next((p for p in term_structure if p["expiration"] > earnings), None)
    pre = [p for p in term_structure if p["expiration"] <= earnings]
    base = pre[-1]["atm_iv"] if pre else fallback_iv
    if post is None or not base:
        return None
    t_post = max(post["dte"], 1) / 365.0
    event_var = max(0.0, post["atm_iv"] ** 2 * t_post - base**2 * (t_post - 1.0 / 365.0))
    return {
        "post_event_expiration_iv": post["atm_iv"],
        "pre_event_iv": base,
        "event_ratio": post["atm_iv"] / base,
        "implied_move": math.sqrt(event_var),
    }


class EarningsCrush:
    """Active when earnings are 0..``earnings_window_days`` calendar days away and either
    ``iv_percentile`` ≥ ``earnings_min_iv_percentile`` or the event ratio ≥ its minimum.

    Kind: the earnings date, so each report is a condition of its own. Gauge: the implied
    earnings move in percent, higher is stronger. Clear while the date is outside the window.
    elevation = max(0, (IVP − p₀)/(100 − p₀)) + 0.3·ln(ratio)/ln(r₀) (ratio ≥ 1), weighted by
    proximity (0.5 at the window's edge, 1 on the day), scored on a scale of 1.2.
    """

    name = "earnings_crush"

    def rule(self, config: AnalyticsConfig) -> EdgeRule:
        return EdgeRule(config.earnings_intensify, config.earnings_rearm_sessions)

    def read(self, features: FeatureSet, context: DetectorContext) -> Reading | None:
        cfg = context.config
        days = context.days_to_earnings
        if days is None or days < 0 or context.next_earnings is None:
            return None
        earnings = context.next_earnings.isoformat()
        ivp = number(features, "iv_percentile")
        event = event_premium(
            features.values.get("term_structure") or [], earnings, number(features, "atm_iv_back")
        )
        ratio = event["event_ratio"] if event else None
        elevated_ivp = ivp is not None and ivp >= cfg.earnings_min_iv_percentile
        elevated_term = ratio is not None and ratio >= cfg.earnings_min_event_ratio
        in_window = days <= cfg.earnings_window_days
        active = in_window and (elevated_ivp or elevated_term)
        return Reading(
            value=100.0 * event["implied_move"] if event else None,
            label="implied earnings move",
            template="±{:.1f}%",
            active=active,
            clear=not in_window,
            finding=self._finding(features, context, days, earnings, event) if active else None,
            kind=earnings,
        )

    def _finding(
        self,
        features: FeatureSet,
        context: DetectorContext,
        days: int,
        earnings: str,
        event: dict[str, float] | None,
    ) -> Finding:
        cfg = context.config
        ivp, iv = number(features, "iv_percentile"), number(features, "atm_iv")
        ratio = event["event_ratio"] if event else None
        elevation = 0.0
        if ivp is not None:
            p0 = cfg.earnings_min_iv_percentile
            elevation += max(0.0, (ivp - p0) / max(100.0 - p0, 1.0))
        if ratio is not None and ratio > 1.0:
            elevation += 0.3 * math.log(ratio) / math.log(max(cfg.earnings_min_event_ratio, 1.01))
        proximity = 1.0 - days / (cfg.earnings_window_days + 1)
        excess = elevation * (0.5 + 0.5 * proximity)
        metrics: dict[str, Any] = {
            "earnings_date": earnings,
            "days_to_earnings": days,
            "atm_iv": iv,
            "iv_percentile": ivp,
            **(event or {}),
        }
        move = event["implied_move"] if event else None
        spot = number(features, "underlying_price")
        move_text = (
            f" The options price an earnings move of about ±{pct(move)}"
            + (f" (±{move * spot:.2f})" if spot else "")
            + "."
            if move
            else ""
        )
        when = "today" if days == 0 else "tomorrow" if days == 1 else f"in {days} days"
        return Finding(
            detector=self.name,
            score=graded_score(excess, 1.2, cfg.score_floor),
            metrics=metrics,
            explanation=Explanation(
                summary=f"{context.ticker} reports earnings {when} with IV inflated",
                rationale=(
                    "Implied volatility is bid ahead of the announcement"
                    + (
                        f": the first post-earnings expiry trades at {ratio:.2f}× the pre-event IV"
                        if ratio
                        else ""
                    )
                    + (
                        f", and 30-day IV is in the {ordinal(ivp)} percentile"
                        if ivp is not None
                        else ""
                    )
                    + ". That premium usually collapses the day after the report."
                    + move_text
                ),
                key_metrics=metrics,
                risk_factors=[
                    "The stock can move more than the implied move: gap risk on short premium.",
                    "Earnings dates can shift; confirm the date before trading.",
                    "IV crush helps only positions that are short vega through the event.",
                ],
            ),
            strategies=[
                "Iron condor or iron fly on the first post-earnings expiry (defined risk)",
                "Calendar spread: sell the post-earnings expiry, buy the next one",
                "Avoid buying premium into the print unless you expect a larger move",
            ],
        )
