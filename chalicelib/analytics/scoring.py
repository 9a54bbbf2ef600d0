"""Which edges become alerts: minimum score, per-(ticker, detector) cooldown, a daily cap and
duplicate suppression. Pure: the state (what was alerted before) is an argument.

The edge trigger (:mod:`chalicelib.analytics.detectors.edges`) already limits alerts to
changes; these rules are the backstop behind it (an edge they turn away stays armed).

The state is read from the ``alerts`` table by the caller, so throttling survives restarts
without a table of its own. Times are those of the snapshot (an alert's ``created_at``), not the
wall clock, so replaying a day gives the same alerts as living through it.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from chalicelib.analytics.detectors.base import Finding

BELOW_MIN_SCORE = "below_min_score"
DUPLICATE = "duplicate"
COOLDOWN = "cooldown"
DAILY_CAP = "daily_cap"


def alert_id(ticker: str, detector: str, as_of: datetime) -> str:
    """Deterministic: the same finding on the same snapshot always has the same id."""
    stamp = _utc(as_of).strftime("%Y-%m-%dT%H:%M:%SZ")
    digest = hashlib.sha256(f"{ticker}|{detector}|{stamp}".encode()).hexdigest()
    return f"al_{digest[:24]}"


@dataclass(frozen=True)
class Candidate:
    """A finding about to become an alert."""

    ticker: str
    as_of: datetime  # the snapshot's time; becomes the alert's created_at
    finding: Finding

    @property
    def detector(self) -> str:
        return self.finding.detector

    @property
    def score(self) -> float:
        return self.finding.score

    @property
    def id(self) -> str:
        return alert_id(self.ticker, self.detector, self.as_of)


@dataclass(frozen=True)
class ThrottleState:
    """What the ``alerts`` table says: last alert per (ticker, detector), alerts per UTC day,
    and which of the candidates' ids exist already."""

    last_alert: Mapping[tuple[str, str], datetime] = field(default_factory=dict)
    per_day: Mapping[date, int] = field(default_factory=dict)
    existing_ids: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ThrottlePolicy:
    min_score: float = 40.0
    cooldown: timedelta = timedelta(hours=24)
    daily_cap: int = 50


@dataclass(frozen=True)
class Selection:
    accepted: list[Candidate]
    suppressed: list[tuple[Candidate, str]]

    @property
    def reasons(self) -> dict[str, int]:
        return dict(Counter(reason for _, reason in self.suppressed))


def select_alerts(
    candidates: Sequence[Candidate], state: ThrottleState, policy: ThrottlePolicy
) -> Selection:
    """Apply, in order: minimum score; duplicates (an id already stored, or the same ticker and
    detector twice in one batch: the higher score stays); cooldown (an alert of the same ticker
    and detector less than ``cooldown`` before this snapshot, or after it); the daily cap (per
    UTC day of the snapshot, counting alerts already stored that day; the highest scores win).
    Accepted alerts come back highest score first.
    """
    suppressed: list[tuple[Candidate, str]] = []
    ranked = sorted(candidates, key=lambda c: (-c.score, c.ticker, c.detector, c.as_of))
    seen: set[tuple[str, str]] = set()
    survivors: list[Candidate] = []
    for cand in ranked:
        key = (cand.ticker, cand.detector)
        if cand.score < policy.min_score:
            suppressed.append((cand, BELOW_MIN_SCORE))
        elif cand.id in state.existing_ids or key in seen:
            suppressed.append((cand, DUPLICATE))
        elif (last := state.last_alert.get(key)) is not None and _utc(cand.as_of) - _utc(
            last
        ) < policy.cooldown:
            suppressed.append((cand, COOLDOWN))
        else:
            seen.add(key)
            survivors.append(cand)
    used = Counter({day: int(n) for day, n in state.per_day.items()})
    accepted: list[Candidate] = []
    for cand in survivors:  # already highest score first
        day = _utc(cand.as_of).date()
        if used[day] >= policy.daily_cap:
            suppressed.append((cand, DAILY_CAP))
            continue
        used[day] += 1
        accepted.append(cand)
    return Selection(accepted, suppressed)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
