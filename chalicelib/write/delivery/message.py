"""What is sent for one alert: the Standard Webhooks event, the Slack text, the SNS message.

The event body is the same bytes on every attempt (it names the generation that first released
the alert, recorded in the outbox), so a receiver that de-duplicates on ``webhook-id`` sees one
event however often it was sent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from chalicelib.exportformat import dumps, iso

EVENT_TYPE = "alert.created"
SLACK_SUMMARY_CHARS = 300


class AlertMessage(BaseModel):
    """One alert as delivered (the ``data`` of the event)."""

    model_config = ConfigDict(frozen=True)

    id: str
    ticker: str
    detector_name: str
    score: float  # 0-100
    explanation: dict[str, Any]
    metrics: dict[str, Any]
    created_at: datetime
    generation: str  # the published generation that released it
    url: str | None  # the alert in the dashboard, when OCD_PUBLIC_URL is set


def webhook_id(alert_id: str) -> str:
    """Stable per alert: every attempt, and every writer, sends the same id."""
    return f"msg_{alert_id}"


def event_body(message: AlertMessage) -> bytes:
    """The webhook body, and the SNS message: ``{"type", "timestamp", "data"}``."""
    data = {
        "id": message.id,
        "ticker": message.ticker,
        "detector_name": message.detector_name,
        "score": message.score,
        "explanation": message.explanation,
        "metrics": message.metrics,
        "created_at": iso(message.created_at),
        "generation": message.generation,
        "url": message.url,
    }
    return dumps({"type": EVENT_TYPE, "timestamp": iso(message.created_at), "data": data})


def headline(message: AlertMessage) -> str:
    """One line: the SNS subject (email), the first line of the Slack message."""
    return f"{message.ticker} {message.detector_name}, score {message.score:.1f}"


def slack_body(message: AlertMessage) -> bytes:
    """Slack's incoming-webhook format (Discord's /slack endpoint and Mattermost take it)."""
    summary = str(message.explanation.get("summary") or "")
    if len(summary) > SLACK_SUMMARY_CHARS:
        summary = summary[: SLACK_SUMMARY_CHARS - 1] + "…"
    lines = [f"*{_slack(message.ticker)}* {_slack(message.detector_name)}, score "
             f"{message.score:.1f}", _slack(summary)]  # fmt: skip
    if message.url:
        lines.append(f"<{message.url}|Open in the dashboard>")
    return dumps({"text": "\n".join(line for line in lines if line)})


def _slack(text: str) -> str:
    """Slack's three control characters, escaped as its formatting guide asks."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
