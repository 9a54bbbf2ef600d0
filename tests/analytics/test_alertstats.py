"""The repeat statistic on plain alerts: what counts as a repeat within 72 hours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chalicelib.analytics.alertstats import alert_stats

T0 = datetime(2026, 3, 2, 21, 0, tzinfo=UTC)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def test_a_repeat_is_the_same_pair_within_72_hours() -> None:
    alerts = [
        ("SPY", "low_iv", at(0)),
        ("SPY", "low_iv", at(72)),  # exactly 72 h later: a repeat
        ("SPY", "low_iv", at(145)),  # 73 h after the previous one: not
        ("QQQ", "low_iv", at(1)),  # another ticker
        ("SPY", "term_kink", at(2)),  # another detector
    ]
    stats = alert_stats(reversed(alerts))  # any order
    assert (stats.alerts, stats.repeats) == (5, 1)
    assert stats.repeat_share == 0.2
    assert stats.by_detector == {"low_iv": 4, "term_kink": 1}
    assert stats.repeats_by_detector == {"low_iv": 1}


def test_named_detectors_are_listed_even_without_alerts() -> None:
    stats = alert_stats([("SPY", "low_iv", at(0))], detectors=["low_iv", "regime_shift"])
    assert stats.by_detector == {"low_iv": 1, "regime_shift": 0}
    assert "regime_shift" in "\n".join(stats.lines())


def test_no_alerts_is_a_share_of_zero() -> None:
    stats = alert_stats([])
    assert stats.repeat_share == 0.0 and stats.as_dict()["repeat_share"] == 0.0
    assert stats.lines()[0].startswith("0 alerts")


def test_window_is_a_parameter() -> None:
    alerts = [("SPY", "a", at(0)), ("SPY", "a", at(24)), ("SPY", "a", at(60))]
    assert alert_stats(alerts, window=timedelta(hours=24)).repeats == 1
    assert alert_stats(alerts).repeats == 2
