"""regime_shift: trend changes on daily closes — SMA 50/200 crosses, SMA 200 breaks, bounces."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from chalicelib.analytics.config import AnalyticsConfig
from chalicelib.analytics.detectors.base import (
    DetectorContext,
    EdgeRule,
    Finding,
    Reading,
    graded_score,
)
from chalicelib.domain.models import Explanation, FeatureSet


@dataclass(frozen=True)
class Signal:
    kind: str  # golden_cross, death_cross, breakout, breakdown, bounce, rejection
    level: str  # the SMA involved
    bullish: bool
    excess: float
    gap: float  # today's close / SMA − 1
    before: float  # the crossing gauge yesterday: close / SMA − 1, or (SMA50 − SMA200) / SMA200
    after: float  # and today


def trend_signals(
    close: np.ndarray, sma_50: np.ndarray, sma_200: np.ndarray, cfg: AnalyticsConfig
) -> list[Signal]:
    """Signals of the last day given the last few days of closes and SMAs (oldest first). Each
    fires on its crossing session only, never on the days after it.

    - cross: the sign of SMA50 − SMA200 changed since yesterday;
      excess 0.7 + ln(1 + |close/SMA200 − 1| / 5 %).
    - break: the close crossed SMA200 since yesterday and is ≥ ``regime_move`` past it;
      excess 0.3 + ln(|gap| / move).
    - bounce/rejection: an earlier close of the window touched an SMA (within
      ``regime_touch_band``) from the side today's close is on, and today is the first close
      ≥ ``regime_move`` away from it (yesterday's was nearer); excess ln(|gap| / move).
    """
    out: list[Signal] = []
    spread = (sma_50 - sma_200) / sma_200
    gap200 = close[-1] / sma_200[-1] - 1.0
    if spread[-2] <= 0 < spread[-1] or spread[-2] >= 0 > spread[-1]:
        up = bool(spread[-1] > 0)
        out.append(
            Signal(
                "golden_cross" if up else "death_cross",
                "sma_50/sma_200",
                bool(up),
                0.7 + math.log1p(abs(gap200) / 0.05),
                float(gap200),
                float(spread[-2]),
                float(spread[-1]),
            )
        )
    for level, sma in (("sma_50", sma_50), ("sma_200", sma_200)):
        gap = close / sma - 1.0
        today, before = gap[-1], gap[:-1]
        if abs(today) < cfg.regime_move:
            continue
        up = bool(today > 0)
        crossing = (float(before[-1]), float(today))
        if level == "sma_200" and np.sign(before[-1]) != np.sign(today):
            excess = 0.3 + math.log(abs(today) / cfg.regime_move)
            kind = "breakout" if up else "breakdown"
            out.append(Signal(kind, level, up, excess, float(today), *crossing))
        elif (
            abs(before[-1]) < cfg.regime_move
            and np.all(np.sign(before) == np.sign(today))
            and np.any(np.abs(before) <= cfg.regime_touch_band)
        ):
            excess = math.log(abs(today) / cfg.regime_move)
            kind = "bounce" if up else "rejection"
            out.append(Signal(kind, level, up, excess, float(today), *crossing))
    return out


_TEXT = {
    "golden_cross": "the 50-day average crossed above the 200-day (golden cross)",
    "death_cross": "the 50-day average crossed below the 200-day (death cross)",
    "breakout": "the close broke above the 200-day average",
    "breakdown": "the close broke below the 200-day average",
    "bounce": "price bounced off the {level} as support",
    "rejection": "price was rejected at the {level} as resistance",
}


_GAUGE = {
    "sma_50/sma_200": "SMA50 − SMA200 (of SMA200)",
    "sma_50": "close vs SMA50",
    "sma_200": "close vs SMA200",
}


class RegimeShift:
    """Active on the crossing session of the strongest trend signal; scored on a scale of 1.5.

    Kind: the direction (bullish or bearish), so a reversal alerts at once. Gauge: the crossing
    quantity in percent, yesterday → today. Every session without a signal is clear.
    """

    name = "regime_shift"

    def rule(self, config: AnalyticsConfig) -> EdgeRule:
        return EdgeRule(None, config.regime_rearm_sessions)

    def read(self, features: FeatureSet, context: DetectorContext) -> Reading | None:
        recent = features.values.get("sma_recent")
        if not recent:
            return None
        close, s50, s200 = (
            np.asarray(recent[k], dtype=np.float64) for k in ("close", "sma_50", "sma_200")
        )
        if close.size < 2 or not np.all(np.isfinite(np.r_[close, s50, s200])):
            return None
        signals = trend_signals(close, s50, s200, context.config)
        if not signals:
            return Reading(None, "trend signal", "{:+.1f}%", active=False, clear=True)
        best = max(signals, key=lambda s: s.excess)
        return Reading(
            value=100.0 * best.after,
            label=_GAUGE[best.level],
            template="{:+.2f}%" if best.level == "sma_50/sma_200" else "{:+.1f}%",
            active=True,
            clear=False,
            finding=self._finding(context, best, signals, close, s50, s200),
            kind="bullish" if best.bullish else "bearish",
            stronger=1 if best.bullish else -1,
            previous=100.0 * best.before,
        )

    def _finding(
        self,
        context: DetectorContext,
        best: Signal,
        signals: list[Signal],
        close: np.ndarray,
        s50: np.ndarray,
        s200: np.ndarray,
    ) -> Finding:
        cross = best.kind in ("golden_cross", "death_cross")
        level = "200-day average" if cross else best.level.replace("sma_", "") + "-day average"
        what = _TEXT[best.kind].format(level=level)
        metrics = {
            "signal": best.kind,
            "level": best.level,
            "bullish": bool(best.bullish),
            "close": float(close[-1]),
            "sma_50": float(s50[-1]),
            "sma_200": float(s200[-1]),
            "gap": float(best.gap),
            "other_signals": [s.kind for s in signals if s is not best],
        }
        direction = "bullish" if best.bullish else "bearish"
        return Finding(
            detector=self.name,
            score=graded_score(best.excess, 1.5, context.config.score_floor),
            metrics=metrics,
            explanation=Explanation(
                summary=f"{context.ticker}: {what}; a {direction} signal",
                rationale=(
                    f"On daily closes {what}; the close is {100 * best.gap:+.1f}% from the "
                    f"{level}. Trend changes shift which side of premium selling is safer."
                ),
                key_metrics=metrics,
                risk_factors=[
                    "Moving-average signals lag and whipsaw in range-bound markets.",
                    "One close is weak evidence; confirm over the next sessions.",
                ],
            ),
            strategies=(
                [
                    "Bull put spread below the moving average",
                    "Call debit spread in a 30–60 day expiry",
                ]
                if best.bullish
                else [
                    "Bear call spread above the moving average",
                    "Protective puts or a collar on long stock",
                ]
            ),
        )
