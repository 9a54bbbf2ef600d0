"""term_kink: the ATM term structure is inverted (backwardation) or unusually steep (contango)."""

from __future__ import annotations

from datetime import date
from typing import Any

from chalicelib.analytics.config import AnalyticsConfig
from chalicelib.analytics.detectors.base import (
    DetectorContext,
    EdgeRule,
    Finding,
    Reading,
    graded_score,
    pct,
)
from chalicelib.domain.models import Explanation, FeatureSet


def term_pair(
    term_structure: list[dict[str, Any]], earnings: date | None, cfg: AnalyticsConfig
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The front and back expiries the ratio compares, or None when no pair qualifies.

    Only expiries at least ``term_min_front_dte`` days out (nearer ones are gamma noise) that
    do not span the next earnings date (reports come after the close, so an expiry on the date
    is before it): an expiry carrying the event's variance would count earnings as a kink.
    The front is the nearest of them; the back the one nearest ``back_days`` among those at
    least ``term_min_span_days`` after the front.
    """
    last = earnings.isoformat() if earnings is not None else None
    usable = [
        p
        for p in term_structure
        if p["dte"] >= cfg.term_min_front_dte and (last is None or p["expiration"] <= last)
    ]
    if not usable:
        return None
    front = usable[0]
    backs = [p for p in usable if p["dte"] >= front["dte"] + cfg.term_min_span_days]
    if not backs:
        return None
    return front, min(backs, key=lambda p: abs(p["dte"] - cfg.back_days))


class TermKink:
    """Compares back and front ATM IV of ``term_pair``'s expiries.

    Backwardation: ratio ≤ ``backwardation_ratio``, excess = (bound − ratio)/0.15.
    Steep contango: ratio ≥ ``contango_ratio``, excess = (ratio − bound)/0.25. Scale 1.
    Kind: the shape (below 1 backwardation, else contango). Gauge: the back/front ratio, stronger
    away from 1. Clear once the ratio is ``term_clear_band`` inside both bounds.
    """

    name = "term_kink"

    def rule(self, config: AnalyticsConfig) -> EdgeRule:
        return EdgeRule(config.term_intensify, config.term_rearm_sessions)

    def read(self, features: FeatureSet, context: DetectorContext) -> Reading | None:
        cfg = context.config
        pair = term_pair(features.values.get("term_structure") or [], context.next_earnings, cfg)
        if pair is None or pair[0]["atm_iv"] <= 0:
            return None
        front, back = pair
        ratio = back["atm_iv"] / front["atm_iv"]
        shape = "backwardation" if ratio < 1.0 else "contango"
        active = ratio <= cfg.backwardation_ratio or ratio >= cfg.contango_ratio
        band = cfg.term_clear_band
        return Reading(
            value=ratio,
            label="back/front IV ratio",
            template="{:.2f}",
            active=active,
            clear=cfg.backwardation_ratio + band <= ratio <= cfg.contango_ratio - band,
            finding=self._finding(context, shape, front, back, ratio) if active else None,
            kind=shape,
            stronger=-1 if shape == "backwardation" else 1,
        )

    def _finding(
        self,
        context: DetectorContext,
        shape: str,
        front_point: dict[str, Any],
        back_point: dict[str, Any],
        ratio: float,
    ) -> Finding:
        cfg = context.config
        front, back = front_point["atm_iv"], back_point["atm_iv"]
        if shape == "backwardation":
            excess = (cfg.backwardation_ratio - ratio) / 0.15
        else:
            excess = (ratio - cfg.contango_ratio) / 0.25
        metrics = {
            "shape": shape,
            "atm_iv_front": front,
            "atm_iv_back": back,
            "front_expiration": front_point["expiration"],
            "back_expiration": back_point["expiration"],
            "front_dte": front_point["dte"],
            "back_dte": back_point["dte"],
            "term_slope": back - front,
            "term_ratio": ratio,
            "bounds": [cfg.backwardation_ratio, cfg.contango_ratio],
            "earnings_date": context.next_earnings.isoformat() if context.next_earnings else None,
        }
        pair = (
            f"{front_point['expiration']} ({front_point['dte']}d) against "
            f"{back_point['expiration']} ({back_point['dte']}d)"
        )
        if shape == "backwardation":
            summary = (
                f"{context.ticker} term structure inverted: front {pct(front)} > back {pct(back)}"
            )
            rationale = (
                f"Back-month IV is only {ratio:.2f}× the front month ({pair}). Inversion signals "
                "near-term stress the market expects to pass; front IV usually falls back toward "
                "the back month once it does."
            )
            risks = [
                "Inversion can deepen while the stress lasts.",
                "A known event other than earnings (a ruling, a vote) may justify the front "
                "premium.",
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
                f"Back-month IV is {ratio:.2f}× the front month ({pair}): near-dated options are "
                "cheap relative to later ones, which happens in calm markets."
            )
            risks = [
                "Calm can end abruptly; long back-month vega loses if IV falls across the curve.",
                "The back month may price an event (other than earnings) the front one misses.",
            ]
            strategies = [
                "Reverse calendar: buy the cheap front month, sell a later month",
                "Diagonal spreads that own near-dated gamma",
            ]
        if context.next_earnings is not None:
            rationale += (
                f" Both expiries end on or before the {context.next_earnings.isoformat()} "
                "report, so earnings variance is not part of the comparison."
            )
        return Finding(
            detector=self.name,
            score=graded_score(excess, 1.0, cfg.score_floor),
            metrics=metrics,
            explanation=Explanation(
                summary=summary, rationale=rationale, key_metrics=metrics, risk_factors=risks
            ),
            strategies=strategies,
        )
