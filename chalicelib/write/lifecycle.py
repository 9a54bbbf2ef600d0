"""The data lifecycle of each collect: seal settled sessions, apply retention, expire sealed
intraday files past ``OCD_SEALED_INTRADAY_RETENTION_DAYS`` (when set), and, as the run's last
write, compact the file when it holds too much dead space.

Sealing comes first and retention only deletes what the published history manifest names, so
the hot store stays bounded without ever holding less than the sealed history lacks; expiry
only deletes sealed files none of whose snapshots is still in the hot store.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from chalicelib.config import Settings
from chalicelib.logs import log_event
from chalicelib.storage.base import Storage
from chalicelib.write import retention
from chalicelib.write.sealing import ExpiryResult, Sealer, SealResult
from chalicelib.write.store import CompactionResult, Store


@dataclass
class LifecycleResult:
    sealed: SealResult
    retained: retention.RetentionResult
    expired: ExpiryResult
    compaction: CompactionResult | None = None

    def summary(self) -> dict[str, object]:
        compaction = self.compaction
        return {
            "sealed_sessions": [str(s) for s in self.sealed.sessions],
            "sealed_files": self.sealed.files,
            "sealed_rows": self.sealed.rows,
            "sealed_bytes": self.sealed.bytes,
            "history_files": len(
                self.sealed.published if self.expired.published is None else self.expired.published
            ),
            "history_files_expired": self.expired.files,
            "history_bytes_expired": self.expired.bytes,
            "history_expiry_error": self.expired.error,
            "snapshots_deleted": self.retained.snapshots_deleted,
            "rows_deleted": self.retained.rows_deleted,
            "compacted": compaction is not None,
        }


def maintain(
    store: Store,
    storage: Storage,
    settings: Settings,
    now: datetime,
    *,
    step: Callable[[str], None] = lambda name: None,
) -> LifecycleResult:
    sealer = Sealer(
        store, storage, seal_intraday=settings.seal_intraday, work_dir=settings.data_dir, step=step
    )
    sealed = sealer.seal(now)
    published = [f.key for f in sealed.published]
    retained = retention.apply(store, settings, now, published, step=step)
    try:  # its failure (a storage error) must not cost the run its seal, retention, compaction
        expired = sealer.expire(retention.windows(settings, now).sealed_intraday_from, now)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        log_event("history_expiry_failed", level=logging.ERROR, error=error)
        expired = ExpiryResult(error=error)
    return LifecycleResult(sealed, retained, expired)


def compact(
    store: Store, settings: Settings, step: Callable[[str], None] = lambda name: None
) -> CompactionResult | None:
    """The run's last write: compact when dead space passes the configured policy."""
    policy = retention.CompactionPolicy(
        free_fraction=settings.compact_free_fraction,
        min_free_bytes=int(settings.compact_min_free_mb * (1 << 20)),
    )
    return retention.compact_if_dead(store, policy, step)
