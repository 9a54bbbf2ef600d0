"""A kill after every step of seal → verify → record → manifest → delete, and of compaction:
nothing lost, nothing counted twice, the old file intact, and the next run finishes the job."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from lifekit import (
    INTRADAY,
    SESSIONS,
    Life,
    SimulatedCrash,
    after_close,
    assert_no_orphans,
    crash_at,
    ny,
    storage_for,
)

from chalicelib import historyformat as hf
from chalicelib.storage.base import Storage

SEAL_STEPS = ("seal.written", "seal.uploaded", "seal.verified", "seal.recorded", "seal.manifest",
              "retention.deleted")  # fmt: skip
COMPACTION_STEPS = ("compaction.copied", "compaction.verified", "compaction.swapped")
COMPACT_ALWAYS = {"compact_free_fraction": "0", "compact_min_free_mb": "0"}  # every deletion


def assert_accounted(life: Life) -> None:
    """Every snapshot ever collected is in the hot store or in a file the manifest names, and
    no snapshot is in two named files of one kind."""
    for kind in hf.SEAL_KINDS:
        sealed = Counter(life.sealed_snapshots(kind))
        assert not [s for s, n in sealed.items() if n > 1], f"{kind} sealed twice"
    intraday = set(life.sealed_snapshots("intraday"))
    assert life.collected <= life.snapshots() | intraday


def _lived(root: Path, storage: Storage, **overrides: str) -> Life:
    life = Life(root, storage, **overrides)
    life.session(SESSIONS[0])
    life.session(SESSIONS[1])
    life.session(SESSIONS[2], close=False)
    return life


def _state(life: Life) -> tuple[set, list]:
    manifest = life.manifest()
    return life.snapshots(), sorted(f.key for f in manifest.files) if manifest else []


@pytest.mark.parametrize("step", SEAL_STEPS + COMPACTION_STEPS)
def test_a_kill_after_any_step_loses_nothing(tmp_path: Path, storage: Storage, step: str) -> None:
    # The killed run seals SESSIONS[2] (all its closes are in) and, the next morning, deletes
    # what the windows no longer hold, then compacts (forced).
    compaction = step.startswith("compaction")
    overrides = COMPACT_ALWAYS if compaction else {}
    killed_at = ny(SESSIONS[3], INTRADAY[0]) if compaction else after_close(SESSIONS[2])
    restart_at = killed_at + timedelta(minutes=5)

    def lived(life: Life) -> Life:
        if compaction:
            life.collect(after_close(SESSIONS[2]))
        return life

    reference = lived(_lived(tmp_path / "ref", storage_for(storage, tmp_path, "ref"), **overrides))
    reference.collect(killed_at)
    reference.collect(restart_at)

    life = lived(_lived(tmp_path / "data", storage, **overrides))
    life.step = crash_at(step)
    with pytest.raises(SimulatedCrash):
        life.collect(killed_at)
    assert_accounted(life)  # on the file as the kill left it (the old one, before the swap)

    life.step = lambda name: None
    life.collect(restart_at)  # the restart
    assert_accounted(life)
    assert_no_orphans(life, storage)
    assert _state(life) == _state(reference)
    for leftover in (".compact", ".pre-compact"):
        assert not life.db.with_name(life.db.name + leftover).exists()


def test_compaction_shrinks_the_file_and_keeps_every_row(tmp_path: Path, storage: Storage) -> None:
    life = _lived(tmp_path / "data", storage)
    life.collect(after_close(SESSIONS[2]))
    for day in SESSIONS[3:5]:
        life.session(day)
    from chalicelib.write.store import Store

    with Store(life.db) as store:
        before_counts = store.table_counts()
        before = store.size()
        result = store.compact()
        after = store.size()
        assert store.table_counts() == before_counts
    assert result.bytes_before == before.bytes and result.bytes_after == after.bytes
    assert after.free_blocks <= 1 and after.bytes <= before.bytes
    assert not life.db.with_name(life.db.name + ".pre-compact").exists()


def test_the_writer_lock_holds_while_the_file_is_swapped(tmp_path: Path, storage: Storage) -> None:
    """Between closing the old file and opening the new one DuckDB holds no lock: ours does."""
    import subprocess
    import sys

    life = _lived(tmp_path / "data", storage)
    seen: list[subprocess.CompletedProcess[str]] = []
    probe = (
        "import sys\n"
        "from chalicelib.errors import WriterBusy\n"
        "from chalicelib.write.store import Store\n"
        "try:\n    Store(sys.argv[1]).close()\n"
        "except WriterBusy as exc:\n    print(exc); sys.exit(75)\n"
    )

    def during_swap(name: str) -> None:
        if name == "compaction.swapped":
            seen.append(subprocess.run([sys.executable, "-c", probe, str(life.db)],
                                       capture_output=True, text=True, timeout=60,
                                       cwd=Path(__file__).parents[2]))  # fmt: skip

    from chalicelib.write.store import Store

    with Store(life.db) as store:
        store.compact(during_swap)
    assert seen and seen[0].returncode == 75, seen
    assert "writer busy" in seen[0].stdout
