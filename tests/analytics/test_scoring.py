"""Throttling rules on plain values: minimum score, duplicates, cooldown and the daily cap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chalicelib.analytics.detectors.base import Finding
from chalicelib.analytics.scoring import (
    BELOW_MIN_SCORE,
    COOLDOWN,
    DAILY_CAP,
    DUPLICATE,
    Candidate,
    ThrottlePolicy,
    ThrottleState,
    alert_id,
    select_alerts,
)
from chalicelib.domain.models import Explanation

T0 = datetime(2026, 3, 2, 21, 0, tzinfo=UTC)
POLICY = ThrottlePolicy(min_score=40.0, cooldown=timedelta(hours=24), daily_cap=3)


def cand(ticker: str, detector: str, score: float, at: datetime = T0) -> Candidate:
    finding = Finding(
        detector=detector,
        score=score,
        metrics={},
        explanation=Explanation(summary="s", rationale="r"),
        strategies=[],
    )
    return Candidate(ticker, at, finding)


def test_alert_id_is_deterministic_and_distinct() -> None:
    assert alert_id("SPY", "low_iv", T0) == alert_id("SPY", "low_iv", T0.replace(tzinfo=None))
    assert alert_id("SPY", "low_iv", T0) != alert_id("SPY", "low_iv", T0 + timedelta(minutes=5))
    assert alert_id("SPY", "low_iv", T0) != alert_id("QQQ", "low_iv", T0)
    assert cand("SPY", "low_iv", 50).id == alert_id("SPY", "low_iv", T0)


def test_minimum_score() -> None:
    sel = select_alerts([cand("SPY", "a", 39.9), cand("SPY", "b", 40.0)], ThrottleState(), POLICY)
    assert [c.detector for c in sel.accepted] == ["b"]
    assert sel.reasons == {BELOW_MIN_SCORE: 1}


def test_duplicates_in_batch_and_already_stored() -> None:
    stored = cand("QQQ", "a", 70)
    batch = [cand("SPY", "a", 60), cand("SPY", "a", 80, T0 + timedelta(minutes=5)), stored]
    sel = select_alerts(batch, ThrottleState(existing_ids=frozenset({stored.id})), POLICY)
    assert [(c.ticker, c.score) for c in sel.accepted] == [("SPY", 80)]
    assert sel.reasons == {DUPLICATE: 2}


def test_cooldown_per_ticker_and_detector() -> None:
    last = {("SPY", "a"): T0 - timedelta(hours=23), ("QQQ", "a"): T0 - timedelta(hours=24)}
    batch = [cand("SPY", "a", 90), cand("SPY", "b", 50), cand("QQQ", "a", 60)]
    sel = select_alerts(batch, ThrottleState(last_alert=last), POLICY)
    assert sorted((c.ticker, c.detector) for c in sel.accepted) == [("QQQ", "a"), ("SPY", "b")]
    assert sel.suppressed[0][0].ticker == "SPY" and sel.suppressed[0][1] == COOLDOWN


def test_an_alert_newer_than_the_snapshot_also_blocks() -> None:
    last = {("SPY", "a"): T0 + timedelta(days=3)}  # replaying an older snapshot
    sel = select_alerts([cand("SPY", "a", 90)], ThrottleState(last_alert=last), POLICY)
    assert sel.accepted == [] and sel.reasons == {COOLDOWN: 1}


def test_daily_cap_keeps_the_highest_scores_and_counts_stored_alerts() -> None:
    batch = [cand(t, "a", s) for t, s in [("A", 55), ("B", 95), ("C", 65), ("D", 75), ("E", 45)]]
    sel = select_alerts(batch, ThrottleState(), POLICY)
    assert [c.ticker for c in sel.accepted] == ["B", "D", "C"]
    assert sel.reasons == {DAILY_CAP: 2}
    already = ThrottleState(per_day={T0.date(): 2})
    sel = select_alerts(batch, already, POLICY)
    assert [c.ticker for c in sel.accepted] == ["B"]
    # another UTC day has its own allowance
    tomorrow = [cand("F", "a", 41, T0 + timedelta(days=1))]
    sel = select_alerts(batch + tomorrow, ThrottleState(per_day={T0.date(): 3}), POLICY)
    assert [c.ticker for c in sel.accepted] == ["F"]
