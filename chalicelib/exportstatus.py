"""The export status document: whether the writer's last export succeeded.

``manifest.json`` only ever names a generation that was published whole, so an export that
failed leaves no trace there: readers go on serving the previous generation, as they should.
To make the failure visible, the export schedule writes ``export_status.json`` at the export
root when an export fails, and again when exports succeed after a failure; ``/health`` reads it
and reports ``degraded`` while the last export failed. Like ``exportformat``, both sides import
this module and it imports neither.

Writing the status is best effort: the storage that just failed the export may refuse this
write too, and then the failure is only logged.
"""

from __future__ import annotations

import logging
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from chalicelib.errors import ObjectNotFound, StorageUnavailable
from chalicelib.exportformat import dumps, iso
from chalicelib.logs import log_event
from chalicelib.storage.base import Storage

STATUS_KEY = "export_status.json"
# The same document for the collect schedule: a writer whose database is damaged, or that no
# longer collects anything, keeps exporting unchanged data; this says so.
COLLECT_STATUS_KEY = "collect_status.json"
MAX_ERROR_CHARS = 1000


class ExportStatus(BaseModel):
    """The outcome of the last export that changed the status (a failure, or the recovery)."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    ok: bool
    at: datetime
    generation: str | None = None  # the generation served when the status was written
    error: str | None = None


def read_status(storage: Storage, key: str = STATUS_KEY) -> ExportStatus | None:
    """The recorded status; None when there is none, or it cannot be read or parsed."""
    try:
        return ExportStatus.model_validate_json(storage.get(key).data)
    except (ObjectNotFound, StorageUnavailable, OSError):
        return None
    except ValueError:
        log_event("export_status_unreadable", key=key)
        return None


def record_status(
    storage: Storage,
    *,
    ok: bool,
    at: datetime,
    generation: str | None,
    error: str | None,
    key: str = STATUS_KEY,
) -> bool:
    """Record an export's outcome; True when written. Never raises.

    A failure is always written. A success only when the recorded status is not already a
    success (one GET per export instead of a PUT: S3 charges writes more than reads).
    """
    if error is not None and len(error) > MAX_ERROR_CHARS:
        error = error[: MAX_ERROR_CHARS - 1] + "…"
    try:
        if ok:
            previous = read_status(storage, key)
            if previous is None and key != STATUS_KEY:
                return False  # nothing failed before: no document needed
            if previous is not None and previous.ok:
                return False
        body = {"ok": ok, "at": iso(at), "generation": generation, "error": error}
        storage.put(key, dumps(body))
    except Exception as exc:  # the storage may be what failed the export
        log_event(
            "export_status_failed",
            level=logging.WARNING,
            ok=ok,
            error=f"{type(exc).__name__}: {exc}",
        )
        return False
    log_event("export_status", key=key, ok=ok, generation=generation, error=error)
    return True
