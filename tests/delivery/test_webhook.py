"""The webhook sink against a real receiver: signed the Standard Webhooks way, sent once a
generation containing the alert is published, and never again once acknowledged."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from deliverykit import (
    SECRET,
    T0,
    Receiver,
    add_alerts,
    candidates,
    deliver_now,
    outbox,
    publish,
    webhook_settings,
)
from standardwebhooks import Webhook

from chalicelib.config import Settings
from chalicelib.write.delivery.message import webhook_id
from chalicelib.write.store import Store


def test_a_published_alert_is_delivered_signed_with_the_documented_body(
    tmp_path: Path, receiver: Receiver
) -> None:
    settings = webhook_settings(tmp_path, receiver, public_url="https://ocd.example.com/")
    with Store(settings.database) as store:
        (alert,) = add_alerts(store, settings, candidates(1))
        manifest = publish(store, settings)
        result = deliver_now(store, settings, T0)

        assert (result.attempted, result.delivered, result.failed) == (1, 1, 0)
        assert result.generation == manifest.generation
        (request,) = receiver.requests
        assert request.verified is True  # the library's own verification
        assert request.path == "/hooks/alerts?source=ocd"
        assert request.headers["webhook-id"] == webhook_id(alert) == f"msg_{alert}"
        assert request.headers["webhook-signature"].startswith("v1,")
        assert request.headers["content-type"] == "application/json"
        event = Webhook(SECRET).verify(request.body, request.headers)
        assert event["type"] == "alert.created"
        assert event["timestamp"] == "2026-11-27T15:00:00Z"
        data = event["data"]
        assert list(data) == ["id", "ticker", "detector_name", "score", "explanation",
                              "metrics", "created_at", "generation", "url"]  # fmt: skip
        assert data["id"] == alert and data["ticker"] == "SPY"
        assert data["detector_name"] == "rich_premium" and data["score"] == 70.0
        assert data["explanation"]["summary"] == "SPY rich_premium & <friends>"
        assert data["metrics"] == {"atm_iv": 0.21, "iv_rank": None}
        assert data["created_at"] == "2026-11-27T15:00:00Z"
        assert data["generation"] == manifest.generation
        assert data["url"] == f"https://ocd.example.com/#/alerts/{alert}"
        row = outbox(store)[(alert, "webhook")]
        assert row["status"] == "delivered" and row["attempts"] == 1
        assert row["receipt"] == "HTTP 200" and row["generation"] == manifest.generation


def test_without_a_public_url_the_url_is_null(settings: Settings, store: Store, receiver) -> None:
    add_alerts(store, settings, candidates(1))
    publish(store, settings)
    deliver_now(store, settings, T0)
    assert receiver.requests[0].json["data"]["url"] is None


def test_nothing_is_sent_before_a_generation_containing_the_alert_is_published(
    settings: Settings, store: Store, receiver: Receiver
) -> None:
    first = add_alerts(store, settings, candidates(1))
    assert deliver_now(store, settings, T0).attempted == 0  # nothing published at all
    publish(store, settings)
    later = add_alerts(store, settings, candidates(2)[1:])  # after that export
    deliver_now(store, settings, T0)
    assert set(receiver.acks()) == {webhook_id(first[0])}
    assert outbox(store)[(later[0], "webhook")]["attempts"] == 0

    publish(store, settings)
    deliver_now(store, settings, T0 + timedelta(minutes=5))
    assert receiver.acks() == {webhook_id(first[0]): 1, webhook_id(later[0]): 1}


def test_an_acknowledged_alert_is_never_sent_again_across_runs_and_restarts(
    settings: Settings, receiver: Receiver
) -> None:
    with Store(settings.database) as store:
        alerts = add_alerts(store, settings, candidates(5))
        publish(store, settings)
        assert deliver_now(store, settings, T0).delivered == 5
        for minutes in (1, 5, 60):
            publish(store, settings)
            assert deliver_now(store, settings, T0 + timedelta(minutes=minutes)).attempted == 0
    with Store(settings.database) as reopened:  # a new process, as far as DuckDB knows
        publish(reopened, settings)
        assert deliver_now(reopened, settings, T0 + timedelta(days=1)).attempted == 0
        # re-running the analysis on the same snapshots adds no alert and no delivery
        add_alerts(reopened, settings, candidates(5))
        assert deliver_now(reopened, settings, T0 + timedelta(days=2)).attempted == 0
    assert receiver.acks() == {webhook_id(a): 1 for a in alerts}
    assert len(receiver.requests) == 5 and all(r.verified for r in receiver.requests)


def test_the_body_of_a_retry_is_the_body_of_the_first_attempt(
    tmp_path: Path, make_receiver
) -> None:
    receiver = make_receiver({1: "503"})
    settings = webhook_settings(tmp_path, receiver)
    with Store(settings.database) as store:
        add_alerts(store, settings, candidates(1))
        publish(store, settings)
        deliver_now(store, settings, T0)
        publish(store, settings)  # a newer generation: the event still names the first
        deliver_now(store, settings, T0 + timedelta(seconds=30))
    first, retry = receiver.requests
    assert (first.behaviour, retry.behaviour) == ("503", "ok")
    assert first.body == retry.body and first.webhook_id == retry.webhook_id
    assert first.verified and retry.verified
