"""Scheduled work as the Lambda functions see it: CloudWatch events in, JSON summaries out."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chalicelib import logs
from chalicelib.config import load_settings


def event_clock(detail: dict[str, Any] | None) -> datetime | None:
    """An optional ``detail.as_of`` pins the market clock (replays, tests); else wall time."""
    raw = (detail or {}).get("as_of")
    if not raw:
        return None
    value = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def collect(detail: dict[str, Any] | None = None) -> dict[str, Any]:
    from chalicelib.write.scheduler import run_collect

    settings = load_settings()
    logs.configure(settings.log_level)
    return run_collect(settings, event_clock(detail))


def rate_minutes(env_name: str, default_seconds: int) -> int:
    """Schedule rates are fixed when Chalice loads the app: the one import-time setting."""
    import os

    try:
        seconds = int(os.environ.get(env_name, default_seconds))
    except ValueError:
        seconds = default_seconds
    return max(1, -(-seconds // 60))


def export(detail: dict[str, Any] | None = None) -> dict[str, Any]:
    from chalicelib.exportformat import load_manifest
    from chalicelib.storage.factory import make_storage
    from chalicelib.write.exporter import JSONExporter
    from chalicelib.write.store import Store

    settings = load_settings()
    logs.configure(settings.log_level)
    storage = make_storage(settings)
    with Store(settings.database) as store:
        results = JSONExporter(store, storage, settings).export_all()
    manifest = load_manifest(storage)
    return {
        "ok": all(r.ok for r in results.values()),
        "generation": manifest.generation if manifest else None,
        "duration_ms": manifest.duration_ms if manifest else None,
        "storage_writes": manifest.storage_writes if manifest else None,
        "kinds": {kind: result.model_dump() for kind, result in results.items()},
    }
