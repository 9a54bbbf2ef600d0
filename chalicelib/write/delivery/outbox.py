"""The ``delivery_outbox`` table: one row per (alert, sink), pending → delivered | dead.

Rows are inserted by ``enqueue`` inside the transaction that inserts the alerts, so an alert
and its deliveries exist together or not at all. Every later change is one committed UPDATE,
made the moment it is known: the attempt before it is sent (so an attempt the writer did not
live to finish still counts, and a message that kills the writer cannot be retried for ever),
the acknowledgement as soon as it arrives. Times are the writer's clock, stored naive UTC like
every timestamp of the store.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from chalicelib.exportformat import strict_json
from chalicelib.write.store import Store

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"

# Before the alerts themselves are inserted: rows only for alerts that are new.
ENQUEUE = """
    INSERT OR IGNORE INTO delivery_outbox (alert_id, sink, status, attempts)
    SELECT a.id, s.sink, 'pending', 0
    FROM {view} a CROSS JOIN (SELECT unnest(?::VARCHAR[]) AS sink) s
    WHERE a.score >= ? AND a.id NOT IN (SELECT id FROM alerts)
"""
# Due: never tried, or its backoff has passed; or tried "later" than now, which only a clock
# that went back can produce (a replay restarted): judged due rather than stuck for ever.
DUE = """
    SELECT o.alert_id, o.sink, o.attempts, o.generation, a.ticker, a.detector_name, a.score,
           a.metrics, a.explanation, a.created_at
    FROM delivery_outbox o JOIN alerts a ON a.id = o.alert_id
    WHERE o.status = 'pending' AND o.sink IN (SELECT unnest(?::VARCHAR[]))
      AND o.alert_id IN (SELECT unnest(?::VARCHAR[]))
      AND (o.next_attempt_at IS NULL OR o.next_attempt_at <= ? OR o.last_attempt_at > ?)
    ORDER BY a.created_at, a.id, o.sink
    LIMIT ?
"""
BEGIN_ATTEMPT = """
    UPDATE delivery_outbox SET attempts = attempts + 1, last_attempt_at = ?,
           next_attempt_at = ?, generation = coalesce(generation, ?)
    WHERE alert_id = ? AND sink = ? AND status = 'pending'
"""
ACKNOWLEDGED = """
    UPDATE delivery_outbox SET status = 'delivered', delivered_at = ?, receipt = ?
    WHERE alert_id = ? AND sink = ?
"""
FAILED = """
    UPDATE delivery_outbox SET last_error = ?, last_error_at = ?,
           status = CASE WHEN attempts >= ? THEN 'dead' ELSE status END
    WHERE alert_id = ? AND sink = ?
    RETURNING status
"""
STATUS = """
    SELECT sink, max(delivered_at), count(*) FILTER (WHERE status = 'pending'),
           count(*) FILTER (WHERE status = 'delivered'), count(*) FILTER (WHERE status = 'dead'),
           arg_max(last_error, last_error_at), max(last_error_at)
    FROM delivery_outbox WHERE sink IN (SELECT unnest(?::VARCHAR[])) GROUP BY sink
"""
AWAITING = """
    SELECT DISTINCT alert_id FROM delivery_outbox
    WHERE status = 'pending' AND sink IN (SELECT unnest(?::VARCHAR[])) ORDER BY alert_id
"""

_VIEW = re.compile(r"[a-z_]+")


@dataclass(frozen=True)
class Row:
    """A due outbox row with what its message is made of."""

    alert_id: str
    sink: str
    attempts: int  # made so far
    generation: str | None  # recorded at the first attempt
    ticker: str
    detector_name: str
    score: float
    metrics: dict[str, Any]
    explanation: dict[str, Any]
    created_at: datetime  # aware UTC


@dataclass(frozen=True)
class SinkCounts:
    sink: str
    last_success: datetime | None
    backlog: int
    delivered: int
    dead: int
    last_error: str | None
    last_error_at: datetime | None


def enqueue(store: Store, view: str, sinks: Sequence[str], min_score: float) -> None:
    """Outbox rows for the new alerts of ``view`` (the alerts about to be inserted, same
    columns as ``alerts``): call inside the transaction that inserts them, before the insert."""
    if not sinks:
        return
    if not _VIEW.fullmatch(view):
        raise ValueError(f"bad view name {view!r}")
    store.rows(ENQUEUE.format(view=view), [list(sinks), min_score])


def due(
    store: Store, sinks: Sequence[str], released: Sequence[str], now: datetime, limit: int
) -> list[Row]:
    """Pending rows of ``sinks`` for ``released`` alerts whose next attempt is due at ``now``,
    oldest alert first."""
    at = _naive(now)
    rows = store.rows(DUE, [list(sinks), sorted(released), at, at, limit])
    return [
        Row(str(alert_id), str(sink), int(attempts), generation, str(ticker), str(detector),
            float(score), _json(metrics), _json(explanation), created_at.replace(tzinfo=UTC))
        for (alert_id, sink, attempts, generation, ticker, detector, score, metrics, explanation,
             created_at) in rows
    ]  # fmt: skip


def begin_attempt(
    store: Store, row: Row, now: datetime, retry_at: datetime, generation: str
) -> None:
    """Count the attempt before sending it; ``retry_at`` holds unless it is acknowledged."""
    store.rows(BEGIN_ATTEMPT, [_naive(now), _naive(retry_at), generation, row.alert_id, row.sink])


def acknowledged(store: Store, row: Row, now: datetime, receipt: str) -> None:
    store.rows(ACKNOWLEDGED, [_naive(now), receipt, row.alert_id, row.sink])


def failed(store: Store, row: Row, now: datetime, reason: str, max_attempts: int) -> bool:
    """Record a failed attempt; True when it was the last one (the row is dead)."""
    result = store.rows(FAILED, [reason, _naive(now), max_attempts, row.alert_id, row.sink])
    return bool(result) and result[0][0] == DEAD


def counts(store: Store, sinks: Sequence[str]) -> dict[str, SinkCounts]:
    """Per sink: newest acknowledgement, rows pending, delivered and dead, newest failure."""
    out = {
        str(sink): SinkCounts(str(sink), _aware(success), int(backlog), int(delivered),
                              int(dead), error, _aware(error_at))
        for sink, success, backlog, delivered, dead, error, error_at
        in store.rows(STATUS, [list(sinks)])
    }  # fmt: skip
    return {s: out.get(s, SinkCounts(s, None, 0, 0, 0, None, None)) for s in sinks}


def awaiting(store: Store, sinks: Sequence[str]) -> list[str]:
    """Ids of alerts some configured sink has not acknowledged or given up on."""
    return [str(r[0]) for r in store.rows(AWAITING, [list(sinks)])] if sinks else []


def _json(raw: Any) -> dict[str, Any]:
    """A JSON column (DuckDB keeps NaN literals in them) as a dict of strict JSON values."""
    value = orjson.loads(strict_json(raw.encode() if isinstance(raw, str) else bytes(raw)))
    return value if isinstance(value, dict) else {}


def _naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None else None
