"""The sinks an alert is delivered to, each enabled by its setting (none by default).

A sink's ``send`` returns the acknowledgement (``HTTP 200``, SNS's MessageId) or raises
``DeliveryFailed`` with a reason safe to publish. Sinks hold their secret; nothing else does.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar

from chalicelib.config import Settings
from chalicelib.deliveryformat import SinkName
from chalicelib.write.delivery.message import (
    AlertMessage,
    event_body,
    headline,
    slack_body,
    webhook_id,
)
from chalicelib.write.delivery.signing import signed_headers
from chalicelib.write.delivery.transport import DeliveryFailed, post

# SNS errors that concern one message, not the topic: other alerts may still go through.
_MESSAGE_ERRORS = frozenset({"InvalidParameter", "InvalidParameterValue"})


class Sink(ABC):
    name: ClassVar[SinkName]
    min_interval: ClassVar[float] = 0.0  # seconds between two sends to this sink

    @abstractmethod
    def send(self, message: AlertMessage, timeout: float) -> str:
        """Deliver ``message`` within ``timeout`` seconds; the acknowledgement."""


class WebhookSink(Sink):
    """A POST of the event, signed the Standard Webhooks way."""

    name = "webhook"

    def __init__(
        self, url: str, secret: str, wall: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.url = url
        self._secret = secret
        self.wall = wall

    def send(self, message: AlertMessage, timeout: float) -> str:
        body = event_body(message)
        headers = signed_headers(self._secret, webhook_id(message.id), body, self.wall())
        return f"HTTP {post(self.url, body, headers, timeout)}"

    def __repr__(self) -> str:  # never the secret
        return "WebhookSink()"


class SlackSink(Sink):
    """A short message to a Slack-compatible incoming webhook, at most one a second."""

    name = "slack"
    min_interval = 1.0

    def __init__(self, url: str) -> None:
        self._url = url  # the URL is the credential

    def send(self, message: AlertMessage, timeout: float) -> str:
        return f"HTTP {post(self._url, slack_body(message), {}, timeout)}"

    def __repr__(self) -> str:
        return "SlackSink()"


class SnsSink(Sink):
    """A publish to an SNS topic: the event as the message, and attributes to filter on."""

    name = "sns"

    def __init__(self, topic_arn: str, client: Any = None) -> None:
        self.topic_arn = topic_arn
        self._client = client

    def _sns(self, timeout: float) -> Any:
        if self._client is None:  # created on first use, from the environment
            import boto3
            from botocore.config import Config

            region = self.topic_arn.split(":")[3]
            config = Config(connect_timeout=timeout, read_timeout=timeout,
                            retries={"total_max_attempts": 1})  # fmt: skip
            self._client = boto3.client("sns", region_name=region, config=config)
        return self._client

    def send(self, message: AlertMessage, timeout: float) -> str:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectTimeoutError,
            ReadTimeoutError,
        )

        attributes = {
            "ticker": {"DataType": "String", "StringValue": message.ticker},
            "detector": {"DataType": "String", "StringValue": message.detector_name},
            "score": {"DataType": "Number", "StringValue": f"{message.score:g}"},
        }
        try:
            answer = self._sns(timeout).publish(
                TopicArn=self.topic_arn,
                Message=event_body(message).decode(),
                Subject=headline(message)[:100],
                MessageAttributes=attributes,
            )
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "error"))
            raise DeliveryFailed(f"SNS {code}", endpoint_down=code not in _MESSAGE_ERRORS) from None
        except (ConnectTimeoutError, ReadTimeoutError):
            raise DeliveryFailed(f"timed out after {timeout:g} s", endpoint_down=True) from None
        except BotoCoreError as exc:
            raise DeliveryFailed(f"SNS {type(exc).__name__}", endpoint_down=True) from None
        return str(answer["MessageId"])


def configured_sinks(settings: Settings) -> list[Sink]:
    """The sinks the settings enable, in a fixed order."""
    sinks: list[Sink] = []
    secret = settings.alert_webhook_secret
    if settings.alert_webhook_url and secret is not None:
        sinks.append(WebhookSink(settings.alert_webhook_url, secret.get_secret_value()))
    if settings.alert_slack_webhook_url is not None:
        sinks.append(SlackSink(settings.alert_slack_webhook_url.get_secret_value()))
    if settings.alert_sns_topic_arn:
        sinks.append(SnsSink(settings.alert_sns_topic_arn))
    return sinks


def sink_names(settings: Settings) -> list[str]:
    """The names of the configured sinks (building a sink opens nothing)."""
    return [sink.name for sink in configured_sinks(settings)]
