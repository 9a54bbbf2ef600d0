"""Schedule emulator: runs the Chalice app's own scheduled handlers at their configured rates.

``chalice local`` serves HTTP but never runs ``@app.schedule`` functions, so this loop does what
EventBridge does on AWS: it reads the schedules from ``app.event_sources``, and invokes each
handler from ``app.handler_map`` with a CloudWatch-shaped event. Every schedule fires once at
start (so a fresh stack has data at once), then at its rate. A stop request waits for the running
handler to return, so an export is never cut off half-way.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chalice import Chalice, Rate

_RATE = re.compile(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86_400}


@dataclass
class Schedule:
    name: str
    seconds: float
    next_at: float = 0.0


def rate_seconds(expression: Any) -> float | None:
    """Seconds between runs of a Chalice schedule expression; None for cron expressions."""
    if isinstance(expression, Rate):
        return float(expression.value * _UNIT_SECONDS[expression.unit.lower().rstrip("s")])
    match = _RATE.fullmatch(str(expression).strip())
    if not match:
        return None
    return float(int(match[1]) * _UNIT_SECONDS[match[2].rstrip("s")])


def scheduled_event(rule: str, detail: dict[str, Any] | None = None) -> dict[str, Any]:
    """The event EventBridge delivers for a scheduled rule."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "version": "0",
        "id": f"local-{rule}-{now}",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "000000000000",
        "time": now,
        "region": "us-east-1",
        "resources": [f"arn:aws:events:us-east-1:000000000000:rule/{rule}"],
        "detail": detail or {},
    }


def schedules_of(app: Chalice, every: float | None = None) -> list[Schedule]:
    """The app's rate schedules in registration order (``every`` overrides all rates)."""
    out = []
    for source in app.event_sources:
        expression = getattr(source, "schedule_expression", None)
        if expression is None:
            continue
        seconds = every or rate_seconds(expression)
        if seconds:
            out.append(Schedule(source.name, seconds))
    return out


def invoke(app: Chalice, name: str, detail: dict[str, Any] | None = None) -> Any:
    return app.handler_map[name](scheduled_event(name, detail), None)


class Emulator:
    """Fires due schedules in order until ``stop`` is set."""

    def __init__(
        self,
        app: Chalice,
        every: float | None = None,
        report: Callable[[str, Any, float], None] | None = None,
        max_runs: int | None = None,
    ) -> None:
        self.app = app
        self.schedules = schedules_of(app, every)
        self.report = report or (lambda name, result, seconds: None)
        self.stop = threading.Event()
        self.max_runs = max_runs
        self.runs = 0
        self.failures = 0

    def run(self) -> None:
        start = time.monotonic()
        for schedule in self.schedules:
            schedule.next_at = start
        while not self.stop.is_set():
            now = time.monotonic()
            for schedule in self.schedules:
                if self.stop.is_set() or now < schedule.next_at:
                    continue
                self._fire(schedule.name)
                schedule.next_at = max(schedule.next_at + schedule.seconds, time.monotonic())
            if self.max_runs is not None and self.runs >= self.max_runs:
                return
            due = min((s.next_at for s in self.schedules), default=time.monotonic() + 1)
            self.stop.wait(max(0.05, due - time.monotonic()))

    def _fire(self, name: str) -> None:
        started = time.perf_counter()
        try:
            result: Any = invoke(self.app, name)
        except Exception as exc:  # a failed run is reported; the next one still happens
            self.failures += 1
            result = {"error": f"{type(exc).__name__}: {exc}"}
        self.runs += 1
        self.report(name, result, time.perf_counter() - started)
