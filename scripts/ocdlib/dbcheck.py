"""``ocd.py db check``: is the database whole, and if not, how to get back to work.

It checks the local file the way a restore checks a download (it opens, and every block of every
table reads back: DuckDB verifies block checksums as it reads), looks for a compaction's or a
download's leftovers, and, with ``OCD_STORAGE=s3``, the bucket's copy and the checksum the writer
recorded for it. It prints what it found and, for a damaged file, the ways to recover: the bucket's
last good copy, or a fresh database (daily history is backfilled again) beside the sealed history,
which holds every closed session.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from chalicelib import historyformat as hf
from chalicelib.config import Settings
from chalicelib.errors import OCDError
from chalicelib.storage.factory import make_state_storage, make_storage
from chalicelib.write.dbstate import DatabaseState
from chalicelib.write.digests import file_sha256
from chalicelib.write.store import Store, verify_file

LEFTOVERS = (".compact", ".pre-compact", ".download", ".wal")


def check(settings: Settings) -> tuple[bool, list[str]]:
    """(whole, report lines)."""
    lines: list[str] = []
    path = settings.database
    local_ok = True
    if not path.exists():
        lines.append(f"local database {path}: none (the next cycle starts a fresh one)")
    else:
        problem = verify_file(path)
        if problem is None:
            lines.append(f"local database {path}: ok, {path.stat().st_size:,} bytes, "
                         f"{_summary(path)}")  # fmt: skip
        else:
            local_ok = False
            lines.append(f"local database {path}: DAMAGED: {problem}")
    for suffix in LEFTOVERS:
        extra = path.with_name(path.name + suffix)
        if extra.exists():
            lines.append(f"leftover {extra} ({extra.stat().st_size:,} bytes): removed by the "
                         "next writer run")  # fmt: skip
    bucket_ok: bool | None = None
    if settings.persist_db:
        bucket_ok = _check_bucket(settings, lines)
    manifest = hf.load_history_manifest(make_storage(settings))
    if manifest and manifest.files:
        days = sorted({f.date for f in manifest.files})
        lines.append(f"sealed history: {len(manifest.files)} files, sessions {days[0]} to "
                     f"{days[-1]}, under {make_storage(settings).location}history/")  # fmt: skip
    else:
        lines.append("sealed history: none yet")
    if not local_ok:
        lines += _recovery(settings, path, bucket_ok, manifest)
    return local_ok and bucket_ok is not False, lines


def _summary(path: Path) -> str:
    with Store(path, read_only=True) as store:
        snapshots = store.count("chain_snapshots")
        sessions = store.rows("SELECT min(session), max(session) FROM chain_snapshots")[0]
        version = store.schema_version
    span = f", sessions {sessions[0]} to {sessions[1]}" if sessions[0] else ""
    return f"schema version {version}, {snapshots:,} snapshots{span}"


def _check_bucket(settings: Settings, lines: list[str]) -> bool:
    state = DatabaseState(make_state_storage(settings), settings.database)
    info = state.storage.head(state.key)
    if info is None:
        lines.append(f"bucket copy {state.location}: none")
        return True
    record = state.checksum_record()
    with tempfile.TemporaryDirectory(prefix="ocd-check-") as tmp:
        copy = Path(tmp) / "ocd.duckdb"
        state.storage.get_file(state.key, copy)
        problem = verify_file(copy)
        recorded_here = record is not None and record.version == info.version
        if problem is None and recorded_here and file_sha256(copy) != record.sha256:  # type: ignore[union-attr]
            problem = "its sha256 differs from the one recorded at persist"
    recorded = (
        "checksum recorded"
        if record and record.version == info.version
        else ("no checksum recorded for this version")
    )
    if problem is None:
        lines.append(f"bucket copy {state.location}: ok, {info.size:,} bytes, {recorded}")
        return True
    lines.append(f"bucket copy {state.location}: DAMAGED: {problem} ({recorded})")
    return False


def _recovery(settings: Settings, path: Path, bucket_ok: bool | None, manifest: Any) -> list[str]:
    out = ["", "to recover:"]
    if bucket_ok:
        out.append(f"  - the bucket's copy is whole: move {path.name} aside and run "
                   "`ocd.py db pull --force`")  # fmt: skip
    out.append(f"  - {'or ' if bucket_ok else ''}start afresh: `mv {path} {path}.damaged`; the "
               "next cycle creates a new database and backfills daily history")  # fmt: skip
    if manifest and manifest.files:
        out.append("  - every closed session is sealed under history/ (docs/history.md): "
                   "query it with DuckDB, or stage it with `ocd.py import` in a data dir "
                   "of its own")  # fmt: skip
    return out


def run(settings: Settings) -> int:
    try:
        whole, lines = check(settings)
    except OCDError as exc:
        print(f"ocd: db check: {exc}")
        return 1
    print("\n".join(lines))
    return 0 if whole else 74
