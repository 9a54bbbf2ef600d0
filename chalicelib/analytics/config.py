"""Thresholds and windows of the analytics, with defaults that suit a daily-to-intraday watchlist.

One frozen pydantic model so a detector's behaviour is fully described by its inputs. Environment
overrides are wired elsewhere; everything here is a default that holds without them.

Units: IV levels and ratios are fractions (0.25 = 25 %); ``*_percentile`` and ``*_rank`` are on
the 0–100 scale; day counts are trading days unless the name says calendar days.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class AnalyticsConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    # ---- features -------------------------------------------------------------------------
    target_days: float = Field(default=30.0, gt=0, description="constant maturity of atm_iv")
    back_days: float = Field(default=90.0, gt=0, description="maturity sought for atm_iv_back")
    min_dte_days: float = Field(
        default=0.5, ge=0, description="expiries closer than this are too noisy for vol features"
    )
    iv_window_days: int = Field(default=252, ge=20, description="IV rank/percentile look-back")
    iv_min_history: int = Field(default=60, ge=2, description="fewest past IVs for rank")
    skew_history_days: int = Field(default=60, ge=5, description="skew z-score look-back")
    skew_min_history: int = Field(default=20, ge=3)
    atm_max_distance: float = Field(
        default=0.10,
        gt=0,
        lt=1,
        description="ATM IV only from usable quotes within ±this of the forward, on each side",
    )
    tenor_tolerance: float = Field(
        default=0.20,
        ge=0,
        description="a fixed tenor no expiry pair brackets is taken flat from the nearest expiry "
        "only when that lies within this fraction of the tenor",
    )
    gex_strike_window: float = Field(
        default=0.25,
        gt=0,
        description="gex_by_strike and oi_change_by_strike list strikes within ±this of spot",
    )
    zero_gamma_range: float = Field(
        default=0.10, gt=0, lt=1, description="zero_gamma is searched over spot ±this"
    )
    zero_gamma_points: int = Field(
        default=81, ge=11, description="spots on the zero-gamma grid (gamma repriced at each)"
    )
    iv_hv_history_days: int = Field(
        default=60, ge=1, description="sessions in iv_hv_spread_history, today included"
    )
    unusual_vol_oi: float = Field(default=1.0, gt=0, description="volume/OI that is unusual")
    unusual_min_volume: int = Field(default=500, ge=1)
    unusual_history_days: int = Field(default=20, ge=1, description="days of contract volumes")
    unusual_min_obs: int = Field(default=5, ge=2, description="fewest past days for a z-score")
    unusual_log_std_floor: float = Field(
        default=0.25,
        gt=0,
        description="floor of the stdev of ln(1 + daily volume) in the volume z-score",
    )
    unusual_max_listed: int = Field(default=10, ge=1)

    # ---- detectors: entry thresholds -----------------------------------------------------
    score_floor: float = Field(
        default=30.0, ge=0, lt=100, description="score of a finding exactly at its threshold"
    )
    low_iv_percentile: float = Field(default=10.0, gt=0, lt=100)
    low_iv_max_iv_hv: float = Field(
        default=1.20,
        gt=0,
        description="low_iv veto: IV above this multiple of HV20 is not cheap, however low its "
        "percentile (a normal variance risk premium is about 1.2)",
    )
    rich_iv_percentile: float = Field(default=90.0, gt=0, lt=100)
    rich_min_iv_hv: float = Field(
        default=1.0,
        gt=0,
        description="rich_premium veto: IV below this multiple of HV20 is not rich, however high "
        "its percentile (the stock moves as much as the options price)",
    )
    earnings_window_days: int = Field(default=14, ge=0, description="calendar days ahead")
    earnings_min_iv_percentile: float = Field(default=50.0, ge=0, le=100)
    earnings_min_event_ratio: float = Field(
        default=1.10, ge=1, description="IV of the first post-earnings expiry / pre-event IV"
    )
    backwardation_ratio: float = Field(
        default=0.90, gt=0, lt=1, description="back/front ATM IV at or below: backwardation"
    )
    contango_ratio: float = Field(
        default=1.30, gt=1, description="back/front ATM IV at or above: steep contango"
    )
    term_min_front_dte: int = Field(
        default=7,
        ge=0,
        description="term_kink: expiries closer than this many calendar days are never the front "
        "(their ATM IV is gamma noise)",
    )
    term_min_span_days: int = Field(
        default=21,
        ge=1,
        description="term_kink: the back expiry is at least this many days after the front",
    )
    skew_zscore: float = Field(default=2.0, gt=0)
    regime_touch_band: float = Field(
        default=0.01, gt=0, description="a close within ±this of an SMA touches it"
    )
    regime_move: float = Field(
        default=0.015, gt=0, description="distance from the SMA that confirms a bounce or break"
    )
    unusual_zscore: float = Field(default=3.0, gt=0)

    # ---- detectors: edges and hysteresis --------------------------------------------------
    # A detector alerts when its condition is entered, re-alerts while it holds only when the
    # gauge moves past the last alert's value by the ``*_intensify`` margin (or the condition
    # changes kind: backwardation ↔ contango, steep ↔ flat skew, bullish ↔ bearish trend, a new
    # earnings date), and re-arms once the gauge has been back past its ``*_clear_band`` at
    # every snapshot of ``*_rearm_sessions`` whole sessions (New York dates, not snapshots).
    low_iv_clear_band: float = Field(
        default=10.0,
        gt=0,
        description="low_iv is clear once IVP is this many points above low_iv_percentile",
    )
    low_iv_intensify: float = Field(
        default=5.0, gt=0, description="low_iv re-alerts once IVP is this many points lower"
    )
    low_iv_rearm_sessions: int = Field(
        default=3, ge=1, description="whole sessions clear before low_iv alerts again"
    )
    rich_clear_band: float = Field(
        default=10.0,
        gt=0,
        description="rich_premium is clear once IVP is this many points below rich_iv_percentile",
    )
    rich_intensify: float = Field(
        default=5.0, gt=0, description="rich_premium re-alerts once IVP is this many points higher"
    )
    rich_rearm_sessions: int = Field(
        default=3, ge=1, description="whole sessions clear before rich_premium alerts again"
    )
    earnings_intensify: float = Field(
        default=1.0,
        gt=0,
        description="earnings_crush re-alerts for the same date once the implied earnings move "
        "is this many percentage points larger",
    )
    earnings_rearm_sessions: int = Field(
        default=1,
        ge=1,
        description="sessions with the date outside the window before it alerts again (a new "
        "earnings date is a new condition and alerts at once)",
    )
    term_clear_band: float = Field(
        default=0.05,
        gt=0,
        description="term_kink is clear once the ratio is this far inside both bounds "
        "(0.95–1.25 by default)",
    )
    term_intensify: float = Field(
        default=0.10, gt=0, description="term_kink re-alerts once the ratio moved this much further"
    )
    term_rearm_sessions: int = Field(
        default=3, ge=1, description="whole sessions clear before term_kink alerts again"
    )
    skew_clear_band: float = Field(
        default=1.0,
        gt=0,
        description="skew_anomaly is clear once |z| is this much below skew_zscore",
    )
    skew_intensify: float = Field(
        default=1.0, gt=0, description="skew_anomaly re-alerts once |z| is this much larger"
    )
    skew_rearm_sessions: int = Field(
        default=3, ge=1, description="whole sessions clear before skew_anomaly alerts again"
    )
    regime_rearm_sessions: int = Field(
        default=3,
        ge=1,
        description="sessions without a signal before another signal of the same direction "
        "alerts (a signal of the other direction alerts at once)",
    )
    unusual_intensify: float = Field(
        default=1.0,
        gt=0,
        description="unusual_activity re-alerts while flow stays unusual once the top "
        "contract's volume/OI exceeds the last alert's by this fraction (1.0: doubled)",
    )
    unusual_rearm_sessions: int = Field(
        default=2, ge=1, description="sessions with no unusual contract before flow alerts again"
    )

    @model_validator(mode="after")
    def _term_bands_apart(self) -> AnalyticsConfig:
        if (
            self.backwardation_ratio + self.term_clear_band
            >= self.contango_ratio - self.term_clear_band
        ):
            raise ValueError(
                "term_clear_band: backwardation_ratio + band must stay below contango_ratio − band"
            )
        return self


DEFAULT_CONFIG = AnalyticsConfig()
