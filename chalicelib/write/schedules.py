"""Scheduled work as the Lambda functions see it: CloudWatch events in, JSON summaries out."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from chalicelib import logs, natives
from chalicelib.config import Settings, ensure_data_dir, load_settings, unknown_variables
from chalicelib.errors import ClockRefused, DatabaseDamaged, DatabaseDiverged

if TYPE_CHECKING:
    from chalicelib.storage.base import Storage
    from chalicelib.write.dbstate import DatabaseState
    from chalicelib.write.store import Store


AS_OF_FORMAT = "ISO 8601, e.g. 2026-11-24T15:30:00Z (UTC when no offset is given)"


def event_clock(detail: dict[str, Any] | None) -> datetime | None:
    """An optional ``detail.as_of`` pins the market clock (replays, tests); else wall time.
    An unreadable one is refused (``ClockRefused``), never guessed."""
    raw = (detail or {}).get("as_of")
    if not raw:
        return None
    return parse_as_of(str(raw))


def parse_as_of(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ClockRefused(f"as-of {text!r} is not a time: expected {AS_OF_FORMAT}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def db_state(settings: Settings) -> DatabaseState | None:
    """The bucket copy of the database when the writer runs where disks are ephemeral; in
    local mode the local file is data of its own, no longer a copy of a bucket's."""
    from chalicelib.write.dbstate import DatabaseState, forget_sync

    if not settings.persist_db:
        forget_sync(settings.database)
        return None
    from chalicelib.storage.factory import make_state_storage

    return DatabaseState(make_state_storage(settings), settings.database)


def collect(detail: dict[str, Any] | None = None) -> dict[str, Any]:
    """Collect → flush → features and alerts → seal and retention, restored from and persisted
    to the bucket on Lambda. Raises ClockRefused (a pinned clock behind the store or ahead of
    the present) and DatabaseDiverged (local and bucket databases both hold data) before
    writing anything."""
    natives.require_writer_natives()
    from chalicelib.write.dbstate import WriterConflict
    from chalicelib.write.scheduler import run_collect
    from chalicelib.write.store import DatabaseError, is_damage

    settings = load_settings()
    logs.configure(settings.log_level)
    ensure_data_dir(settings)
    _warn_unknown_variables()
    _remove_leftovers(settings)
    try:
        state = db_state(settings)
        if state is not None:
            state.restore()
        summary = run_collect(settings, event_clock(detail))
    except (DatabaseDamaged, DatabaseDiverged) as exc:
        _record_collect(settings, ok=False, error=str(exc))
        raise
    except DatabaseError as exc:
        if not is_damage(exc):
            raise
        damaged = DatabaseDamaged(str(settings.database), str(exc).splitlines()[0])
        _record_collect(settings, ok=False, error=str(damaged))
        raise damaged from exc
    failed = summary["status"] == "failed"
    _record_collect(settings, ok=not failed, error="; ".join(summary["errors"]) if failed else None)
    if state is not None:
        try:
            state.persist()
        except WriterConflict as exc:  # another writer won: this run publishes nothing
            summary.update(status="aborted", errors=[*summary["errors"], str(exc)])
        summary["db"] = {"restored_bytes": state.restored_bytes, "adopted": state.adopted,
                         "persisted_bytes": state.persisted_bytes}  # fmt: skip
    return summary


def _warn_unknown_variables() -> None:
    unknown = unknown_variables()
    if unknown:
        logs.log_event("unknown_settings", level=logging.WARNING, variables=unknown)


def _remove_leftovers(settings: Settings) -> None:
    from chalicelib.storage.factory import make_storage
    from chalicelib.write import leftovers

    try:
        leftovers.remove(settings, make_storage(settings))
    except Exception as exc:  # tidying up must never stop a run
        logs.log_event("leftovers_failed", level=logging.WARNING,
                       error=f"{type(exc).__name__}: {exc}")  # fmt: skip


def _record_collect(settings: Settings, *, ok: bool, error: str | None) -> None:
    """``collect_status.json`` in the export storage: what ``/health`` reports as degraded."""
    from chalicelib.exportstatus import COLLECT_STATUS_KEY, record_status
    from chalicelib.storage.factory import make_storage

    record_status(make_storage(settings), ok=ok, at=datetime.now(UTC), generation=None,
                  error=error, key=COLLECT_STATUS_KEY)  # fmt: skip


def export(detail: dict[str, Any] | None = None) -> dict[str, Any]:
    """Publish a generation. A failed export raises nothing: the previous generation stays
    served, the failure goes to the log and to ``export_status.json`` (``/health`` shows it)."""
    natives.require_writer_natives()
    from chalicelib.exportformat import load_manifest
    from chalicelib.exportstatus import record_status
    from chalicelib.storage.factory import make_storage
    from chalicelib.write.exporter import JSONExporter
    from chalicelib.write.scheduler import check_clock
    from chalicelib.write.store import Store

    settings = load_settings()
    logs.configure(settings.log_level)
    storage = make_storage(settings)
    state = db_state(settings)
    if state is not None and state.restore() is None:
        return {"ok": False, "generation": None, "error": "no database persisted yet"}
    with Store(settings.database) as store:
        pinned = event_clock(detail)
        if pinned is not None:
            check_clock(store, pinned, settings.provider)
        try:
            results = JSONExporter(store, storage, settings).export_all()
        except Exception as exc:  # e.g. storage down: nothing new was published
            error = f"{type(exc).__name__}: {exc}"
            served = _served_generation(storage)
            logs.log_event("export_failed", level=logging.ERROR, error=error, served=served)
            record_status(storage, ok=False, at=datetime.now(UTC), generation=served, error=error)
            return {"ok": False, "generation": served, "error": error}
        delivery = _deliver_published(store, storage, settings, pinned)
    manifest = load_manifest(storage)
    failed = {kind: r.error for kind, r in results.items() if not r.ok}
    error = "; ".join(f"{kind}: {message}" for kind, message in failed.items()) or None
    generation = manifest.generation if manifest else None
    record_status(storage, ok=not failed, at=datetime.now(UTC), generation=generation, error=error)
    return {
        "ok": not failed,
        "generation": generation,
        "duration_ms": manifest.duration_ms if manifest else None,
        "storage_writes": manifest.storage_writes if manifest else None,
        "error": error,
        "kinds": {kind: result.model_dump() for kind, result in results.items()},
        "delivery": delivery,
    }


def _deliver_published(
    store: Store, storage: Storage, settings: Settings, pinned: datetime | None
) -> dict[str, Any] | None:
    """Delivery right after the publish, where the database is a local file: there the
    export's acknowledgements are as durable as the collect's. With a persisted database
    (Lambda) the export never persists, so the next collect delivers instead."""
    if settings.persist_db:
        return None
    from chalicelib.write.delivery.deliverer import deliver

    try:
        return deliver(store, storage, settings, pinned or datetime.now(UTC)).summary()
    except Exception as exc:  # never fails the export: the rows wait for the next run
        logs.log_event("delivery_failed", level=logging.ERROR,
                       error=f"{type(exc).__name__}: {exc}")  # fmt: skip
        return {"error": f"{type(exc).__name__}: {exc}"}


def _served_generation(storage: Storage) -> str | None:
    """The generation readers still get, if the storage answers at all."""
    from chalicelib.exportformat import load_manifest

    try:
        manifest = load_manifest(storage)
    except Exception:  # the storage that failed the export may fail this read too
        return None
    return manifest.generation if manifest else None
