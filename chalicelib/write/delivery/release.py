"""Which alerts the published generation contains: what the writer may deliver now.

The export lists, in ``delivery.json``, the alerts that were in the database it published and
are still to be delivered. The writer reads that list through the published manifest, verified
by its sha256 (the same generation's archive when the latest copy no longer matches, as readers
do), and only when the served generation wrote ``delivery.json`` and published ``alerts.json``
and ``alerts.atom`` too (rebuilt, or kept because their content had not changed): then each
listed alert is in the published alerts and feed, and its ``url`` resolves. Anything else (a
kind that failed and left an older document in place, say) releases nothing, and the alerts
wait for the next export.
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

# The kinds an alert must be published in before it is delivered.
_WITH = ("alerts", fmt.FEED_KIND)
_UNREADABLE = (ObjectNotFound, StorageUnavailable, InvalidKey, OSError, EOFError)


@dataclass(frozen=True)
class Release:
    generation: str  # the generation whose documents name the alerts
    awaiting: frozenset[str]  # alert ids


def published_release(storage: Storage) -> Release | None:
    """The alerts the served generation releases; None when it releases none (nothing
    published yet, an export whose alerts, feed or delivery status failed, damage)."""
    manifest = fmt.load_manifest(storage)
    if manifest is None:
        return None
    entry = manifest.documents.get(fmt.DELIVERY_KEY)
    published = all(
        fmt.latest_key(kind) in manifest.documents
        and (result := manifest.results.get(kind)) is not None
        and result.ok
        for kind in _WITH
    )
    if entry is None or entry.generation != manifest.generation or not published:
        log_event("delivery_unreleased", generation=manifest.generation,
                  reason="alerts, feed and delivery status not all of this export")  # fmt: skip
        return None
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
