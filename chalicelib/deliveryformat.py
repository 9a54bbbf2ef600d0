"""The alert delivery status document (``delivery.json``): the writer's outbox, as published.

Each generation publishes it beside the alerts (``exportformat.DELIVERY_KEY``), listed in the
manifest and verified like every document. It serves two readers:

- the writer's delivery step, which sends an alert only once a published generation names it in
  ``awaiting`` (so the alert's ``url`` and the feed resolve by then);
- ``/health``, which shows per sink the last success, the backlog, the dead rows and the last
  error. Nothing in it is a secret: no URL, no topic, no signing key, and errors are the
  writer's own short descriptions ("HTTP 503", "timed out after 5 s"), never a library's text.

Like ``exportformat``, both sides import this module and it imports neither.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SinkName = Literal["webhook", "slack", "sns"]
SINKS: tuple[SinkName, ...] = ("webhook", "slack", "sns")


class SinkStatus(BaseModel):
    """One configured sink, as the outbox said when the generation was exported."""

    model_config = ConfigDict(frozen=True, defer_build=True)  # built on first use

    sink: SinkName
    last_success: datetime | None = None  # writer's clock of the newest acknowledgement
    backlog: int = Field(ge=0)  # alerts not delivered yet (waiting or retrying), count
    delivered: int = Field(ge=0)  # alerts acknowledged, count
    dead: int = Field(ge=0)  # alerts given up after the last attempt, count
    last_error: str | None = None  # the newest failure, e.g. "HTTP 503"
    last_error_at: datetime | None = None


class DeliveryDocument(BaseModel):
    """``delivery.json``: the usual document header, the sinks, and the alerts released."""

    model_config = ConfigDict(frozen=True, defer_build=True)  # built on first use

    schema_version: Literal[4] = 4  # exportformat.SCHEMA_VERSION
    generation: str
    generated_at: datetime
    kind: Literal["delivery"] = "delivery"
    count: int = Field(ge=0)  # sinks
    sinks: list[SinkStatus]
    # Ids of this generation's alerts that some sink has not acknowledged yet: the writer
    # delivers these (and only these) once the generation is published.
    awaiting: list[str]


def alert_url(public_url: str | None, alert_id: str) -> str | None:
    """Where the dashboard shows an alert; None without ``OCD_PUBLIC_URL``."""
    return f"{public_url.rstrip('/')}/#/alerts/{alert_id}" if public_url else None
