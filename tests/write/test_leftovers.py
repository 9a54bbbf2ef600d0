"""Leftovers of killed writers (temp files, seal directories) go at the start of the next run;
younger ones, which a writer in another process may still be using, stay."""

from __future__ import annotations

import os
import time
from pathlib import Path

from chalicelib.config import load_settings
from chalicelib.storage.local import LocalStorage
from chalicelib.write import leftovers


def _aged(path: Path, seconds: float) -> Path:
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


def test_stale_temporaries_go_and_fresh_ones_stay(tmp_path: Path) -> None:
    settings = load_settings({"OCD_DATA_DIR": str(tmp_path), "OCD_EXPORT_INTERVAL_SECONDS": "300"})
    storage = LocalStorage(settings.exports)
    (settings.exports / "chains" / "SPY").mkdir(parents=True)
    stale = [
        _aged(_touch(settings.exports / ".tmp-abc"), 3600),
        _aged(_touch(settings.exports / "chains" / "SPY" / ".tmp-def"), 3600),
        _aged(_touch(tmp_path / ".tmp-download"), 3600),
    ]
    seal_dir = tmp_path / "ocd-seal-xyz"
    (seal_dir / "inner").mkdir(parents=True)
    _touch(seal_dir / "inner" / "part.parquet")
    _aged(seal_dir, 3600)
    fresh = [_touch(settings.exports / ".tmp-live"), _touch(tmp_path / ".tmp-live")]
    keep = [_aged(_touch(settings.exports / "manifest.json"), 3600)]
    assert leftovers.remove(settings, storage) == 4
    assert not any(p.exists() for p in [*stale, seal_dir])
    assert all(p.exists() for p in [*fresh, *keep])


def _touch(path: Path) -> Path:
    path.write_bytes(b"x")
    return path
