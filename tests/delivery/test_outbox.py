"""The outbox: one row per (alert, sink), created in the alert's own transaction, only for new
alerts scoring at least OCD_ALERT_DELIVERY_MIN_SCORE, and listed by each export until done."""

from __future__ import annotations

from pathlib import Path

import orjson
from deliverykit import (
    T0,
    Receiver,
    add_alerts,
    candidates,
    outbox,
    publish,
    settings_for,
    webhook_settings,
)

from chalicelib import exportformat as fmt
from chalicelib.config import Settings
from chalicelib.storage.factory import make_storage
from chalicelib.write import analysis
from chalicelib.write.providers.synthetic import SyntheticMarket
from chalicelib.write.scheduler import Scheduler
from chalicelib.write.store import Store

TOPIC = "arn:aws:sns:us-east-1:123456789012:ocd-alerts"


def test_each_new_alert_gets_one_pending_row_per_configured_sink(
    tmp_path: Path, receiver: Receiver
) -> None:
    settings = webhook_settings(tmp_path, receiver, alert_sns_topic_arn=TOPIC)
    with Store(settings.database) as store:
        alerts = add_alerts(store, settings, candidates(2))
        rows = outbox(store)
    assert set(rows) == {(a, s) for a in alerts for s in ("webhook", "sns")}
    assert all((r["status"], r["attempts"], r["generation"]) == ("pending", 0, None)
               for r in rows.values())  # fmt: skip


def test_the_delivery_threshold_defaults_to_the_alert_threshold(
    tmp_path: Path, receiver: Receiver
) -> None:
    default = webhook_settings(tmp_path / "a", receiver, min_alert_score="60")
    own = webhook_settings(tmp_path / "b", receiver, alert_delivery_min_score="80")
    assert (default.delivery_min_score, own.delivery_min_score) == (60.0, 80.0)
    for settings, delivered in ((default, {70.0, 90.0}), (own, {90.0})):
        with Store(settings.database) as store:
            for i, score in enumerate((50.0, 70.0, 90.0)):
                add_alerts(store, settings, candidates(i + 1, score=score)[i:])
            scores = {a: s for a, s in store.rows("SELECT id, score FROM alerts")}
            assert {scores[a] for a, _ in outbox(store)} == delivered
            assert store.count("alerts") == 3  # every alert is kept; only delivery filters


def test_no_sink_configured_means_no_rows(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    with Store(settings.database) as store:
        add_alerts(store, settings, candidates(3))
        assert store.count("alerts") == 3 and store.count("delivery_outbox") == 0


def test_writing_the_same_alerts_again_adds_no_row_and_resets_none(
    settings: Settings, store: Store
) -> None:
    alerts = add_alerts(store, settings, candidates(2))
    store.rows("UPDATE delivery_outbox SET status = 'delivered' WHERE alert_id = ?", [alerts[0]])
    before = outbox(store)
    add_alerts(store, settings, candidates(2))  # the analysis re-run on the same snapshots
    assert outbox(store) == before


def test_an_alert_insert_that_fails_leaves_no_outbox_row(settings: Settings, store: Store) -> None:
    # ``alerts`` as a view: the outbox insert succeeds, then the alerts insert fails, in the
    # same transaction, which must then leave nothing behind.
    store.rows("ALTER TABLE alerts RENAME TO alerts_table")
    store.rows("CREATE VIEW alerts AS SELECT * FROM alerts_table")
    errors: list[str] = []
    alerts = analysis._alerts(candidates(2), "scan_x", errors)
    written = analysis._write_alerts(store, alerts, {}, errors, settings)
    assert written == 0 and errors and errors[0].startswith("write alerts:")
    assert store.count("delivery_outbox") == 0 and store.count("alerts_table") == 0


def test_the_collect_writes_alerts_and_their_rows_together(tmp_path: Path, receiver) -> None:
    settings = webhook_settings(tmp_path, receiver, watchlist="SPY,AAPL,JPM", backfill_days="20")
    with Store(settings.database) as store:
        scheduler = Scheduler(settings, store, SyntheticMarket(seed=7),
                              published=make_storage(settings))  # fmt: skip
        summary = scheduler.collect(T0.replace(hour=18))
        alerts = [r[0] for r in store.rows("SELECT id FROM alerts WHERE score >= ?",
                                           [settings.delivery_min_score])]  # fmt: skip
        rows = outbox(store)
    assert summary["alerts_generated"] >= 1 and alerts
    assert set(rows) == {(a, "webhook") for a in alerts}
    # nothing is published yet, so nothing was sent
    assert summary["delivery"]["generation"] is None and summary["delivery"]["attempted"] == 0
    assert receiver.requests == []


def test_each_export_lists_the_alerts_awaiting_delivery_and_the_sink_counts(
    settings: Settings, store: Store
) -> None:
    alerts = add_alerts(store, settings, candidates(3))
    at = T0.replace(tzinfo=None)
    store.rows("UPDATE delivery_outbox SET status = 'delivered', delivered_at = ? "
               "WHERE alert_id = ?", [at, alerts[0]])  # fmt: skip
    store.rows("UPDATE delivery_outbox SET status = 'dead', last_error = 'HTTP 500', "
               "last_error_at = ? WHERE alert_id = ?", [at, alerts[1]])  # fmt: skip
    manifest = publish(store, settings)
    data = make_storage(settings).get(fmt.DELIVERY_KEY).data
    assert manifest.documents[fmt.DELIVERY_KEY].sha256 == fmt.sha256(data)
    document = orjson.loads(data)
    assert (document["kind"], document["generation"], document["count"]) == (
        "delivery", manifest.generation, 1)  # fmt: skip
    assert document["awaiting"] == [alerts[2]]
    assert document["sinks"] == [{
        "sink": "webhook", "last_success": "2026-11-27T15:00:00Z", "backlog": 1,
        "delivered": 1, "dead": 1, "last_error": "HTTP 500",
        "last_error_at": "2026-11-27T15:00:00Z"}]  # fmt: skip
