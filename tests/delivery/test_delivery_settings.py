"""Delivery settings: every sink off by default, bad values refused naming the variable (never
repeating a secret), and none of them read by the API."""

from __future__ import annotations

from pathlib import Path

import pytest
from deliverykit import SECRET, settings_for

from chalicelib.config import load_read_settings
from chalicelib.errors import ConfigError
from chalicelib.write.delivery.sinks import configured_sinks, sink_names


def test_no_sink_by_default(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    assert configured_sinks(settings) == [] and sink_names(settings) == []
    assert settings.alert_delivery_max_attempts == 8
    assert settings.alert_delivery_timeout_seconds == 5.0
    assert settings.alert_delivery_budget_seconds == 20.0
    assert settings.delivery_min_score == settings.min_alert_score == 40.0


def test_each_sink_is_enabled_by_its_setting(tmp_path: Path) -> None:
    settings = settings_for(
        tmp_path, alert_webhook_url="https://hooks.example.com/ocd", alert_webhook_secret=SECRET,
        alert_slack_webhook_url="https://hooks.slack.com/services/T0/B0/token",
        alert_sns_topic_arn="arn:aws:sns:us-east-1:123456789012:ocd-alerts",
        public_url="https://ocd.example.com/")  # fmt: skip
    assert sink_names(settings) == ["webhook", "slack", "sns"]
    assert settings.public_url == "https://ocd.example.com"
    slack_secret = "services/T0/B0/token"  # the Slack URL's path is its secret
    assert slack_secret not in repr(settings) and SECRET not in repr(settings)
    assert slack_secret not in repr(configured_sinks(settings))


@pytest.mark.parametrize(
    ("values", "variable"),
    [
        ({"alert_webhook_url": "https://hooks.example.com/ocd"}, "OCD_ALERT_WEBHOOK_SECRET"),
        ({"alert_webhook_url": "ftp://hooks.example.com/", "alert_webhook_secret": SECRET},
         "OCD_ALERT_WEBHOOK_URL"),
        ({"alert_webhook_secret": "hunter2-not-whsec"}, "OCD_ALERT_WEBHOOK_SECRET"),
        ({"alert_webhook_secret": "whsec_%%%not-base64%%%"}, "OCD_ALERT_WEBHOOK_SECRET"),
        ({"alert_slack_webhook_url": "hooks.slack.com/services/T0/B0/hunter2"},
         "OCD_ALERT_SLACK_WEBHOOK_URL"),
        ({"alert_sns_topic_arn": "arn:aws:sqs:us-east-1:123456789012:q"},
         "OCD_ALERT_SNS_TOPIC_ARN"),
        ({"alert_delivery_min_score": "101"}, "OCD_ALERT_DELIVERY_MIN_SCORE"),
        ({"alert_delivery_max_attempts": "0"}, "OCD_ALERT_DELIVERY_MAX_ATTEMPTS"),
        ({"alert_delivery_timeout_seconds": "0"}, "OCD_ALERT_DELIVERY_TIMEOUT_SECONDS"),
        ({"alert_delivery_budget_seconds": "-1"}, "OCD_ALERT_DELIVERY_BUDGET_SECONDS"),
        ({"public_url": "ocd.example.com"}, "OCD_PUBLIC_URL"),
    ],
)  # fmt: skip
def test_a_bad_value_stops_the_writer_naming_the_variable(
    tmp_path: Path, values: dict[str, str], variable: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        settings_for(tmp_path, **values)
    message = str(raised.value)
    assert variable in message
    assert "hunter2" not in message and "%%%" not in message  # secrets are not repeated
    # ... while the API, which reads none of them, starts
    env = {"OCD_DATA_DIR": str(tmp_path), **{f"OCD_{k.upper()}": v for k, v in values.items()}}
    assert load_read_settings(env).exports == tmp_path / "exports"
