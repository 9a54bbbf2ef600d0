"""One run's delivery attempts: released alerts only, bounded in time, backed off, recorded.

For each due (alert, sink) row, oldest alert first and the sinks taken in turn (one slow sink
does not starve the others):

1. the attempt is recorded (attempts + 1, the retry time of a failure) and committed;
2. the sink sends it, within the per-request timeout;
3. an acknowledgement (a 2xx, SNS's MessageId) is recorded at once: that row is never sent
   again. A failure records its reason; after ``OCD_ALERT_DELIVERY_MAX_ATTEMPTS`` the row is dead.

A writer killed between 2 and 3 sends that alert again on a later run (at least once): the same
``webhook-id`` twice, which receivers de-duplicate. A kill anywhere else sends nothing twice.

Retries back off on the writer's clock (``now``: the pinned as-of in replays and tests, so they
are deterministic): 30 s after the first failure, doubling, at most an hour. A run stops starting
attempts when what is left of its budget (``OCD_ALERT_DELIVERY_BUDGET_SECONDS``) could not cover
one more timeout; a sink that timed out, refused the connection, or answered 5xx or 429 gets
nothing more this run. Undelivered rows wait for the next run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from chalicelib.config import Settings
from chalicelib.deliveryformat import alert_url
from chalicelib.logs import log_event
from chalicelib.storage.base import Storage
from chalicelib.write.delivery import outbox
from chalicelib.write.delivery.message import AlertMessage
from chalicelib.write.delivery.release import published_release
from chalicelib.write.delivery.sinks import Sink, configured_sinks
from chalicelib.write.delivery.transport import DeliveryFailed
from chalicelib.write.store import Store

BACKOFF_FIRST = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=1)
MAX_ROWS_PER_RUN = 1000  # due rows read per run; the rest are read by the next


def backoff(attempts: int) -> timedelta:
    """How long after its ``attempts``-th failed attempt a row is retried."""
    return min(BACKOFF_FIRST * 2 ** min(attempts - 1, 20), BACKOFF_CAP)


@dataclass
class DeliveryResult:
    """What one run did (the run's JSON summary)."""

    generation: str | None = None  # the published generation that released the alerts
    released: int = 0  # alerts it names as awaiting delivery
    attempted: int = 0
    delivered: int = 0
    failed: int = 0
    dead: int = 0  # rows given up on in this run
    budget_exhausted: bool = False
    stopped: list[str] = field(default_factory=list)  # sinks sent nothing more this run
    duration_ms: float = 0.0

    def summary(self) -> dict[str, Any]:
        return dict(self.__dict__)


def deliver(
    store: Store,
    storage: Storage,
    settings: Settings,
    now: datetime,
    *,
    sinks: Sequence[Sink] | None = None,
    step: Callable[[str], None] = lambda name: None,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> DeliveryResult:
    """Deliver what the published generation (in ``storage``) releases, as of ``now``.

    ``step`` is called after each durable step (``delivery.attempt``, ``delivery.sent``,
    ``delivery.recorded``): the crash tests stop the writer there."""
    started = monotonic()
    result = DeliveryResult()
    active = list(configured_sinks(settings) if sinks is None else sinks)
    if not active:
        return result
    release = published_release(storage)
    if release is None or not release.awaiting:
        result.generation = release.generation if release else None
        return result
    result.generation, result.released = release.generation, len(release.awaiting)
    by_name = {sink.name: sink for sink in active}
    rows = outbox.due(store, list(by_name), sorted(release.awaiting), now, MAX_ROWS_PER_RUN)
    timeout = settings.alert_delivery_timeout_seconds
    deadline = started + settings.alert_delivery_budget_seconds
    last_sent: dict[str, float] = {}
    for row in _in_turn(rows):
        sink = by_name[row.sink]
        if sink.name in result.stopped:
            continue
        if row.attempts >= settings.alert_delivery_max_attempts:  # its last attempt never ended
            _give_up(store, row, now, settings.alert_delivery_max_attempts, result)
            continue
        wait = max(0.0, sink.min_interval - (monotonic() - last_sent.get(sink.name, -1e9)))
        if monotonic() + wait + timeout > deadline:
            result.budget_exhausted = True
            break
        if wait:
            sleep(wait)
        last_sent[sink.name] = monotonic()
        _attempt(store, sink, row, release.generation, settings, now, timeout, step, result)
    result.duration_ms = round((monotonic() - started) * 1000, 3)
    log_event("delivery", **result.summary())
    return result


def _attempt(
    store: Store,
    sink: Sink,
    row: outbox.Row,
    released_by: str,
    settings: Settings,
    now: datetime,
    timeout: float,
    step: Callable[[str], None],
    result: DeliveryResult,
) -> None:
    attempt = row.attempts + 1
    generation = row.generation or released_by
    outbox.begin_attempt(store, row, now, now + backoff(attempt), generation)
    step("delivery.attempt")
    result.attempted += 1
    try:
        receipt = sink.send(_message(row, generation, settings), timeout)
    except DeliveryFailed as exc:
        _failed(store, row, now, attempt, exc.reason, settings, result)
        if exc.endpoint_down:
            result.stopped.append(sink.name)
        return
    except Exception as exc:  # a sink's own bug must not stop the writer either
        _failed(store, row, now, attempt, f"unexpected {type(exc).__name__}", settings, result)
        result.stopped.append(sink.name)
        return
    step("delivery.sent")
    outbox.acknowledged(store, row, now, receipt)
    step("delivery.recorded")
    result.delivered += 1
    log_event("delivered", sink=sink.name, alert_id=row.alert_id, attempt=attempt,
              receipt=receipt)  # fmt: skip


def _failed(
    store: Store,
    row: outbox.Row,
    now: datetime,
    attempt: int,
    reason: str,
    settings: Settings,
    result: DeliveryResult,
) -> None:
    dead = outbox.failed(store, row, now, reason, settings.alert_delivery_max_attempts)
    result.failed += 1
    result.dead += dead
    log_event("delivery_failed", level=logging.ERROR if dead else logging.WARNING,
              sink=row.sink, alert_id=row.alert_id, attempt=attempt, error=reason, dead=dead,
              retry_at=None if dead else (now + backoff(attempt)).isoformat())  # fmt: skip


def _give_up(
    store: Store, row: outbox.Row, now: datetime, max_attempts: int, result: DeliveryResult
) -> None:
    reason = f"attempt {row.attempts} did not finish (the writer stopped)"
    result.dead += outbox.failed(store, row, now, reason, max_attempts)
    log_event("delivery_failed", level=logging.ERROR, sink=row.sink, alert_id=row.alert_id,
              attempt=row.attempts, error=reason, dead=True)  # fmt: skip


def _message(row: outbox.Row, generation: str, settings: Settings) -> AlertMessage:
    return AlertMessage(
        id=row.alert_id,
        ticker=row.ticker,
        detector_name=row.detector_name,
        score=row.score,
        explanation=row.explanation,
        metrics=row.metrics,
        created_at=row.created_at,
        generation=generation,
        url=alert_url(settings.public_url, row.alert_id),
    )


def _in_turn(rows: list[outbox.Row]) -> Iterator[outbox.Row]:
    """Rows oldest first within each sink, the sinks taking turns."""
    queues: dict[str, list[outbox.Row]] = {}
    for row in rows:
        queues.setdefault(row.sink, []).append(row)
    position = 0
    while any(position < len(q) for q in queues.values()):
        for queue in queues.values():
            if position < len(queue):
                yield queue[position]
        position += 1
