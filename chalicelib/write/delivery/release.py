"""Which alerts the published generation contains: what the writer may deliver now.

The export lists, in ``delivery.json``, the alerts that were in the database it published and
are still to be delivered. The writer reads that list through the published manifest, verified
by its sha256 (the same generation's archive when the latest copy no longer matches, as readers
do), and only when ``alerts.json``, ``alerts.atom`` and ``delivery.json`` were all written by one
export: then each listed alert is in the published alerts and feed, and its ``url`` resolves.
Anything else releases nothing, and the alerts wait for the next export.
"""

from __future__ import annotations

import gzip
import logging
from dataclasses import dataclass

from pydantic import ValidationError

from chalicelib import exportformat as fmt
from chalicelib.deliveryformat import DeliveryDocument
from chalicelib.errors import InvalidKey, ObjectNotFound, StorageUnavailable
from chalicelib.logs import log_event
from chalicelib.storage.base import Storage

# The documents an alert must be in before it is delivered, with delivery.json itself.
_TOGETHER = (fmt.DELIVERY_KEY, fmt.latest_key("alerts"), fmt.FEED_KEY)
_UNREADABLE = (ObjectNotFound, StorageUnavailable, InvalidKey, OSError, EOFError)


@dataclass(frozen=True)
class Release:
    generation: str  # the generation whose documents name the alerts
    awaiting: frozenset[str]  # alert ids


def published_release(storage: Storage) -> Release | None:
    """The alerts the served generation releases; None when it releases none (nothing
    published yet, an export that did not write all three documents, damage)."""
    manifest = fmt.load_manifest(storage)
    if manifest is None:
        return None
    entries = [manifest.documents.get(key) for key in _TOGETHER]
    generations = {entry.generation for entry in entries if entry is not None}
    if None in entries or len(generations) != 1:
        log_event("delivery_unreleased", generation=manifest.generation,
                  reason="alerts, feed and delivery status not of one export")  # fmt: skip
        return None
    entry = entries[0]
    assert entry is not None
    data = _verified(storage, fmt.DELIVERY_KEY, entry.sha256, gzipped=False)
    archive = manifest.archives.get(fmt.DELIVERY_KIND)
    if data is None and archive:
        data = _verified(storage, archive, entry.sha256, gzipped=True)
    if data is None:
        log_event("delivery_unreleased", level=logging.WARNING, generation=manifest.generation,
                  reason="no copy of delivery.json matches the manifest")  # fmt: skip
        return None
    try:
        document = DeliveryDocument.model_validate_json(data)
    except ValidationError:
        log_event("delivery_unreleased", level=logging.WARNING, generation=manifest.generation,
                  reason="delivery.json does not parse")  # fmt: skip
        return None
    return Release(entry.generation, frozenset(document.awaiting))


def _verified(storage: Storage, key: str, sha: str, *, gzipped: bool) -> bytes | None:
    try:
        data = storage.get(key).data
        if gzipped:
            data = gzip.decompress(data)
    except _UNREADABLE as exc:
        log_event("delivery_release_unreadable", key=key, reason=type(exc).__name__)
        return None
    return data if fmt.sha256(data) == sha else None
