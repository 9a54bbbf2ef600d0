"""A full disk (finding 7 of issue 15, exporter part): the writer frees what retention allows
and tries once more; when that is not enough it publishes nothing, removes what the attempt
wrote (so it neither fills the disk further nor uses up a generation id) and says "disk full"."""

from __future__ import annotations

import builtins
import errno
from pathlib import Path

import orjson
import pytest
from exportkit import (
    LATEST,
    T2,
    Clock,
    CrashingStorage,
    SimulatedCrash,
    WrappedStorage,
    assert_complete,
    keys,
    manifest_of,
)

from chalicelib import exportformat as fmt
from chalicelib.exportstatus import STATUS_KEY
from chalicelib.storage.base import ObjectInfo, Storage
from chalicelib.write.exporter import DiskFull
from chalicelib.write.scheduler import Scheduler


class FullDisk(WrappedStorage):
    """A volume with ``free`` bytes left: a write that does not fit fails with ENOSPC, as the
    kernel's would, and deletes give their bytes back."""

    def __init__(self, inner: Storage, free: int) -> None:
        super().__init__(inner)
        self.free = free
        self.refused = 0

    def before_put(self, key: str, n: int) -> None:
        pass

    def _claim(self, key: str, data: bytes) -> None:
        old = self.inner.head(key)
        needed = len(data) - (old.size if old else 0)
        if needed > self.free:
            self.refused += 1
            raise OSError(errno.ENOSPC, "No space left on device", key)
        self.free -= needed

    def _put(self, key: str, data: bytes, **kwargs) -> ObjectInfo:  # type: ignore[override]
        self._claim(key, data)
        return super()._put(key, data, **kwargs)

    def put_deferred(self, key: str, data: bytes) -> None:
        self._claim(key, data)
        super().put_deferred(key, data)

    def _delete_many(self, keys: builtins.list[str]) -> int:
        for key in keys:
            info = self.inner.head(key)
            self.free += info.size if info else 0
        return self.inner.delete_many(keys)


def test_retention_makes_room_and_the_export_goes_through(
    storage: Storage, make_small_exporter, small_store, small_settings, clock: Clock
) -> None:
    make_small_exporter().export_all()
    first = manifest_of(storage)
    Scheduler(small_settings, small_store).collect(T2)  # every per-ticker document changes
    # Two exports die after writing their new per-ticker documents: orphans nobody names.
    for _ in range(2):
        clock.advance(minutes=5)
        with pytest.raises(SimulatedCrash):
            make_small_exporter(CrashingStorage(storage, key=LATEST["chains"])).export_all()
    named = {*first.chains.values(), *first.histories.values()}
    orphans = keys(storage, fmt.CHAINS_PREFIX) | keys(storage, fmt.HISTORY_PREFIX)
    orphans -= named
    assert orphans
    full = FullDisk(storage, free=0)  # no room at all: only deleting the orphans makes some

    clock.advance(minutes=5)
    results = make_small_exporter(full).export_all()

    assert full.refused >= 1  # the first attempt hit the full disk
    assert all(result.ok for result in results.values())
    published = manifest_of(storage)
    assert published.previous_generation == first.generation
    assert_complete(storage, published)
    assert not orphans & keys(storage)  # retention removed them to make room


def test_a_disk_that_stays_full_publishes_nothing_and_uses_no_generation(
    storage: Storage, make_small_exporter, small_store, small_settings, clock: Clock
) -> None:
    make_small_exporter().export_all()
    first = manifest_of(storage)
    before = {key: storage.get(key).data for key in keys(storage)}
    Scheduler(small_settings, small_store).collect(T2)

    for _ in range(3):  # it goes on failing; nothing accumulates, no id is used up
        clock.advance(minutes=5)
        with pytest.raises(DiskFull, match="disk full"):
            make_small_exporter(FullDisk(storage, free=20_000)).export_all()
        assert manifest_of(storage) == first
        assert keys(storage) == set(before)  # what the attempt wrote was removed again
        assert_complete(storage, first)

    clock.advance(minutes=5)
    assert all(r.ok for r in make_small_exporter().export_all().values())
    after = manifest_of(storage)
    assert fmt.generation_order(after.generation) == fmt.generation_order(first.generation) + 1


@pytest.mark.parametrize("storage", ["local"], indirect=True)  # the schedule's own storage
def test_the_export_schedule_reports_disk_full(
    storage: Storage, small_store, small_settings, monkeypatch, tmp_path: Path
) -> None:
    """Through the scheduled handler: ``export_status.json`` says "disk full", which /health
    reports as degraded, and the previous generation stays served."""
    from chalicelib.storage import factory
    from chalicelib.write import schedules

    small_store.checkpoint()
    small_store.close()  # the schedule opens the database itself
    real = factory.make_storage
    monkeypatch.setattr(factory, "make_storage", lambda s: FullDisk(real(s), free=1_000))
    monkeypatch.setenv("OCD_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("OCD_DB_PATH", str(tmp_path / "small.duckdb"))
    monkeypatch.setenv("OCD_WATCHLIST", "JPM,ZZZ")

    summary = schedules.export({})

    assert summary["ok"] is False and "disk full" in summary["error"]
    status = orjson.loads(storage.get(STATUS_KEY).data)
    assert status["ok"] is False and "disk full" in status["error"]
    assert fmt.MANIFEST_KEY not in keys(storage) and not keys(storage, fmt.ARCHIVE_PREFIX)
