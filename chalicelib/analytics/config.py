"""Thresholds and windows of the analytics, with defaults that suit a daily-to-intraday watchlist.

One frozen pydantic model so a detector's behaviour is fully described by its inputs. Environment
overrides are wired elsewhere; everything here is a default that holds without them.

Units: IV levels and ratios are fractions (0.25 = 25 %); ``*_percentile`` and ``*_rank`` are on
the 0–100 scale; day counts are trading days unless the name says calendar days.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


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

    # ---- detectors ------------------------------------------------------------------------
    score_floor: float = Field(
        default=30.0, ge=0, lt=100, description="score of a finding exactly at its threshold"
    )
    low_iv_percentile: float = Field(default=10.0, gt=0, lt=100)
    rich_iv_percentile: float = Field(default=90.0, gt=0, lt=100)
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
    skew_zscore: float = Field(default=2.0, gt=0)
    regime_touch_band: float = Field(
        default=0.01, gt=0, description="a close within ±this of an SMA touches it"
    )
    regime_move: float = Field(
        default=0.015, gt=0, description="distance from the SMA that confirms a bounce or break"
    )
    unusual_zscore: float = Field(default=3.0, gt=0)


DEFAULT_CONFIG = AnalyticsConfig()
