"""The edge trigger on plain readings: entries alert, states do not; hysteresis counts sessions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.analytics.detectors.base import EdgeRule, Finding, Reading
from chalicelib.analytics.detectors.edges import (
    ENTERED,
    INTENSIFIED,
    NEW_KIND,
    ArmState,
    Change,
    explain,
    step,
)
from chalicelib.domain.models import Explanation

MONDAY = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # 10:00 in New York
RULE = EdgeRule(margin=5.0, rearm_sessions=2)
FINDING = Finding(
    detector="gauge",
    score=50.0,
    metrics={"x": 1},
    explanation=Explanation(summary="TEST gauge high", rationale="Because."),
    strategies=[],
)


def reading(value: float | None, *, threshold: float = 90.0, band: float = 10.0, **kw) -> Reading:
    """A gauge active at ≥ threshold, clear at ≤ threshold − band."""
    active = value is not None and value >= threshold
    return Reading(
        value=value,
        label="gauge",
        template="{:.0f}",
        active=active,
        clear=value is None or value <= threshold - band,
        finding=FINDING if active else None,
        **kw,
    )


def session(day: int, hour: int = 15) -> datetime:
    """A snapshot ``day`` trading days after Monday 2 March 2026 (no holidays that month)."""
    date = MONDAY + timedelta(days=day + 2 * ((day + MONDAY.weekday()) // 5))
    return date.replace(hour=hour)


def drive(
    readings: Sequence[tuple[datetime, Reading]],
    rule: EdgeRule = RULE,
    accept: bool = True,
    state: ArmState | None = None,
) -> tuple[list[tuple[datetime, Change]], ArmState | None]:
    """Feed readings in order, accepting every edge as an alert; the edges and the last state."""
    edges = []
    for at, r in readings:
        outcome = step(state, r, at, rule)
        if outcome.change is not None:
            edges.append((at, outcome.change))
        state = outcome.next_state(accept)
    return edges, state


def test_sessions_helper_skips_weekends() -> None:
    assert [session(d).strftime("%a %d") for d in range(6)] == [
        "Mon 02",
        "Tue 03",
        "Wed 04",
        "Thu 05",
        "Fri 06",
        "Mon 09",
    ]


def test_an_entered_condition_alerts_once_while_it_holds() -> None:
    values = [80, 85, 92, 93, 91, 94, 92]
    edges, state = drive([(session(d), reading(v)) for d, v in enumerate(values)])
    assert [(at, c.trigger) for at, c in edges] == [(session(2), ENTERED)]
    assert edges[0][1].text == "gauge 85 → 92"  # from the last reading before the entry
    assert state is not None and not state.armed and state.fired_value == 92


def test_several_snapshots_of_a_session_alert_once() -> None:
    snaps = [session(0, h) for h in (14, 15, 17, 19, 20)]
    edges, state = drive([(at, reading(95)) for at in snaps])
    assert len(edges) == 1 and edges[0][0] == snaps[0]
    assert state is not None and state.seen_at == snaps[-1] and state.cleared_sessions == 0


def test_rearming_counts_whole_clear_sessions_not_snapshots() -> None:
    """Re-arming takes two clear sessions: forty clear snapshots on Tuesday are one."""
    fired = [(session(0), reading(95))]
    tuesday = [(session(1, 14) + timedelta(minutes=5 * i), reading(70)) for i in range(40)]
    edges, state = drive([*fired, *tuesday, (session(2), reading(95))])
    assert len(edges) == 1  # Wednesday: one clear session only
    # Wednesday is clear again by 19:00, but held at 15:00: it does not count
    edges, state = drive([(session(2, 19), reading(70)), (session(3), reading(96))], state=state)
    assert edges == []
    # Friday and Monday clear at every snapshot: Tuesday's entry alerts
    later = [(session(4), reading(70)), (session(5), reading(70)), (session(6), reading(93))]
    edges, state = drive(later, state=state)
    assert [(at, c.trigger) for at, c in edges] == [(session(6), ENTERED)]
    assert edges[0][1].text == "gauge 70 → 93"


def test_a_session_in_the_band_does_not_count_as_clear() -> None:
    """85 is below the entry (90) but above the clear level (80): the condition has not ended,
    so Wednesday breaks the run of clear sessions."""
    values = [95, 70, 85, 70, 95]
    edges, _ = drive([(session(d), reading(v)) for d, v in enumerate(values)])
    assert len(edges) == 1
    values = [95, 70, 75, 95]
    edges, _ = drive([(session(d), reading(v)) for d, v in enumerate(values)])
    assert [at for at, _ in edges] == [session(0), session(3)]


def test_a_session_without_readings_is_no_evidence() -> None:
    """Data missing for a week: the two clear sessions needed are two observed ones."""
    edges, _ = drive(
        [(session(0), reading(95)), (session(1), reading(70)), (session(9), reading(95))]
    )
    assert len(edges) == 1


def test_intensifying_past_the_margin_alerts_again() -> None:
    edges, state = drive(
        [(session(d), reading(v)) for d, v in enumerate([91, 95, 96, 99, 100, 97])]
    )
    assert [(at, c.trigger) for at, c in edges] == [
        (session(0), ENTERED),
        (session(2), INTENSIFIED),
    ]
    change = edges[1][1]
    assert (change.before, change.after) == (91, 96) and change.since == session(0)
    assert change.text == "gauge 91 → 96"
    assert state is not None and state.fired_value == 96  # the next margin counts from here


def test_lower_is_stronger_when_the_reading_says_so() -> None:
    def low(value: float) -> Reading:
        active, clear = value <= 10, value >= 20
        finding = FINDING if active else None
        return Reading(value, "IVP", "{:.0f}", active, clear, finding, stronger=-1)

    edges, _ = drive([(session(d), low(v)) for d, v in enumerate([12, 9, 8, 12, 4, 3])])
    assert [(c.trigger, c.text) for _, c in edges] == [
        (ENTERED, "IVP 12 → 9"),
        (INTENSIFIED, "IVP 9 → 4"),
    ]


def test_relative_margin() -> None:
    rule = EdgeRule(margin=1.0, rearm_sessions=2, relative=True)  # doubled
    edges, _ = drive(
        [(session(d), reading(v)) for d, v in enumerate([100, 150, 199, 200, 390])], rule
    )
    assert [at for at, _ in edges] == [session(0), session(3)]


def test_no_margin_means_no_intensification() -> None:
    rule = EdgeRule(margin=None, rearm_sessions=1)
    edges, _ = drive([(session(d), reading(v)) for d, v in enumerate([91, 200, 300])], rule)
    assert len(edges) == 1


def test_a_new_kind_alerts_at_once() -> None:
    edges, _ = drive(
        [
            (session(0), reading(95, kind="up")),
            (session(1), reading(95, kind="down")),
            (session(2), reading(96, kind="down")),
        ]
    )
    assert [c.trigger for _, c in edges] == [ENTERED, NEW_KIND]
    change = edges[1][1]
    assert change.text == "up → down, gauge 95 → 95"
    assert (change.kind_before, change.kind_after) == ("up", "down")


def test_the_features_own_previous_value_is_the_from() -> None:
    edges, _ = drive([(session(0), reading(95, previous=60.0))])
    assert edges[0][1].text == "gauge 60 → 95"


def test_first_reading_has_no_from() -> None:
    edges, _ = drive([(session(0), reading(95))])
    assert edges[0][1].text == "gauge 95 (first reading)"
    assert edges[0][1].before is None


def test_an_edge_turned_away_by_the_backstop_stays_armed() -> None:
    """Cooldown, daily cap or score floor: no alert went out, so the next snapshot may alert."""
    edges, state = drive([(session(0), reading(95)), (session(0, 16), reading(95))], accept=False)
    assert len(edges) == 2 and state is not None and state.armed


def test_replays_change_nothing() -> None:
    _, state = drive([(session(0), reading(85)), (session(1), reading(95))])
    assert state is not None
    again = step(state, reading(95), session(1), RULE)  # the same snapshot, analysed again
    assert again.change is None and again.quiet == state
    older = step(state, reading(70), session(0), RULE)  # an older snapshot
    assert older.change is None and older.quiet == older.fired == state


def test_explain_says_what_changed() -> None:
    edges, _ = drive([(session(0), reading(85)), (session(1), reading(95))])
    finding = explain(FINDING, edges[0][1])
    assert finding.explanation.summary == "TEST gauge high (gauge 85 → 95)"
    assert finding.explanation.rationale.startswith("What changed: gauge 85 → 95, entering")
    assert finding.metrics["change"] == {
        "trigger": "entered",
        "gauge": "gauge",
        "from": 85,
        "to": 95,
        "text": "gauge 85 → 95",
        "kind_from": None,
        "kind_to": None,
        "last_alert_at": None,
    }
    assert finding.explanation.key_metrics == finding.metrics
    assert FINDING.metrics == {"x": 1}  # the original is untouched


@pytest.mark.parametrize("rearm", [1, 3])
def test_rearm_sessions_is_the_number_of_clear_sessions(rearm: int) -> None:
    rule = EdgeRule(margin=None, rearm_sessions=rearm)
    clear = [(session(1 + d), reading(70)) for d in range(rearm)]
    edges, _ = drive([(session(0), reading(95)), *clear, (session(1 + rearm), reading(95))], rule)
    assert len(edges) == 2
    short = clear[:-1]
    edges, _ = drive([(session(0), reading(95)), *short, (session(rearm), reading(95))], rule)
    assert len(edges) == 1
