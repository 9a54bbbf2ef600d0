"""Failures (non-2xx, timeout, dropped connection) are retried with exponential backoff on the
writer's clock, up to OCD_ALERT_DELIVERY_MAX_ATTEMPTS; then the row is dead."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from deliverykit import (
    SECRET,
    T0,
    add_alerts,
    candidates,
    deliver_now,
    naive,
    outbox,
    publish,
    refusing_port,
    settings_for,
    webhook_settings,
)

from chalicelib.write.delivery.deliverer import backoff
from chalicelib.write.delivery.message import webhook_id
from chalicelib.write.store import Store


def test_backoff_starts_at_30_seconds_doubles_and_is_capped_at_an_hour() -> None:
    waits = [backoff(n).total_seconds() for n in range(1, 12)]
    assert waits == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600, 3600]
    assert backoff(10_000) == timedelta(hours=1)


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [("500", "HTTP 500"), ("503", "HTTP 503"), ("429", "HTTP 429"),
     ("hang", "timed out after 0.5 s"), ("drop", "connection failed: RemoteDisconnected")],
)  # fmt: skip
def test_a_failure_is_retried_once_its_backoff_has_passed_on_the_writer_clock(
    tmp_path: Path, make_receiver, behaviour: str, reason: str
) -> None:
    receiver = make_receiver({1: behaviour})
    settings = webhook_settings(tmp_path, receiver)
    with Store(settings.database) as store:
        (alert,) = add_alerts(store, settings, candidates(1))
        publish(store, settings)
        first = deliver_now(store, settings, T0)
        assert (first.attempted, first.failed, first.delivered) == (1, 1, 0)
        row = outbox(store)[(alert, "webhook")]
        assert (row["status"], row["attempts"], row["last_error"]) == ("pending", 1, reason)
        assert row["last_attempt_at"] == row["last_error_at"] == naive(T0)
        assert row["next_attempt_at"] == naive(T0 + timedelta(seconds=30))

        assert deliver_now(store, settings, T0 + timedelta(seconds=29)).attempted == 0
        again = deliver_now(store, settings, T0 + timedelta(seconds=30))
        assert (again.attempted, again.delivered) == (1, 1)
        row = outbox(store)[(alert, "webhook")]
    assert (row["status"], row["attempts"], row["last_error"]) == ("delivered", 2, reason)
    assert [r.behaviour for r in receiver.requests] == [behaviour, "ok"]
    assert receiver.acks() == {webhook_id(alert): 1}


def test_after_the_last_attempt_the_row_is_dead_and_never_sent_again(
    tmp_path: Path, make_receiver
) -> None:
    receiver = make_receiver(default="500")
    settings = webhook_settings(tmp_path, receiver, alert_delivery_max_attempts="4")
    with Store(settings.database) as store:
        (alert,) = add_alerts(store, settings, candidates(1))
        publish(store, settings)
        now, retries = T0, []
        for attempt in range(1, 5):
            result = deliver_now(store, settings, now)
            assert result.attempted == 1 and result.dead == (attempt == 4)
            row = outbox(store)[(alert, "webhook")]
            retries.append(row["next_attempt_at"] - row["last_attempt_at"])
            now += backoff(attempt)
        assert retries[:3] == [timedelta(seconds=s) for s in (30, 60, 120)]
        row = outbox(store)[(alert, "webhook")]
        assert (row["status"], row["attempts"], row["last_error"]) == ("dead", 4, "HTTP 500")
        assert deliver_now(store, settings, now + timedelta(days=1)).attempted == 0
    assert len(receiver.requests) == 4


def test_an_unhealthy_endpoint_gets_one_attempt_per_run_and_the_rest_wait(
    tmp_path: Path, make_receiver
) -> None:
    receiver = make_receiver({1: "503"})
    settings = webhook_settings(tmp_path, receiver)
    with Store(settings.database) as store:
        alerts = add_alerts(store, settings, candidates(3))
        publish(store, settings)
        result = deliver_now(store, settings, T0)
        assert (result.attempted, result.failed, result.stopped) == (1, 1, ["webhook"])
        rows = outbox(store)
        assert [rows[(a, "webhook")]["attempts"] for a in alerts] == [1, 0, 0]
        # the next run (its backoff passed) delivers all three
        assert deliver_now(store, settings, T0 + timedelta(minutes=5)).delivered == 3
    assert receiver.acks() == {webhook_id(a): 1 for a in alerts}


def test_a_client_error_for_one_alert_does_not_hold_back_the_others(
    tmp_path: Path, make_receiver
) -> None:
    receiver = make_receiver({1: "400"})
    settings = webhook_settings(tmp_path, receiver)
    with Store(settings.database) as store:
        alerts = add_alerts(store, settings, candidates(3))
        publish(store, settings)
        result = deliver_now(store, settings, T0)
        assert (result.attempted, result.failed, result.delivered) == (3, 1, 2)
        assert outbox(store)[(alerts[0], "webhook")]["last_error"] == "HTTP 400"
    assert receiver.acks() == {webhook_id(a): 1 for a in alerts[1:]}


def test_a_redirect_is_not_followed_and_counts_as_a_failure(tmp_path: Path, make_receiver) -> None:
    receiver = make_receiver({1: "307"})
    settings = webhook_settings(tmp_path, receiver)
    with Store(settings.database) as store:
        (alert,) = add_alerts(store, settings, candidates(1))
        publish(store, settings)
        assert deliver_now(store, settings, T0).failed == 1
        assert outbox(store)[(alert, "webhook")]["last_error"] == "HTTP 307"
    assert len(receiver.requests) == 1


def test_an_endpoint_that_refuses_connections_is_a_connection_failure(tmp_path: Path) -> None:
    with refusing_port() as port:
        settings = settings_for(tmp_path, alert_webhook_url=f"http://127.0.0.1:{port}/",
                                alert_webhook_secret=SECRET)  # fmt: skip
        with Store(settings.database) as store:
            (alert,) = add_alerts(store, settings, candidates(1))
            publish(store, settings)
            assert deliver_now(store, settings, T0).failed == 1
            row = outbox(store)[(alert, "webhook")]
    assert row["last_error"] == "connection failed: ConnectionRefusedError"
