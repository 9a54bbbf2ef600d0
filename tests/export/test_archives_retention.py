"""Retention: old archives and unreferenced chain documents go, what is served stays."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from exportkit import (
    LATEST,
    SMALL_WATCHLIST,
    T2,
    Clock,
    CrashingStorage,
    SimulatedCrash,
    add_alert,
    add_scan,
    assert_complete,
    assert_recoverable,
    keys,
    manifest_of,
)

from chalicelib import exportformat as fmt
from chalicelib.storage.base import Storage
from chalicelib.write.exporter import KEEP_ARCHIVES, KEEP_GENERATIONS, JSONExporter
from chalicelib.write.scheduler import Scheduler


def _stamps(storage: Storage, kind: str) -> set[datetime]:
    found = set()
    for key in keys(storage, f"archive/{kind}_"):
        parsed = fmt.parse_archive_key(key)
        assert parsed is not None and parsed.kind == kind
        found.add(parsed.when)
    return found


@pytest.mark.parametrize(("days", "hours_apart"), [(2, 12), (0, 1)])
def test_archives_past_retention_go_but_the_newest_three_per_kind_stay(
    storage: Storage, make_small_exporter, small_store, clock: Clock, days: int, hours_apart: int
) -> None:
    """A scan every export: scans are rebuilt (and archived) each time, as is the manifest;
    the other kinds are unchanged, so their one archive stays (the manifest names it)."""
    exporter = make_small_exporter(archive_retention_days=str(days))
    published: list[datetime] = []
    for _ in range(9):
        clock.advance(hours=hours_apart)
        add_scan(small_store, clock.now - timedelta(minutes=1))
        exporter.export_all()
        published.append(clock.now)
        manifest = manifest_of(storage)
        assert_complete(storage, manifest)
        cutoff = clock.now - timedelta(days=days)
        expected = {when for when in published if when >= cutoff}
        expected |= set(published[-KEEP_ARCHIVES:])
        for kind in ("scans", "manifest"):
            assert _stamps(storage, kind) == expected, kind
        for kind in ("alerts", "chains", "features"):
            assert _stamps(storage, kind) == {published[0]}, kind
            assert keys(storage, f"archive/{kind}_") == {manifest.archives[kind]}
    assert len(expected) == (5 if days else KEEP_ARCHIVES)  # both rules were exercised


def test_retention_keeps_the_archives_the_manifest_names(
    storage: Storage, make_small_exporter, small_store, clock: Clock, monkeypatch
) -> None:
    exporter = make_small_exporter(archive_retention_days="0")
    exporter.export_all()
    first = manifest_of(storage)
    # Three exports die after writing their archives: alerts and scans (new content each
    # time) get newer, orphan archives.
    for _ in range(3):
        clock.advance(minutes=5)
        add_alert(small_store, clock.now)
        add_scan(small_store, clock.now)
        with pytest.raises(SimulatedCrash):
            make_small_exporter(CrashingStorage(storage, key=LATEST["alerts"])).export_all()
    # Then alerts start failing, so the manifest keeps naming the first alerts archive.
    monkeypatch.setattr(JSONExporter, "_alerts", lambda *a, **k: 1 / 0)
    clock.advance(minutes=5)
    add_scan(small_store, clock.now)
    results = exporter.export_all()
    assert not results["alerts"].ok

    manifest = manifest_of(storage)
    assert manifest.archives["alerts"] == first.archives["alerts"]
    alerts_archives = keys(storage, "archive/alerts_")
    assert first.archives["alerts"] in alerts_archives  # older than the newest three, but named
    assert len(alerts_archives) == KEEP_ARCHIVES + 1
    assert first.archives["scans"] not in keys(storage)  # neither named nor among the newest
    assert len(keys(storage, "archive/scans_")) == KEEP_ARCHIVES
    # The served alerts document falls back to that archive if alerts.json goes.
    storage.delete(LATEST["alerts"])
    assert_recoverable(storage, manifest)


def test_chain_documents_go_once_the_newest_three_generations_do_not_name_them(
    storage: Storage, small_store, small_settings, make_small_exporter, clock: Clock
) -> None:
    exporter = make_small_exporter()
    generations = []
    for hour in range(5):
        if hour:  # a new snapshot every hour of the next session: every chain document changes
            Scheduler(small_settings, small_store).collect(T2 - timedelta(hours=5 - hour))
        clock.advance(hours=1)
        exporter.export_all()
        generations.append(manifest_of(storage))
        kept = generations[-KEEP_GENERATIONS:]
        referenced = {key for m in kept for key in m.chains.values()}
        assert keys(storage, fmt.CHAINS_PREFIX) == referenced
        assert len(referenced) == len(SMALL_WATCHLIST) * len(kept)
        histories = {key for m in kept for key in m.histories.values()}
        assert keys(storage, fmt.HISTORY_PREFIX) == histories
        for m in kept:  # every generation a reader may still hold can serve its chains
            for key in m.chains.values():
                assert fmt.sha256(storage.get(key).data) == m.documents[key].sha256
    assert not set(generations[0].chains.values()) & keys(storage)
    # The histories moved on once, with the session, and are shared by the later generations.
    assert not set(generations[0].histories.values()) & keys(storage)
    assert len({key for m in generations[1:] for key in m.histories.values()}) == len(
        SMALL_WATCHLIST
    )


def _directory_per_ticker(prefix: str) -> Callable[[str, str], str]:
    return lambda ticker, digest: f"{prefix}{ticker}/{digest}.json"


@pytest.mark.parametrize("storage", ["local"], indirect=True)
def test_documents_of_the_per_ticker_directory_layout_go_with_their_directories(
    storage: Storage,
    small_store,
    small_settings,
    make_small_exporter,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A store exported before the flat layout (``chains/<T>/<digest>.json``): its documents
    are served while they stand, then retention removes them and the directories they leave."""
    with monkeypatch.context() as patched:
        for name, prefix in (("chain_key", fmt.CHAINS_PREFIX), ("history_key", fmt.HISTORY_PREFIX),
                             ("feature_set_key", fmt.FEATURE_SET_PREFIX)):  # fmt: skip
            patched.setattr(fmt, name, _directory_per_ticker(prefix))
        make_small_exporter().export_all()
    old = manifest_of(storage)
    assert all(key.count("/") == 2 for key in old.chains.values())
    exporter = make_small_exporter()
    for hour in range(1, KEEP_GENERATIONS + 2):
        clock.advance(hours=1)
        if hour == 1:
            exporter.export_all()  # nothing new: the old documents stand, under their keys
            assert manifest_of(storage).chains == old.chains
            assert_complete(storage, manifest_of(storage))
            continue
        # a new session's snapshot: every chain and history document changes
        Scheduler(small_settings, small_store).collect(T2 - timedelta(hours=5 - hour))
        exporter.export_all()
    manifest = manifest_of(storage)
    assert_complete(storage, manifest)
    assert not [key for key in manifest.chains.values() if key.count("/") != 1]
    root = storage.root  # type: ignore[attr-defined]
    leftovers = [p for prefix in fmt.TICKER_PREFIXES for p in (root / prefix).iterdir()
                 if p.is_dir()]  # fmt: skip
    assert leftovers == []
    assert not set(old.chains.values()) & keys(storage)
