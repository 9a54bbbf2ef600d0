"""How often alerts repeat themselves: the share of alerts whose (ticker, detector) pair already
alerted within the previous 72 hours, and the alerts per detector.

Alerts should report changes, not states: a pair that alerts day after day tells the user
nothing new. Pure: the caller hands in (ticker, detector, created_at) triples, from a simulated
month (``scripts/ocdlib/alertstats.py``, the bench and ``tests/analytics``) or from a store.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

REPEAT_WINDOW = timedelta(hours=72)


@dataclass(frozen=True)
class AlertStats:
    alerts: int
    repeats: int  # alerts whose pair alerted within ``window_hours`` before (inclusive)
    window_hours: float
    by_detector: dict[str, int] = field(default_factory=dict)
    repeats_by_detector: dict[str, int] = field(default_factory=dict)

    @property
    def repeat_share(self) -> float:
        """repeats / alerts, a fraction (0 without alerts)."""
        return self.repeats / self.alerts if self.alerts else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "repeat_share": round(self.repeat_share, 4)}

    def lines(self) -> list[str]:
        out = [
            f"{self.alerts} alerts, {self.repeats} repeat a (ticker, detector) pair of the "
            f"previous {self.window_hours:g} h: {100 * self.repeat_share:.1f} %"
        ]
        width = max((len(d) for d in self.by_detector), default=0)
        out += [
            f"  {name:<{width}} {count:>4} alerts, {self.repeats_by_detector.get(name, 0):>3} "
            "repeats"
            for name, count in sorted(self.by_detector.items())
        ]
        return out


def alert_stats(
    alerts: Iterable[tuple[str, str, datetime]],
    *,
    detectors: Sequence[str] = (),
    window: timedelta = REPEAT_WINDOW,
) -> AlertStats:
    """Repeat share and counts of (ticker, detector, created_at) alerts, in any order.

    An alert is a repeat when its pair's previous alert is at most ``window`` older. Detectors
    named in ``detectors`` are listed even with no alert (a count of 0 is a finding).
    """
    ordered = sorted(alerts, key=lambda a: (a[2], a[0], a[1]))
    last: dict[tuple[str, str], datetime] = {}
    counts: Counter[str] = Counter({name: 0 for name in detectors})
    repeats: Counter[str] = Counter()
    for ticker, detector, created in ordered:
        counts[detector] += 1
        before = last.get((ticker, detector))
        if before is not None and created - before <= window:
            repeats[detector] += 1
        last[(ticker, detector)] = created
    return AlertStats(
        alerts=len(ordered),
        repeats=sum(repeats.values()),
        window_hours=window.total_seconds() / 3600,
        by_detector=dict(counts),
        repeats_by_detector=dict(repeats),
    )
