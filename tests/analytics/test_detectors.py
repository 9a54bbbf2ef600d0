"""Each detector on hand-built features: a case that fires in its score band, one that does not,
and where its gauge stands either way (the edge trigger's input)."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

import pytest

from chalicelib.analytics.config import AnalyticsConfig
from chalicelib.analytics.detectors import (
    DETECTORS,
    Detector,
    DetectorContext,
    EarningsCrush,
    Finding,
    LowIV,
    RegimeShift,
    RichPremium,
    SkewAnomaly,
    TermKink,
    UnusualActivity,
    graded_score,
    run_detectors,
)
from chalicelib.analytics.detectors.base import Reading, ordinal
from chalicelib.analytics.detectors.earnings_crush import event_premium
from chalicelib.analytics.detectors.term_kink import term_pair
from chalicelib.domain.models import FeatureSet


@pytest.fixture
def context(as_of) -> DetectorContext:
    return DetectorContext(ticker="TEST", as_of=as_of)


def detect(detector: Detector, features: FeatureSet, context: DetectorContext) -> Finding | None:
    """The finding of an active reading, else None."""
    reading = detector.read(features, context)
    assert reading is None or reading.active == (reading.finding is not None)
    return reading.finding if reading is not None else None


def test_seven_detectors_with_unique_names() -> None:
    names = [d.name for d in DETECTORS]
    assert len(names) == 7 == len(set(names))
    assert set(names) == {
        "low_iv",
        "rich_premium",
        "earnings_crush",
        "term_kink",
        "skew_anomaly",
        "regime_shift",
        "unusual_activity",
    }


def test_graded_score_is_continuous_and_bounded() -> None:
    scores = [graded_score(x / 10, 1.0, 30.0) for x in range(0, 60)]
    assert scores[0] == 30.0
    assert all(b >= a for a, b in itertools.pairwise(scores))
    assert max(scores) < 100.0
    assert graded_score(-1.0, 1.0, 30.0) == 30.0
    assert graded_score(float("nan"), 1.0, 30.0) == 30.0


def test_percentiles_read_as_ordinals() -> None:
    words = [ordinal(v) for v in (1, 2, 3, 4, 11, 12, 13, 21, 73.4, 100)]
    assert words == ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "73rd", "100th"]


# ---- low_iv / rich_premium ------------------------------------------------------------------
def test_low_iv_fires_with_graded_score(features_factory, context) -> None:
    deep = detect(
        LowIV(),
        features_factory(atm_iv=0.15, iv_percentile=1.0, iv_rank=2.0, iv_hv_ratio=0.8),
        context,
    )
    mild = detect(
        LowIV(),
        features_factory(atm_iv=0.15, iv_percentile=8.0, iv_rank=9.0, iv_hv_ratio=1.1),
        context,
    )
    assert deep is not None and mild is not None
    assert 72 <= deep.score <= 82  # excess 0.9 + 0.2 = 1.1 → 76.7
    assert 38 <= mild.score <= 48  # excess 0.2 → 42.7
    assert deep.metrics["iv_percentile"] == 1.0
    assert deep.explanation.summary.startswith("TEST 30-day IV 15.0%")
    assert deep.strategies and deep.explanation.risk_factors


def test_low_iv_quiet_when_iv_normal_or_unknown(features_factory, context) -> None:
    assert detect(LowIV(), features_factory(atm_iv=0.2, iv_percentile=35.0), context) is None
    assert LowIV().read(features_factory(atm_iv=0.2, iv_percentile=None), context) is None


def test_low_iv_vetoed_when_iv_is_rich_against_realised(features_factory, context) -> None:
    """A low IV percentile with IV 1.5× HV20 is not cheap: the stock moves less than that."""
    rich = LowIV().read(features_factory(atm_iv=0.2, iv_percentile=3.0, iv_hv_ratio=1.5), context)
    assert rich is not None and not rich.active and rich.finding is None
    assert not rich.clear  # still in the band: the veto does not re-arm the detector
    edge = detect(
        LowIV(), features_factory(atm_iv=0.2, iv_percentile=3.0, iv_hv_ratio=1.2), context
    )
    assert edge is not None and "1.20×" in edge.explanation.rationale


def test_low_iv_gauge_and_hysteresis_band(features_factory, context) -> None:
    """Active at IVP ≤ 10, in the band below 20, clear from 20; lower is stronger."""
    states = {
        ivp: LowIV().read(features_factory(atm_iv=0.2, iv_percentile=ivp), context)
        for ivp in (10.0, 15.0, 20.0)
    }
    assert [(r.active, r.clear) for r in states.values()] == [
        (True, False),
        (False, False),
        (False, True),
    ]
    assert states[15.0].value == 15.0 and states[15.0].stronger == -1
    assert states[10.0].text(states[10.0].value) == "10"


def test_rich_premium_fires_with_graded_score(features_factory, context) -> None:
    finding = detect(
        RichPremium(),
        features_factory(atm_iv=0.6, iv_percentile=98.0, iv_rank=90.0, iv_hv_ratio=1.55),
        context,
    )
    assert finding is not None
    assert 72 <= finding.score <= 82  # excess 0.8 + 0.3 = 1.1 → 76.7
    assert detect(RichPremium(), features_factory(atm_iv=0.3, iv_percentile=70.0), context) is None


def test_rich_premium_vetoed_when_iv_is_below_realised(features_factory, context) -> None:
    """IV in its 97th percentile but below HV20: the options are not rich against the moves."""
    below = RichPremium().read(
        features_factory(atm_iv=0.6, iv_percentile=97.0, iv_hv_ratio=0.95), context
    )
    assert below is not None and not below.active and not below.clear
    at = detect(
        RichPremium(), features_factory(atm_iv=0.6, iv_percentile=97.0, iv_hv_ratio=1.0), context
    )
    assert at is not None
    clear = RichPremium().read(features_factory(atm_iv=0.3, iv_percentile=80.0), context)
    assert clear is not None and clear.clear and clear.stronger == 1


def test_rich_premium_mentions_upcoming_earnings(features_factory, as_of) -> None:
    ctx = DetectorContext("TEST", as_of, next_earnings=as_of.date() + timedelta(days=9))
    finding = detect(RichPremium(), features_factory(atm_iv=0.6, iv_percentile=95.0), ctx)
    assert finding is not None
    assert any("Earnings in 9 days" in r for r in finding.explanation.risk_factors)


# ---- earnings_crush -------------------------------------------------------------------------
def _term(as_of_day: date, points: list[tuple[int, float]]) -> list[dict]:
    return [
        {"expiration": (as_of_day + timedelta(days=d)).isoformat(), "dte": d, "atm_iv": iv}
        for d, iv in points
    ]


def test_earnings_crush_fires_on_event_premium(features_factory, as_of) -> None:
    day = as_of.date()
    features = features_factory(
        underlying_price=200.0,
        atm_iv=0.40,
        atm_iv_back=0.33,
        iv_percentile=70.0,
        term_structure=_term(day, [(4, 0.30), (11, 0.55), (39, 0.40), (95, 0.33)]),
    )
    ctx = DetectorContext("TEST", as_of, next_earnings=day + timedelta(days=7))
    finding = detect(EarningsCrush(), features, ctx)
    assert finding is not None
    # elevation 0.4 + 0.3·ln(0.55/0.30)/ln 1.1 = 2.31, × (0.5 + 0.5·8/15) → 84.0
    assert 79 <= finding.score <= 89
    m = finding.metrics
    assert m["days_to_earnings"] == 7 and m["pre_event_iv"] == 0.30
    assert m["event_ratio"] == pytest.approx(0.55 / 0.30)
    # σ_post²·T_post − σ_pre²·(T_post − 1/365) with T_post = 11/365 (before: σ_pre²·T_post)
    assert m["implied_move"] == pytest.approx(((0.55**2 * 11 - 0.30**2 * 10) / 365) ** 0.5)
    assert "±" in finding.explanation.rationale


def test_event_premium_one_day_event_variance() -> None:
    """A flat 30 % term with a 100 %-vol event day: the event's variance comes back exactly."""
    pre, event_day = 0.30, 1.00
    t_post = 9 / 365
    post = ((pre**2 * (t_post - 1 / 365) + event_day**2 / 365) / t_post) ** 0.5
    term = [
        {"expiration": "2026-03-06", "dte": 4, "atm_iv": pre},
        {"expiration": "2026-03-11", "dte": 9, "atm_iv": post},
    ]
    event = event_premium(term, "2026-03-09", None)
    assert event is not None
    assert event["implied_move"] == pytest.approx(event_day / 365**0.5, rel=1e-12)
    assert event_premium(term, "2026-03-20", None) is None  # no expiry after the event


def test_earnings_crush_quiet_without_event_or_premium(features_factory, as_of) -> None:
    day = as_of.date()
    flat = features_factory(
        atm_iv=0.30,
        atm_iv_back=0.30,
        iv_percentile=20.0,
        term_structure=_term(day, [(4, 0.30), (11, 0.30), (39, 0.30)]),
    )
    near = DetectorContext("TEST", as_of, next_earnings=day + timedelta(days=7))
    far = DetectorContext("TEST", as_of, next_earnings=day + timedelta(days=40))
    none = DetectorContext("TEST", as_of)
    rich = features_factory(atm_iv=0.5, iv_percentile=95.0, term_structure=[])
    assert detect(EarningsCrush(), flat, near) is None  # no premium
    assert detect(EarningsCrush(), rich, far) is None  # too far away
    assert detect(EarningsCrush(), rich, none) is None  # no earnings known (ETF)
    assert detect(EarningsCrush(), rich, near) is not None  # IV percentile alone suffices


def test_earnings_crush_scores_rise_as_earnings_approach(features_factory, as_of) -> None:
    features = features_factory(atm_iv=0.5, iv_percentile=90.0, term_structure=[])
    findings = [
        detect(
            EarningsCrush(),
            features,
            DetectorContext("TEST", as_of, as_of.date() + timedelta(days=d)),
        )
        for d in (14, 7, 1)
    ]
    scores = [f.score for f in findings if f is not None]
    assert len(scores) == 3 and scores[0] < scores[1] < scores[2]


def test_an_expiry_on_the_earnings_date_is_before_the_report() -> None:
    """Reports come after the close: the expiry of the earnings date does not carry the event."""
    term = [
        {"expiration": "2026-03-06", "dte": 4, "atm_iv": 0.30},
        {"expiration": "2026-03-09", "dte": 7, "atm_iv": 0.31},
        {"expiration": "2026-03-13", "dte": 11, "atm_iv": 0.50},
    ]
    event = event_premium(term, "2026-03-09", None)
    assert event is not None
    assert event["pre_event_iv"] == 0.31 and event["post_event_expiration_iv"] == 0.50


def test_earnings_reading_is_one_condition_per_date(features_factory, as_of) -> None:
    """Kind: the earnings date. Outside the window the reading is clear; its gauge is the implied
    move in percent."""
    day = as_of.date()
    features = features_factory(
        atm_iv=0.40,
        iv_percentile=70.0,
        term_structure=_term(day, [(4, 0.30), (11, 0.55), (39, 0.40)]),
    )
    near = EarningsCrush().read(features, DetectorContext("TEST", as_of, day + timedelta(days=7)))
    far = EarningsCrush().read(features, DetectorContext("TEST", as_of, day + timedelta(days=20)))
    assert near is not None and near.active and near.kind == (day + timedelta(days=7)).isoformat()
    assert near.value == pytest.approx(100 * near.finding.metrics["implied_move"])
    assert far is not None and far.clear and not far.active
    assert EarningsCrush().read(features, DetectorContext("TEST", as_of)) is None


# ---- term_kink ------------------------------------------------------------------------------
def test_term_kink_backwardation_and_contango(features_factory, context, as_of) -> None:
    day = as_of.date()
    inverted = detect(
        TermKink(), features_factory(term_structure=_term(day, [(9, 0.60), (93, 0.42)])), context
    )
    steep = detect(
        TermKink(), features_factory(term_structure=_term(day, [(9, 0.12), (93, 0.18)])), context
    )
    assert inverted is not None and inverted.metrics["shape"] == "backwardation"
    assert 76 <= inverted.score <= 86  # ratio 0.70: excess (0.90 − 0.70)/0.15 → 81.5
    assert steep is not None and steep.metrics["shape"] == "contango"
    assert 63 <= steep.score <= 73  # ratio 1.5: excess (1.5 − 1.3)/0.25 → 68.5
    assert "calendar" in inverted.strategies[0].lower()
    assert (inverted.metrics["front_dte"], inverted.metrics["back_dte"]) == (9, 93)


def test_term_kink_quiet_inside_bounds(features_factory, context, as_of) -> None:
    day = as_of.date()
    normal = TermKink().read(
        features_factory(term_structure=_term(day, [(9, 0.20), (93, 0.22)])), context
    )
    assert normal is not None and not normal.active and normal.clear
    assert normal.value == pytest.approx(1.1) and normal.kind == "contango"
    band = TermKink().read(
        features_factory(term_structure=_term(day, [(9, 0.20), (93, 0.185)])), context
    )
    assert band is not None and not band.active and not band.clear  # 0.925: in the band
    single = features_factory(term_structure=_term(day, [(9, 0.20)]))
    assert TermKink().read(single, context) is None


def test_term_kink_ignores_fronts_under_seven_days(features_factory, context, as_of) -> None:
    """A 2-day expiry at 60 % is gamma noise, not an inverted curve."""
    term = _term(as_of.date(), [(2, 0.60), (9, 0.30), (30, 0.30), (93, 0.31)])
    reading = TermKink().read(features_factory(term_structure=term), context)
    assert reading is not None and not reading.active
    assert reading.value == pytest.approx(0.31 / 0.30)


def test_term_kink_ignores_expiries_spanning_earnings(features_factory, as_of) -> None:
    """Earnings in 20 days: the 93-day expiry carries the event, so the back is the 16-day one;
    with no later expiry before the report there is nothing to compare."""
    day = as_of.date()
    term = _term(day, [(9, 0.30), (16, 0.30), (30, 0.33), (93, 0.42)])
    features = features_factory(term_structure=term)
    early = DetectorContext("TEST", as_of, next_earnings=day + timedelta(days=60))
    pair = term_pair(term, early.next_earnings, early.config)
    assert pair is not None and [p["dte"] for p in pair] == [9, 30]
    near = DetectorContext("TEST", as_of, next_earnings=day + timedelta(days=16))
    assert TermKink().read(features, near) is None  # 16 − 9 < 21 days apart
    unknown = TermKink().read(features, DetectorContext("TEST", as_of))
    assert unknown is not None and unknown.active  # 0.42 / 0.30 = 1.4 without earnings
    assert unknown.finding is not None and unknown.finding.metrics["back_dte"] == 93


# ---- skew_anomaly ---------------------------------------------------------------------------
def test_skew_anomaly_both_directions(features_factory, context) -> None:
    steep = detect(
        SkewAnomaly(),
        features_factory(skew_25d=-0.12, skew_25d_mean=-0.07, skew_25d_zscore=-3.5),
        context,
    )
    flat = detect(
        SkewAnomaly(),
        features_factory(skew_25d=-0.02, skew_25d_mean=-0.07, skew_25d_zscore=2.1),
        context,
    )
    assert steep is not None and 69 <= steep.score <= 79  # excess 1.5 on scale 1.5 → 74.2
    assert "steep" in steep.explanation.summary
    assert flat is not None and 30 <= flat.score <= 40  # excess 0.1 → 34.5
    assert "flat" in flat.explanation.summary


def test_skew_anomaly_quiet(features_factory, context) -> None:
    assert (
        detect(SkewAnomaly(), features_factory(skew_25d=-0.07, skew_25d_zscore=1.2), context)
        is None
    )
    assert detect(SkewAnomaly(), features_factory(skew_25d=-0.07), context) is None


# ---- regime_shift ---------------------------------------------------------------------------
def _recent(close, sma_50, sma_200) -> dict:
    return {"close": close, "sma_50": sma_50, "sma_200": sma_200}


def test_regime_shift_golden_cross(features_factory, context) -> None:
    recent = _recent([104, 105, 106, 108], [99.0, 99.5, 99.9, 100.2], [100.0, 100.0, 100.0, 100.0])
    finding = detect(RegimeShift(), features_factory(sma_recent=recent), context)
    assert finding is not None and finding.metrics["signal"] == "golden_cross"
    assert finding.metrics["bullish"] is True
    assert 72 <= finding.score <= 82  # excess 0.7 + ln(1 + 0.08/0.05) → 76.8
    assert "Bull put spread" in finding.strategies[0]


def test_regime_shift_bounce_and_breakdown(features_factory, context) -> None:
    bounce = _recent([100.5, 100.2, 101.0, 103.0], [100.0] * 4, [90.0] * 4)
    finding = detect(RegimeShift(), features_factory(sma_recent=bounce), context)
    assert finding is not None and finding.metrics["signal"] == "bounce"
    assert finding.metrics["level"] == "sma_50"
    assert 51 <= finding.score <= 61  # excess ln(0.03/0.015) → 55.9
    breakdown = _recent([102.0, 101.0, 100.5, 96.0], [110.0] * 4, [100.0] * 4)
    finding = detect(RegimeShift(), features_factory(sma_recent=breakdown), context)
    assert finding is not None and finding.metrics["signal"] == "breakdown"
    assert finding.metrics["bullish"] is False
    assert 65 <= finding.score <= 75  # excess 0.3 + ln(0.04/0.015) → 70.2
    reading = RegimeShift().read(features_factory(sma_recent=breakdown), context)
    assert reading is not None and reading.kind == "bearish" and reading.stronger == -1
    assert reading.label == "close vs SMA200"
    assert (reading.previous, reading.value) == (pytest.approx(0.5), pytest.approx(-4.0))


def test_regime_shift_fires_on_the_crossing_session_only(features_factory, context) -> None:
    """The bounce of the day before stays in the window (its touch is two days old) but is not
    a new crossing: no signal."""
    after = _recent([100.2, 101.0, 103.0, 103.5], [100.0] * 4, [90.0] * 4)
    reading = RegimeShift().read(features_factory(sma_recent=after), context)
    assert reading is not None and not reading.active and reading.clear
    held = _recent([102.0, 101.0, 97.0, 96.0], [110.0] * 4, [100.0] * 4)  # broke down yesterday
    assert detect(RegimeShift(), features_factory(sma_recent=held), context) is None


def test_regime_shift_quiet(features_factory, context) -> None:
    drifting = _recent([120.0, 120.5, 121.0, 121.2], [110.0] * 4, [100.0] * 4)
    assert detect(RegimeShift(), features_factory(sma_recent=drifting), context) is None
    assert RegimeShift().read(features_factory(sma_recent=None), context) is None


# ---- unusual_activity -----------------------------------------------------------------------
def _contract(**kw) -> dict:
    row = {
        "expiration": "2026-03-20",
        "strike": 105.0,
        "right": "C",
        "dte": 18,
        "volume": 3000,
        "open_interest": 1000,
        "vol_oi": 3.0,
        "mid": 1.2,
        "premium": 360_000.0,
        "zscore": 25.0,
        "history_days": 10,
    }
    row.update(kw)
    return row


def test_unusual_activity_fires_and_grades(features_factory, context) -> None:
    strong = detect(
        UnusualActivity(),
        features_factory(unusual_contracts=[_contract(vol_oi=10.0, zscore=300.0)]),
        context,
    )
    modest = detect(
        UnusualActivity(),
        features_factory(unusual_contracts=[_contract(vol_oi=1.5, zscore=4.0)]),
        context,
    )
    no_history = detect(
        UnusualActivity(),
        features_factory(unusual_contracts=[_contract(vol_oi=10.0, zscore=None)]),
        context,
    )
    assert strong is not None and modest is not None and no_history is not None
    assert 77 <= strong.score <= 87  # ln 10 + 0.25·ln(1 + 99) → 82.5
    assert 37 <= modest.score <= 47  # ln 1.5 + 0.25·ln(4/3) → 42.2
    assert modest.score < no_history.score < strong.score
    assert strong.metrics["contract"] == {
        "expiration": "2026-03-20",
        "strike": 105.0,
        "right": "C",
        "dte": 18,
    }
    assert "105C" in strong.explanation.summary


def test_unusual_activity_quiet_when_usual_for_that_contract(features_factory, context) -> None:
    usual = features_factory(unusual_contracts=[_contract(vol_oi=2.0, zscore=1.5)])
    assert detect(UnusualActivity(), usual, context) is None
    quiet = UnusualActivity().read(features_factory(unusual_contracts=[]), context)
    assert quiet is not None and quiet.clear and quiet.value is None
    assert quiet.text(quiet.value) == "none"
    assert UnusualActivity().read(features_factory(unusual_contracts=None), context) is None


def test_unusual_activity_gauge_is_the_strongest_contracts_vol_oi(
    features_factory, context
) -> None:
    rows = [_contract(vol_oi=3.0, zscore=2.0), _contract(strike=110.0, vol_oi=8.0, zscore=9.0)]
    reading = UnusualActivity().read(features_factory(unusual_contracts=rows), context)
    assert reading is not None and reading.active and reading.value == 8.0  # 3× is usual there
    assert UnusualActivity().rule(AnalyticsConfig()).relative


# ---- thresholds and isolation -------------------------------------------------------------
def test_thresholds_come_from_config(features_factory, as_of) -> None:
    features = features_factory(atm_iv=0.2, iv_percentile=15.0)
    strict = DetectorContext("TEST", as_of)
    loose = DetectorContext("TEST", as_of, config=AnalyticsConfig(low_iv_percentile=20.0))
    assert detect(LowIV(), features, strict) is None
    assert detect(LowIV(), features, loose) is not None


def test_every_detector_states_its_hysteresis_in_config() -> None:
    """Margins and re-arm sessions come from AnalyticsConfig (so OCD_ANALYTICS tunes them)."""
    cfg = AnalyticsConfig(low_iv_intensify=7.0, term_rearm_sessions=5, regime_rearm_sessions=2)
    rules = {d.name: d.rule(cfg) for d in DETECTORS}
    assert rules["low_iv"].margin == 7.0 and rules["term_kink"].rearm_sessions == 5
    assert rules["regime_shift"].margin is None and rules["regime_shift"].rearm_sessions == 2
    assert all(r.rearm_sessions >= 1 for r in rules.values())


def test_hysteresis_bands_follow_the_thresholds(features_factory, as_of) -> None:
    """A band is relative to its threshold, so moving the threshold moves the band with it."""
    cfg = AnalyticsConfig(low_iv_percentile=20.0, low_iv_clear_band=5.0)
    ctx = DetectorContext("TEST", as_of, config=cfg)
    band = LowIV().read(features_factory(atm_iv=0.2, iv_percentile=24.0), ctx)
    clear = LowIV().read(features_factory(atm_iv=0.2, iv_percentile=25.0), ctx)
    assert band is not None and not band.active and not band.clear
    assert clear is not None and clear.clear
    with pytest.raises(ValueError, match="term_clear_band"):
        AnalyticsConfig(term_clear_band=0.3)  # 0.90 + 0.3 ≥ 1.30 − 0.3: never clear


class _Broken:
    name = "broken"

    def read(self, features: FeatureSet, context: DetectorContext) -> Reading | None:
        raise ZeroDivisionError("boom")


def test_one_failing_detector_does_not_hide_the_others(features_factory, context) -> None:
    features = features_factory(atm_iv=0.1, iv_percentile=0.5)
    readings, errors = run_detectors(features, context, [_Broken(), LowIV()])
    assert [(d.name, r.active) for d, r in readings] == [("low_iv", True)]
    assert errors == ["TEST: broken: ZeroDivisionError: boom"]
