"""Edge triggers with hysteresis: a detector alerts when its condition is entered, not while it
holds.

Per (ticker, detector) an ``ArmState`` remembers whether the detector is armed, the kind and gauge
value of its last alert, the last gauge value seen while the condition did not hold (the "from"
of an entry) and how many whole sessions the condition has been clear. Pure: the state is an
argument and the next state comes back; times are the snapshots' times and sessions their New
York dates, so a replay gives the same alerts as living through it. For a reading at time t in
session S:

1. A reading older than the state's last one changes nothing (a replay of the past); the same
   snapshot again gives the same answer.
2. When S is later than the session of the last reading, that session is closed: if the
   condition was clear at every snapshot of it, ``cleared_sessions`` grows by one, else it
   restarts at 0. A disarmed detector re-arms once ``cleared_sessions`` reaches the rule's
   ``rearm_sessions``. Only sessions with a reading count: a day without data is no evidence.
3. An active reading is an edge when the detector is armed (``entered``), when its kind differs
   from the last alert's (``new_kind``), or when its gauge has gone past the last alert's value by
   the rule's margin in the stronger direction (``intensified``).
4. Only an accepted alert disarms, so the caller picks ``Step.fired`` or ``Step.quiet``: an edge
   the backstop (score floor, cooldown, daily cap) turns away stays armed and may alert later.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from chalicelib.analytics.detectors.base import EdgeRule, Finding, Reading
from chalicelib.domain.calendar import session_of

ENTERED = "entered"
INTENSIFIED = "intensified"
NEW_KIND = "new_kind"


@dataclass(frozen=True)
class ArmState:
    """What one (ticker, detector) pair remembers between snapshots (stored in DuckDB)."""

    armed: bool = True
    kind: str = ""  # the kind of the last alert
    fired_at: datetime | None = None
    fired_value: float | None = None  # the gauge at the last alert
    quiet_value: float | None = None  # the gauge at the last reading without the condition
    seen_at: datetime | None = None  # the last reading's snapshot
    held: bool = False  # the condition was not clear at some snapshot of seen_at's session
    cleared_sessions: int = 0  # whole sessions, before seen_at's, clear at every snapshot


@dataclass(frozen=True)
class Change:
    """What an edge changed, from → to, in the detector's gauge."""

    trigger: str  # entered, intensified or new_kind
    label: str
    before: float | None
    after: float | None
    text: str  # e.g. "IV percentile 14 → 6"
    kind_before: str = ""
    kind_after: str = ""
    since: datetime | None = None  # the last alert, for intensified and new_kind

    def as_metrics(self) -> dict[str, object]:
        return {
            "trigger": self.trigger,
            "gauge": self.label,
            "from": self.before,
            "to": self.after,
            "text": self.text,
            "kind_from": self.kind_before or None,
            "kind_to": self.kind_after or None,
            "last_alert_at": self.since.isoformat().replace("+00:00", "Z") if self.since else None,
        }

    def sentence(self) -> str:
        if self.trigger == ENTERED:
            return f"What changed: {self.text}, entering the condition."
        when = f" on {self.since:%Y-%m-%d}" if self.since else ""
        if self.trigger == NEW_KIND:
            return f"What changed: {self.text} since the last alert{when}."
        return f"What changed: {self.text} since the last alert{when}, past the re-alert margin."


@dataclass(frozen=True)
class Step:
    """One reading's outcome: the edge (None: no alert) and the next state either way."""

    change: Change | None
    quiet: ArmState  # the next state when no alert is accepted
    fired: ArmState  # the next state when this reading's alert is accepted

    def next_state(self, accepted: bool) -> ArmState:
        return self.fired if accepted and self.change is not None else self.quiet


def step(state: ArmState | None, reading: Reading, at: datetime, rule: EdgeRule) -> Step:
    """The edge of one reading at snapshot time ``at`` given the pair's state (None: new)."""
    s = state or ArmState()
    if s.seen_at is not None and at < s.seen_at:
        return Step(None, s, s)
    armed, cleared, held = s.armed, s.cleared_sessions, s.held
    if s.seen_at is None or session_of(s.seen_at) != session_of(at):
        if s.seen_at is not None:
            cleared = 0 if held else cleared + 1
        held = False
        armed = armed or cleared >= rule.rearm_sessions
    base = replace(
        s,
        armed=armed,
        cleared_sessions=cleared,
        held=held or not reading.clear,
        seen_at=at,
        quiet_value=s.quiet_value if reading.active else reading.value,
    )
    trigger = _trigger(base, reading, rule) if reading.active else None
    if trigger is None:
        return Step(None, base, base)
    before = s.quiet_value if trigger == ENTERED else s.fired_value
    if reading.previous is not None:
        before = reading.previous
    if before is None and state is None:  # nothing seen before: no "from" to report
        text = f"{reading.label} {reading.text(reading.value)} (first reading)"
    else:
        text = f"{reading.label} {reading.text(before)} → {reading.text(reading.value)}"
    if trigger == NEW_KIND:
        text = f"{s.kind} → {reading.kind}, {text}"
    change = Change(
        trigger=trigger,
        label=reading.label,
        before=before,
        after=reading.value,
        text=text,
        kind_before=s.kind if trigger == NEW_KIND else "",
        kind_after=reading.kind if trigger == NEW_KIND else "",
        since=s.fired_at if trigger != ENTERED else None,
    )
    fired = replace(
        base,
        armed=False,
        kind=reading.kind,
        fired_at=at,
        fired_value=reading.value,
        cleared_sessions=0,
    )
    return Step(change, base, fired)


def _trigger(s: ArmState, reading: Reading, rule: EdgeRule) -> str | None:
    if s.armed:
        return ENTERED
    if reading.kind != s.kind:
        return NEW_KIND
    if rule.margin is None or reading.value is None or s.fired_value is None:
        return None
    gain = reading.stronger * (reading.value - s.fired_value)
    need = rule.margin * abs(s.fired_value) if rule.relative else rule.margin
    return INTENSIFIED if gain >= need - 1e-9 else None


def explain(finding: Finding, change: Change) -> Finding:
    """The finding with what changed in its summary, rationale and metrics."""
    explanation = finding.explanation
    metrics = {**finding.metrics, "change": change.as_metrics()}
    return finding.model_copy(
        update={
            "metrics": metrics,
            "explanation": explanation.model_copy(
                update={
                    "summary": f"{explanation.summary} ({change.text})",
                    "rationale": f"{change.sentence()} {explanation.rationale}",
                    "key_metrics": metrics,
                }
            ),
        }
    )
