"""Bounded: a request ends within its timeout however the endpoint behaves, a run starts no
attempt its budget could not cover, and one slow sink does not starve the others."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from deliverykit import (
    T0,
    add_alerts,
    candidates,
    deliver_now,
    outbox,
    publish,
    webhook_settings,
)

from chalicelib.write.store import Store


def test_an_endpoint_that_trickles_its_answer_is_cut_off_at_the_timeout(
    tmp_path: Path, make_receiver
) -> None:
    # A byte every ~0.1 s: no single read waits 0.5 s, so only the whole-request limit stops
    # it; without that limit the attempt would end, acknowledged, 6 s later.
    receiver = make_receiver({1: "trickle"})
    settings = webhook_settings(tmp_path, receiver)
    with Store(settings.database) as store:
        (alert,) = add_alerts(store, settings, candidates(1))
        publish(store, settings)
        result = deliver_now(store, settings, T0)
        row = outbox(store)[(alert, "webhook")]
    assert (result.attempted, result.failed, result.delivered) == (1, 1, 0)
    assert (row["status"], row["last_error"]) == ("pending", "timed out after 0.5 s")


def test_a_run_starts_no_attempt_its_budget_cannot_cover(tmp_path: Path, make_receiver) -> None:
    hanging, slack = make_receiver(default="hang"), make_receiver(default="hang", secret=None)
    settings = webhook_settings(tmp_path, hanging, alert_slack_webhook_url=slack.url,
                                alert_delivery_timeout_seconds="0.4",
                                alert_delivery_budget_seconds="0.6")  # fmt: skip
    with Store(settings.database) as store:
        alerts = add_alerts(store, settings, candidates(4))
        publish(store, settings)
        result = deliver_now(store, settings, T0)
        rows = outbox(store)
        # The first attempt used 0.4 s of 0.6: another could not end in time, so none began.
        assert (result.attempted, result.failed, result.budget_exhausted) == (1, 1, True)
        assert sum(row["attempts"] for row in rows.values()) == 1
        assert len(hanging.requests) + len(slack.requests) == 1
        untouched = [row for row in rows.values() if row["attempts"] == 0]
        assert len(untouched) == 2 * len(alerts) - 1
        assert all(row["status"] == "pending" for row in untouched)


def test_a_hanging_sink_does_not_starve_the_others(tmp_path: Path, make_receiver) -> None:
    hanging, slack = make_receiver(default="hang"), make_receiver(secret=None)
    settings = webhook_settings(tmp_path, hanging, alert_slack_webhook_url=slack.url)
    with Store(settings.database) as store:
        alerts = add_alerts(store, settings, candidates(3))
        publish(store, settings)
        result = deliver_now(store, settings, T0)
        rows = outbox(store)
    assert result.stopped == ["webhook"] and not result.budget_exhausted
    assert (result.attempted, result.delivered, result.failed) == (4, 3, 1)
    assert [rows[(a, "slack")]["status"] for a in alerts] == ["delivered"] * 3
    assert [rows[(a, "webhook")]["attempts"] for a in alerts] == [1, 0, 0]
    assert len(hanging.requests) == 1 and len(slack.requests) == 3


def test_what_the_budget_left_waits_for_the_next_run(tmp_path: Path, make_receiver) -> None:
    receiver = make_receiver({1: "hang"})
    settings = webhook_settings(tmp_path, receiver, alert_delivery_budget_seconds="0.6")
    with Store(settings.database) as store:
        alerts = add_alerts(store, settings, candidates(3))
        publish(store, settings)
        assert deliver_now(store, settings, T0).delivered == 0
        assert deliver_now(store, settings, T0 + timedelta(minutes=5)).delivered == 3
    assert receiver.acks() == {f"msg_{a}": 1 for a in alerts}
