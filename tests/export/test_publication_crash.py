"""Crash safety: a failure at any write of an export leaves a complete generation published.

The storage wrappers delegate to the real adapter (local disk or moto's S3) and fail the k-th
write, for every k of one export_all: a simulated process death (nothing after it runs), or an
ordinary storage error the exporter may catch.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from exportkit import (
    LATEST,
    PUBLISHED,
    SMALL_WATCHLIST,
    T2,
    Clock,
    CrashingStorage,
    FailingStorage,
    SimulatedCrash,
    WrappedStorage,
    add_alert,
    add_scan,
    assert_complete,
    assert_recoverable,
    keys,
    manifest_of,
)

from chalicelib import exportformat as fmt
from chalicelib.config import Settings
from chalicelib.storage.base import Storage
from chalicelib.write.exporter import JSONExporter
from chalicelib.write.scheduler import Scheduler
from chalicelib.write.store import Store

# The kinds an export rebuilds after a new session's collect: not the alerts and their feed (the
# detectors are edge-triggered: the second collect's findings were raised by the first), always
# the delivery status.
REBUILT = ("chains", "scans", "features", fmt.DELIVERY_KIND)
# One export with every per-ticker document changed (a new session): its chain, history and
# features documents, an archive per rebuilt kind, their latest documents, the manifest's
# archive and the manifest.
WRITES = 3 * len(SMALL_WATCHLIST) + 2 * len(REBUILT) + 2


@pytest.fixture
def later_store(small_db: Path, tmp_path: Path, small_settings: Settings) -> Iterator[Store]:
    """The small store with a second snapshot (T2): every document differs from T1's."""
    path = tmp_path / "later.duckdb"
    shutil.copyfile(small_db, path)
    with Store(path) as store:
        Scheduler(small_settings, store).collect(T2)
        yield store


@pytest.mark.parametrize(
    ("after", "writers"),
    [(False, 1), (True, 1), (False, 8)],
    ids=["dies-before-write", "dies-after-write", "dies-while-writing-on-threads"],
)
def test_a_crash_at_every_write_leaves_the_previous_generation_whole(
    storage: Storage,
    small_store: Store,
    small_settings: Settings,
    clock: Clock,
    after: bool,
    writers: int,
) -> None:
    JSONExporter(small_store, storage, small_settings, clock=clock).export_all()
    base = manifest_of(storage)
    base_manifest = storage.get(fmt.MANIFEST_KEY).data
    base_docs = assert_complete(storage, base)
    Scheduler(small_settings, small_store).collect(T2)  # every per-ticker document changes

    crashed_at: list[str] = []
    published = None
    for k in range(1, 3 * WRITES):
        clock.advance(minutes=1)
        crashing = CrashingStorage(storage, crash_at=k, after=after)
        exporter = JSONExporter(small_store, crashing, small_settings, clock=clock, writers=writers)
        try:
            exporter.export_all()
        except SimulatedCrash:
            pass
        else:
            published = manifest_of(storage)
            break
        crashed_at.append(crashing.crashed_on or "")
        if after and crashing.crashed_on == fmt.MANIFEST_KEY:
            # Died just after publishing: the new generation is out, and complete.
            published = manifest_of(storage)
            assert published.previous_generation == base.generation
            assert_complete(storage, published)
            break
        # The previous generation is still the published one, and every byte of it readable.
        assert storage.get(fmt.MANIFEST_KEY).data == base_manifest
        assert assert_recoverable(storage, base) == base_docs
        for key in [*base.chains.values(), *base.histories.values(), *base.feature_sets.values()]:
            assert storage.get(key).data == base_docs[key]

    # Every write of the export was a crash point once, in publication-protocol order (the
    # per-ticker documents in any order when they are written on threads).
    labels = [_label(key) for key in crashed_at]
    n = 3 * len(SMALL_WATCHLIST)
    per_ticker = [
        *(f"chain:{ticker}" for ticker in sorted(SMALL_WATCHLIST)),
        *(f"history:{ticker}" for ticker in sorted(SMALL_WATCHLIST)),
        *(f"features:{ticker}" for ticker in sorted(SMALL_WATCHLIST)),
    ]
    if writers > 1:  # the k-th write is whichever thread got there first: any of them
        assert set(labels[:n]) <= set(per_ticker)
        labels[:n] = per_ticker
    assert labels == [
        *per_ticker,
        *(f"archive:{kind}" for kind in REBUILT),
        *(PUBLISHED[kind] for kind in REBUILT),
        "archive:manifest",
        fmt.MANIFEST_KEY,
    ]
    assert published is not None
    assert fmt.generation_order(published.generation) > fmt.generation_order(base.generation)
    # No generation id was used twice, not even by exports that died after archiving theirs.
    archived = [m.generation for m in fmt.archived_manifests(storage)]
    assert len(set(archived)) == len(archived)
    assert published.generation == archived[0]
    assert set(published.chains) == set(SMALL_WATCHLIST)
    assert not set(published.chains.values()) & set(base.chains.values())
    assert not set(published.histories.values()) & set(base.histories.values())
    assert not set(published.feature_sets.values()) & set(base.feature_sets.values())
    if not after:  # a normal export followed the crashes: it rewrote everything, then cleaned
        assert published.storage_writes == WRITES
        assert_complete(storage, published)
        kept = list(fmt.archived_manifests(storage, 3))
        for prefix, named in ((fmt.CHAINS_PREFIX, "chains"), (fmt.HISTORY_PREFIX, "histories"),
                              (fmt.FEATURE_SET_PREFIX, "feature_sets")):  # fmt: skip
            referenced = {k for m in kept for k in getattr(m, named).values()}
            assert set(getattr(base, named).values()) <= referenced
            assert keys(storage, prefix) == referenced
    # And exporting carries on normally from whatever the crashes left.
    clock.advance(minutes=1)
    results = JSONExporter(small_store, storage, small_settings, clock=clock).export_all()
    assert all(result.ok for result in results.values())
    final = manifest_of(storage)
    assert final.previous_generation == published.generation
    assert fmt.generation_order(final.generation) > fmt.generation_order(archived[0])
    assert_complete(storage, final)


def _label(key: str) -> str:
    if key.startswith(fmt.ARCHIVE_PREFIX):
        return "archive:" + key.removeprefix(fmt.ARCHIVE_PREFIX).split("_")[0]
    if key.startswith(fmt.CHAINS_PREFIX):
        return "chain:" + key.split("/")[1].partition("_")[0]  # <TICKER>_<digest>.json
    if key.startswith(fmt.HISTORY_PREFIX):
        return "history:" + key.split("/")[1].partition("_")[0]  # <TICKER>_<digest>.json
    if key.startswith(fmt.FEATURE_SET_PREFIX):
        return "features:" + key.split("/")[1].partition("_")[0]  # <TICKER>_<digest>.json
    return key


@pytest.mark.parametrize("storage", ["local"], indirect=True)  # exporter logic; S3 is slow
def test_a_failing_write_at_any_point_never_publishes_a_broken_generation(
    storage: Storage, small_store: Store, later_store: Store, small_settings: Settings, clock: Clock
) -> None:
    """Each round: publish T1's data, then T2's with its k-th write failing (all of T2's chain
    documents differ from T1's, so every round makes the same writes)."""
    for k in range(1, 3 * WRITES):
        clock.advance(minutes=1)
        JSONExporter(small_store, storage, small_settings, clock=clock).export_all()
        base = manifest_of(storage)
        base_docs = assert_complete(storage, base)

        clock.advance(minutes=1)
        failing = FailingStorage(storage, fail_at=k)
        try:
            results = JSONExporter(later_store, failing, small_settings, clock=clock).export_all()
        except OSError:
            results = None
        if failing.failed_on is None:  # k is past the last write: every point was tried
            assert k == WRITES + 1
            assert_complete(storage, manifest_of(storage))
            break
        published = manifest_of(storage)
        if results is None:
            # The error escaped while latest documents or the manifest were being written.
            assert not failing.failed_on.startswith(fmt.TICKER_PREFIXES)
            assert published == base
            assert assert_recoverable(storage, base) == base_docs
            continue
        # The error hit one kind: that kind keeps its previous documents, the rest publish.
        failed = [kind for kind, result in results.items() if not result.ok]
        assert len(failed) == 1
        kind = failed[0]
        assert kind == ("chains" if failing.failed_on.startswith(fmt.TICKER_PREFIXES)
                        else _label(failing.failed_on).removeprefix("archive:"))  # fmt: skip
        assert "injected storage fault" in (results[kind].error or "")
        assert published.previous_generation == base.generation
        documents = assert_recoverable(storage, published)
        assert published.documents[PUBLISHED[kind]] == base.documents[PUBLISHED[kind]]
        assert published.archives[kind] == base.archives[kind]
        assert documents[PUBLISHED[kind]] == base_docs[PUBLISHED[kind]]
        if kind == "chains":
            assert published.chains == base.chains
            assert published.histories == base.histories
            assert published.feature_sets == base.feature_sets
        for other in set(REBUILT) - {kind}:
            assert published.documents[PUBLISHED[other]].generation == published.generation
    else:
        pytest.fail("the export never completed")


def test_archives_of_a_crashed_export_are_never_reused(
    storage: Storage, small_store: Store, small_settings: Settings, clock: Clock
) -> None:
    """Three exports in one second, the second dying after its archives: none overwritten,
    and the third takes the next generation id, not the dead one's."""
    exporter = JSONExporter(small_store, storage, small_settings, clock=clock)
    exporter.export_all()
    first = manifest_of(storage)
    for kind, offset in (("alerts", 1), ("scans", 2)):  # new content: these are rebuilt
        (add_alert if kind == "alerts" else add_scan)(small_store, clock.now - timedelta(
            minutes=offset))  # fmt: skip
    crashing = CrashingStorage(storage, key=LATEST["alerts"])  # dies after the archives
    with pytest.raises(SimulatedCrash):
        JSONExporter(small_store, crashing, small_settings, clock=clock).export_all()
    orphans = {
        key: storage.get(key).data
        for key in keys(storage, fmt.ARCHIVE_PREFIX)
        if key not in first.archives.values() and not key.startswith("archive/manifest_")
    }
    # The new alert's feed and the delivery status were archived too.
    rebuilt = {"alerts", "scans", fmt.FEED_KIND, fmt.DELIVERY_KIND}
    assert {fmt.parse_archive_key(k).kind for k in orphans} == rebuilt  # type: ignore[union-attr]
    dead = {fmt.parse_archive_key(key).seq for key in orphans}  # type: ignore[union-attr]
    assert dead == {fmt.generation_order(first.generation) + 1}

    exporter.export_all()
    published = manifest_of(storage)
    assert_complete(storage, published)
    assert fmt.generation_order(published.generation) == fmt.generation_order(first.generation) + 2
    assert not set(published.archives.values()) & set(orphans)
    for key, data in orphans.items():
        assert storage.get(key).data == data


@pytest.mark.parametrize("writers", [1, 8])
def test_per_ticker_documents_are_synced_before_the_manifest_names_them(
    storage: Storage, small_store: Store, small_settings: Settings, clock: Clock, writers: int
) -> None:
    """Chain and history documents are written without a sync each (``put_deferred``); one
    ``sync_deferred`` makes them durable, and it comes before the manifest is written."""
    spy = WrappedStorage(storage)
    JSONExporter(small_store, spy, small_settings, clock=clock, writers=writers).export_all()
    per_ticker = [i for i, key in enumerate(spy.puts) if key.startswith(fmt.TICKER_PREFIXES)]
    manifest_at = spy.puts.index(fmt.MANIFEST_KEY)
    assert len(per_ticker) == 3 * len(SMALL_WATCHLIST)
    assert spy.syncs, "the deferred writes were never synced"
    synced_through = max(n for n in spy.syncs if n <= manifest_at)
    assert max(per_ticker) < synced_through <= manifest_at
    assert_complete(spy, manifest_of(spy))
