"""Generation ids are a sequence, not a clock (finding 2 of issue 15): one run with the clock
days ahead must not pin the ids of every later run, nor make archive keys collide."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from exportkit import (
    ARCHIVE_KEY,
    Clock,
    WrappedStorage,
    add_scan,
    assert_complete,
    keys,
    manifest_of,
)

from chalicelib import exportformat as fmt
from chalicelib.storage.base import Storage


def test_a_forward_clock_jump_does_not_pin_later_generations(
    storage: Storage, make_small_exporter, small_store, clock: Clock
) -> None:
    counting = WrappedStorage(storage)
    exporter = make_small_exporter(counting)
    start = clock.now
    clock.now = start + timedelta(days=5)  # one run with the clock five days ahead
    exporter.export_all()
    ahead = manifest_of(storage)
    published, attempts = [], []
    for minute in range(1, 13):  # then the clock is right again, an export a minute
        clock.now = start + timedelta(minutes=minute)
        add_scan(small_store, start - timedelta(days=1) + timedelta(minutes=minute))
        before = len(counting.puts)
        exporter.export_all()
        attempts.append(len(counting.puts) - before)
        manifest = manifest_of(storage)
        assert_complete(storage, manifest)
        published.append(manifest)

    assert [fmt.generation_order(m.generation) for m in published] == list(range(2, 14))
    for manifest in published:  # stamped by the clock of their own run, not the jumped one
        assert fmt.generation_time(manifest.generation) == manifest.generated_at.replace(
            microsecond=0
        )
        assert manifest.generated_at < ahead.generated_at
    # Every archive key names its own generation: no collision, no retry suffix, and no
    # export tries more writes than the one before it.
    archives = keys(storage, fmt.ARCHIVE_PREFIX)
    assert all(ARCHIVE_KEY.match(key) for key in archives), archives
    for manifest in published:  # scans are rebuilt every time (a new scan each)
        assert manifest.archives["scans"] == f"archive/scans_{manifest.generation}.json.gz"
        assert f"archive/manifest_{manifest.generation}.json.gz" in archives
    assert len(set(attempts)) == 1, attempts
    # "Newest" follows the sequence: the jumped generation is the oldest of them.
    assert fmt.archives_newest_first(storage, "scans")[-1] == ahead.archives["scans"]
    assert next(fmt.archived_manifests(storage)).generation == published[-1].generation


def test_ids_continue_the_format_1_sequence_and_sort_as_strings() -> None:
    now = datetime(2026, 11, 27, 21, 5, tzinfo=UTC)
    first = fmt.next_generation("20261201T000000Z-000041", now)
    assert first == "00000042-20261127T210500Z"
    assert fmt.generation_order(first) == 42
    later = [fmt.next_generation(first, now - timedelta(days=d)) for d in range(3)]
    assert {fmt.generation_order(g) for g in later} == {43}
    ids = [first]
    for _ in range(5):
        ids.append(fmt.next_generation(ids[-1], now - timedelta(days=len(ids))))
    assert sorted(ids) == ids == sorted(ids, key=fmt.generation_order)
    assert fmt.generation_order("not-an-id") == -1


def test_archive_keys_derive_from_the_generation_and_format_1_keys_sort_first() -> None:
    generation = "00000007-20261127T210500Z"
    key = fmt.archive_key("alerts", generation)
    assert key == f"archive/alerts_{generation}.json.gz"
    parsed = fmt.parse_archive_key(key)
    assert parsed is not None and (parsed.kind, parsed.seq) == ("alerts", 7)
    legacy = fmt.parse_archive_key("archive/alerts_20991231_235959_3.json.gz")
    assert legacy is not None and (legacy.seq, legacy.n) == (-1, 3)
    assert legacy.order < parsed.order  # a format-1 key is older than any format-2 one
    assert fmt.parse_archive_key("archive/alerts_x.json.gz") is None
