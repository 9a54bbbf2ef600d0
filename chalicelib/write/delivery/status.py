"""``delivery.json``: what each export publishes about the outbox (``deliveryformat``)."""

from __future__ import annotations

from datetime import datetime

from chalicelib.config import Settings
from chalicelib.deliveryformat import DeliveryDocument, SinkStatus
from chalicelib.exportformat import dumps
from chalicelib.write.delivery import outbox
from chalicelib.write.delivery.sinks import sink_names
from chalicelib.write.store import Store


def delivery_document(
    store: Store, settings: Settings, generation: str, generated_at: datetime
) -> tuple[bytes, int]:
    """The document's bytes and its row count (configured sinks)."""
    names = sink_names(settings)
    sinks = [
        SinkStatus(sink=c.sink, last_success=c.last_success, backlog=c.backlog,  # type: ignore[arg-type]
                   delivered=c.delivered, dead=c.dead, last_error=c.last_error,
                   last_error_at=c.last_error_at)
        for c in outbox.counts(store, names).values()
    ]  # fmt: skip
    document = DeliveryDocument(generation=generation, generated_at=generated_at,
                                count=len(sinks), sinks=sinks,
                                awaiting=outbox.awaiting(store, names))  # fmt: skip
    return dumps(document.model_dump(mode="json")), len(sinks)
