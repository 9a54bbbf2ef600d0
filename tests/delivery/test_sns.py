"""The SNS sink through moto: the webhook's JSON as the message, attributes subscribers filter
on, an SQS subscription receiving it, and SNS's MessageId as the acknowledgement."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest
from deliverykit import T0, add_alerts, candidates, deliver_now, outbox, publish, settings_for
from moto import mock_aws

from chalicelib.write.store import Store

REGION = "eu-west-1"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    values = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
              "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": str(tmp_path / "aws-config"),
              "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "aws-creds")}  # fmt: skip
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SNS", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        yield


def subscribed_queue(topic: str, name: str, filter_policy: dict | None = None) -> str:
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    attributes = {"FilterPolicy": orjson.dumps(filter_policy).decode()} if filter_policy else {}
    boto3.client("sns", region_name=REGION).subscribe(
        TopicArn=topic, Protocol="sqs", Endpoint=arn["Attributes"]["QueueArn"],
        Attributes=attributes)  # fmt: skip
    return url


def received(url: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs", region_name=REGION)
    out: list[dict[str, Any]] = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        out += [orjson.loads(m["Body"]) for m in batch]
        for m in batch:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return out


def test_each_alert_is_published_once_with_filterable_attributes(aws, tmp_path: Path) -> None:
    topic = boto3.client("sns", region_name=REGION).create_topic(Name="ocd-alerts")["TopicArn"]
    everything = subscribed_queue(topic, "everything")
    spy_only = subscribed_queue(topic, "spy-only", {"ticker": ["SPY"]})
    settings = settings_for(tmp_path, alert_sns_topic_arn=topic)
    with Store(settings.database) as store:
        alerts = add_alerts(store, settings, candidates(3))
        manifest = publish(store, settings)
        assert deliver_now(store, settings, T0).delivered == 3
        rows = outbox(store)
        publish(store, settings)
        assert deliver_now(store, settings, T0 + timedelta(hours=1)).attempted == 0

    notes = received(everything)
    assert len(notes) == 3
    by_id = {orjson.loads(n["Message"])["data"]["id"]: n for n in notes}
    assert set(by_id) == set(alerts)
    for alert in alerts:
        note = by_id[alert]
        assert rows[(alert, "sns")]["receipt"] == note["MessageId"]  # the acknowledgement
        event = orjson.loads(note["Message"])
        assert event["type"] == "alert.created" and event["data"]["generation"] == (
            manifest.generation)  # fmt: skip
        attributes = note["MessageAttributes"]
        assert attributes["ticker"] == {"Type": "String", "Value": event["data"]["ticker"]}
        assert attributes["detector"] == {"Type": "String", "Value": "rich_premium"}
        assert attributes["score"] == {"Type": "Number", "Value": "70"}
        assert note["Subject"] == f"{event['data']['ticker']} rich_premium, score 70.0"
    filtered = received(spy_only)
    assert [orjson.loads(n["Message"])["data"]["ticker"] for n in filtered] == ["SPY"]


def test_a_topic_that_does_not_exist_is_a_failure_retried_later(aws, tmp_path: Path) -> None:
    topic = f"arn:aws:sns:{REGION}:123456789012:not-created-yet"
    settings = settings_for(tmp_path, alert_sns_topic_arn=topic)
    with Store(settings.database) as store:
        alerts = add_alerts(store, settings, candidates(2))
        publish(store, settings)
        result = deliver_now(store, settings, T0)
        assert (result.attempted, result.failed, result.stopped) == (1, 1, ["sns"])
        row = outbox(store)[(alerts[0], "sns")]
        assert (row["status"], row["last_error"]) == ("pending", "SNS NotFound")

        boto3.client("sns", region_name=REGION).create_topic(Name="not-created-yet")
        assert deliver_now(store, settings, T0 + timedelta(minutes=5)).delivered == 2
