"""What killed writers leave behind, removed at the start of the next run.

Temp files of atomic writes in the export root (``.tmp-*``), temp directories of seals
(``ocd-seal-*``) and downloads (``.tmp-*``) in the data directory. Only those older than the
export period go: a younger one may belong to a writer still running in another process.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from chalicelib.config import Settings
from chalicelib.logs import log_event
from chalicelib.storage.base import Storage
from chalicelib.storage.keys import TEMP_PREFIX

SEAL_TEMP_PREFIX = "ocd-seal-"


def remove(settings: Settings, storage: Storage) -> int:
    older_than = float(settings.export_interval_seconds)
    removed = storage.remove_stale_temporaries(older_than)
    cutoff = time.time() - older_than
    data_dir = Path(settings.data_dir)
    if data_dir.is_dir():
        for path in [*data_dir.glob(f"{TEMP_PREFIX}*"), *data_dir.glob(f"{SEAL_TEMP_PREFIX}*")]:
            try:
                if path.lstat().st_mtime >= cutoff:
                    continue
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
                removed += 1
            except OSError:
                continue
    if removed:
        log_event("leftovers_removed", count=removed)
    return removed
