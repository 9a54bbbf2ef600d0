"""The writers' native dependencies, checked before a scheduled run starts.

A plain ``chalice package`` or ``chalice deploy`` under Python 3.11 leaves duckdb (and numpy) out
of the Lambda zip and exits 0; the API still works, because the read side never imports them.
Without this check the writers would fail deep inside a run with a bare ImportError; with it,
each run fails at once, logs one error line naming what is missing, and says how to build the
package. Imports by name (``importlib``) keep this module free of the write side's imports.
"""

from __future__ import annotations

import importlib
import logging

from chalicelib import logs
from chalicelib.errors import OCDError

WRITER_NATIVES = ("duckdb", "numpy")
FIX = (
    "build the Lambda package with scripts/package.sh (docs/deploy.md), "
    "not a plain `chalice package`/`chalice deploy` under Python 3.11"
)


class NativeDependencyMissing(OCDError):
    """A native module the writer needs does not import here; ``missing`` maps it to why."""

    def __init__(self, missing: dict[str, str]) -> None:
        self.missing = missing
        reasons = "; ".join(f"{name}: {reason}" for name, reason in missing.items())
        super().__init__(f"the writer cannot import {', '.join(missing)} ({reasons}): {FIX}")


def require_writer_natives() -> None:
    """Import duckdb and numpy, or log and raise NativeDependencyMissing naming each failure."""
    missing: dict[str, str] = {}
    for name in WRITER_NATIVES:
        try:
            importlib.import_module(name)
        except ImportError as exc:  # absent, or built for another Python or platform
            missing[name] = f"{type(exc).__name__}: {exc}"
    if not missing:
        return
    error = NativeDependencyMissing(missing)
    logs.configure()  # the handler fails before it configures logging itself
    logs.log_event(
        "native_dependencies_missing",
        level=logging.ERROR,
        missing=sorted(missing),
        reasons=missing,
        fix=FIX,
    )
    raise error
