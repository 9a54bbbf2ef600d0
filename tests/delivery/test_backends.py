"""Delivery through the scheduled handlers, as they run: locally (the database is a local file,
so the export delivers right after publishing) and on S3 with the database persisted in the
bucket (Lambda: only the collect persists, so the collect delivers), with fresh containers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from deliverykit import SECRET, Receiver, naive, outbox
from moto import mock_aws

from chalicelib.config import load_settings
from chalicelib.storage.base import Storage
from chalicelib.storage.factory import make_state_storage
from chalicelib.write import schedules
from chalicelib.write.dbstate import DatabaseState, sync_path
from chalicelib.write.scheduler import run_collect
from chalicelib.write.store import Store

AS_OF = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)  # synthetic market: alerts on JPM and AAPL
BUCKET = "ocd-delivery-test"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receiver: Receiver) -> dict[str, str]:
    for name in [n for n in os.environ if n.startswith("OCD_")]:
        monkeypatch.delenv(name)
    values = {"OCD_DATA_DIR": str(tmp_path / "data"), "OCD_WATCHLIST": "SPY,AAPL,JPM",
              "OCD_BACKFILL_DAYS": "20", "OCD_LOG_LEVEL": "WARNING",
              "OCD_ALERT_WEBHOOK_URL": receiver.url, "OCD_ALERT_WEBHOOK_SECRET": SECRET,
              "OCD_ALERT_DELIVERY_TIMEOUT_SECONDS": "0.5"}  # fmt: skip
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def run(name: str, at: datetime) -> dict:
    handler = schedules.collect if name == "collect" else schedules.export
    return handler({"as_of": at.isoformat()})


def alert_ids(db: Path) -> list[str]:
    with Store(db) as store:
        return [str(r[0]) for r in store.rows("SELECT id FROM alerts ORDER BY id")]


def test_locally_the_export_delivers_what_it_just_published(env, receiver: Receiver) -> None:
    collect = run("collect", AS_OF)
    assert collect["alerts_generated"] >= 1
    assert collect["delivery"]["attempted"] == 0  # nothing published yet
    assert receiver.requests == []
    export = run("export", AS_OF)
    assert export["ok"] and export["delivery"]["generation"] == export["generation"]
    alerts = alert_ids(load_settings().database)
    assert export["delivery"]["delivered"] == len(alerts)
    for minutes in (5, 10):  # later cycles send nothing again
        at = AS_OF + timedelta(minutes=minutes)
        assert run("collect", at)["delivery"]["attempted"] == 0
        assert run("export", at)["delivery"]["attempted"] == 0
    assert receiver.acks() == {f"msg_{a}": 1 for a in alerts}
    assert all(r.verified for r in receiver.requests)


def test_a_hanging_receiver_costs_a_cycle_at_most_its_budget(
    env, make_receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    hanging, slack = make_receiver(default="hang"), make_receiver(default="hang", secret=None)
    monkeypatch.setenv("OCD_ALERT_WEBHOOK_URL", hanging.url)
    monkeypatch.setenv("OCD_ALERT_SLACK_WEBHOOK_URL", slack.url)
    monkeypatch.setenv("OCD_ALERT_DELIVERY_BUDGET_SECONDS", "0.7")
    run("collect", AS_OF)
    export = run("export", AS_OF)
    assert export["ok"]  # the export itself is unaffected
    assert export["delivery"]["attempted"] == 1 and export["delivery"]["budget_exhausted"]
    with Store(load_settings().database) as store:
        rows = outbox(store)
    assert sum(r["attempts"] for r in rows.values()) == 1
    assert len(hanging.requests) + len(slack.requests) == 1


@pytest.fixture
def s3(env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """moto's S3 with the database persisted in the bucket; yields the local database path."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "OCD_STORAGE": "s3",
                        "OCD_BUCKET": BUCKET}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        settings = load_settings()
        assert settings.persist_db
        yield settings.database


def new_container(db: Path) -> None:
    """Lambda's /tmp of a fresh container: no local database, no sidecar."""
    for path in (db, db.with_name(db.name + ".wal"), sync_path(db)):
        path.unlink(missing_ok=True)


def bucket_outbox(db: Path) -> dict:
    new_container(db)
    DatabaseState(_state_storage(), db).restore()
    with Store(db) as store:
        return outbox(store)


def _state_storage() -> Storage:
    return make_state_storage(load_settings())


def test_on_s3_the_collect_delivers_and_its_acknowledgements_persist(
    s3: Path, receiver: Receiver
) -> None:
    db = s3
    assert run("collect", AS_OF)["delivery"]["attempted"] == 0
    new_container(db)
    export = run("export", AS_OF)
    assert export["ok"] and export["delivery"] is None  # never persists: it does not deliver
    assert receiver.requests == []

    new_container(db)
    later = AS_OF + timedelta(minutes=5)
    collect = run("collect", later)
    assert collect["delivery"]["generation"] == export["generation"]
    delivered = collect["delivery"]["delivered"]
    rows = bucket_outbox(db)  # what the bucket's copy says
    assert delivered == len(rows) >= 1
    assert all(r["status"] == "delivered" and r["delivered_at"] == naive(later)
               for r in rows.values())  # fmt: skip

    for minutes in (10, 15):  # fresh containers, later cycles: nothing is sent again
        new_container(db)
        run("export", AS_OF + timedelta(minutes=minutes))
        new_container(db)
        assert run("collect", AS_OF + timedelta(minutes=minutes))["delivery"]["attempted"] == 0
    assert receiver.acks() == {f"msg_{alert}": 1 for alert, _ in rows}


def test_on_s3_a_collect_that_dies_before_persisting_sends_again_once(
    s3: Path, receiver: Receiver
) -> None:
    db = s3
    run("collect", AS_OF)
    new_container(db)
    run("export", AS_OF)
    # A collect that delivered, then died before its persist: what the handler does, minus
    # the persist.
    new_container(db)
    DatabaseState(_state_storage(), db).restore()
    died = run_collect(load_settings(), AS_OF + timedelta(minutes=5))
    assert died["delivery"]["delivered"] >= 1
    first = receiver.acks()

    new_container(db)  # the next run starts from the bucket's copy, which never heard of it
    again = run("collect", AS_OF + timedelta(minutes=10))
    assert again["delivery"]["delivered"] == died["delivery"]["delivered"]
    assert receiver.acks() == {webhook: 2 for webhook in first}  # same ids: de-duplicable
    new_container(db)
    assert run("collect", AS_OF + timedelta(minutes=15))["delivery"]["attempted"] == 0
