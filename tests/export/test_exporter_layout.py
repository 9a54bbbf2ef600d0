"""What one export_all publishes, on both adapters: keys, documents, archives, manifest."""

from __future__ import annotations

import itertools
import re
from datetime import timedelta
from pathlib import Path
from xml.etree import ElementTree

from exportkit import (
    ARCHIVE_KEY,
    ISO_Z,
    LATEST,
    PUBLISHED,
    RESULT_FIELDS,
    WATCHLIST,
    Clock,
    WrappedStorage,
    add_scan,
    assert_complete,
    assert_documents_keep_their_contracts,
    check_document,
    gunzip,
    index_rows,
    keys,
    manifest_of,
    sibling,
    strict_loads,
)

from chalicelib import exportformat as fmt
from chalicelib.config import Settings
from chalicelib.storage.base import Storage
from chalicelib.write import exporter as exporter_module
from chalicelib.write.exporter import JSONExporter
from chalicelib.write.store import Store


def test_export_all_publishes_the_documented_layout(
    storage: Storage, make_exporter, clock: Clock
) -> None:
    counting = WrappedStorage(storage)
    results = make_exporter(counting).export_all()

    manifest = manifest_of(storage)
    stored = keys(storage)
    assert set(PUBLISHED.values()) | {fmt.MANIFEST_KEY} <= stored
    # One chain, one history and one features document per ticker, chains/<TICKER>_<digest>.json,
    # daily/… and features/… (one directory per kind, none per ticker), named by the manifest.
    assert set(manifest.chains) == set(manifest.histories) == set(WATCHLIST)
    assert set(manifest.feature_sets) == set(WATCHLIST)
    named_by = (("chains", manifest.chains), ("daily", manifest.histories),
                ("features", manifest.feature_sets))  # fmt: skip
    for prefix, named in named_by:
        for ticker, key in named.items():
            assert re.fullmatch(rf"{prefix}/{re.escape(ticker)}_[0-9a-f]{{20}}\.json", key), key
        assert keys(storage, f"{prefix}/") == set(named.values())
    per_ticker = {key for _, named in named_by for key in named.values()}
    # One gzip archive per kind and one of the manifest, named by the generation; nothing else.
    archives = keys(storage, fmt.ARCHIVE_PREFIX)
    matches = [ARCHIVE_KEY.match(key) for key in archives]
    assert all(matches), archives
    assert sorted(m.group(1) for m in matches if m) == sorted([*fmt.PUBLISHED_KINDS, "manifest"])
    assert f"archive/feed_{manifest.generation}.atom.gz" in archives  # the feed is XML
    assert {m.group(2) for m in matches if m} == {manifest.generation}
    assert manifest.generation == f"00000001-{clock.now:%Y%m%dT%H%M%S}Z"
    assert stored == set(PUBLISHED.values()) | {fmt.MANIFEST_KEY} | archives | per_ticker
    assert set(manifest.archives) == set(fmt.PUBLISHED_KINDS)
    assert set(manifest.archives.values()) < archives

    # Checksums and sizes match the stored bytes exactly; archives hold the same bytes; every
    # document keeps its contract.
    documents = assert_complete(storage, manifest)
    assert set(documents) == set(PUBLISHED.values()) | per_ticker
    assert_documents_keep_their_contracts(storage, manifest)
    for kind, key in LATEST.items():
        doc = check_document(documents[key], kind, manifest.generation)
        assert doc["generated_at"] == fmt.iso(clock.now)
        assert manifest.documents[key].rows == doc["count"]
    feed = ElementTree.fromstring(documents[fmt.FEED_KEY])  # tests/delivery validates it
    assert feed.tag == "{http://www.w3.org/2005/Atom}feed"
    assert manifest.documents[fmt.FEED_KEY].rows == len(feed.findall(f"{feed.tag[:-4]}entry"))
    index = check_document(documents["chains.json"], "chains")
    rows = index_rows(index)
    assert [row["ticker"] for row in rows] == sorted(WATCHLIST)
    for row in rows:
        assert row["key"] == manifest.chains[row["ticker"]]
        assert row["history_key"] == manifest.histories[row["ticker"]]
        chain = check_document(documents[row["key"]], "chain", manifest.generation)
        assert chain["ticker"] == row["ticker"]
        assert chain["count"] == row["contracts"] == manifest.documents[row["key"]].rows > 0
        assert row["expirations"] == len(chain["expirations"]) > 0
        assert ISO_Z.match(chain["as_of"])
        assert chain["session"] is not None
        assert row["features_key"] == manifest.feature_sets[row["ticker"]]
        feature_set = check_document(documents[row["features_key"]], "feature_set",
                                     manifest.generation)  # fmt: skip
        assert feature_set["ticker"] == row["ticker"] and feature_set["features"]
        assert ISO_Z.match(feature_set["as_of"])
        history = check_document(documents[row["history_key"]], "history", manifest.generation)
        assert history["ticker"] == row["ticker"]
        assert history["count"] == manifest.documents[row["history_key"]].rows > 0
        closes = [row["close_at"] for row in fmt.history_rows(history["columns"])]
        assert max(closes) < chain["session"]["close_at"]
    archived_manifest = [key for key in archives if key.startswith("archive/manifest_")]
    assert gunzip(storage, archived_manifest[0]) == storage.get(fmt.MANIFEST_KEY).data

    # Manifest: generation, ISO time, per-kind results; it counts its own writes.
    raw = strict_loads(storage.get(fmt.MANIFEST_KEY).data)
    assert ISO_Z.match(raw["generated_at"])
    assert raw["previous_generation"] is None
    assert manifest.storage_writes == len(counting.puts) == len(stored)
    assert counting.puts[-1] == fmt.MANIFEST_KEY  # published last
    assert set(results) == set(fmt.PUBLISHED_KINDS)
    for kind, result in results.items():
        assert set(result.model_dump()) == RESULT_FIELDS
        assert result.ok and result.error is None and result.kind == kind
        assert result.rows == manifest.documents[PUBLISHED[kind]].rows
        assert result.bytes >= manifest.documents[PUBLISHED[kind]].bytes
        assert result.duration_ms >= 0
        assert manifest.results[kind] == result
    assert results["chains"].keys_written == 2 + 3 * len(WATCHLIST)
    singles = set(fmt.PUBLISHED_KINDS) - {"chains"}
    assert results["chains"].bytes == sum(map(len, documents.values())) - sum(
        len(documents[PUBLISHED[k]]) for k in singles
    )
    assert all(results[k].keys_written == 2 for k in singles)


REBUILT = ("scans", fmt.DELIVERY_KIND)


def test_a_second_export_adds_archives_and_a_generation(
    storage: Storage, exporter, store, clock: Clock
) -> None:
    exporter.export_all()
    first = manifest_of(storage)
    first_docs = assert_complete(storage, first)
    first_archives = keys(storage, fmt.ARCHIVE_PREFIX)

    clock.advance(minutes=5)
    add_scan(store, clock.now - timedelta(minutes=1))  # new content for scans only
    exporter.export_all()
    second = manifest_of(storage)
    assert_complete(storage, second)
    assert fmt.generation_order(second.generation) == fmt.generation_order(first.generation) + 1
    assert second.previous_generation == first.generation
    archives = keys(storage, fmt.ARCHIVE_PREFIX)
    # A new archive for the rebuilt kinds (the new scan's, and the delivery status, which every
    # export rewrites) and the manifest; the others keep theirs.
    assert archives - first_archives == {
        f"archive/{kind}_{second.generation}.json.gz" for kind in (*REBUILT, "manifest")
    }
    # The first generation's archives are untouched and still hold its latest documents.
    for kind, archive in first.archives.items():
        assert gunzip(storage, archive) == first_docs[PUBLISHED[kind]]
        assert (second.archives[kind] != archive) is (kind in REBUILT)
    for kind in fmt.KINDS:
        wrote = second.generation if kind == "scans" else first.generation
        assert check_document(storage.get(LATEST[kind]).data, kind)["generation"] == wrote
        assert second.documents[LATEST[kind]].generation == wrote


def test_exports_in_the_same_second_do_not_overwrite_archives(
    storage: Storage, exporter, store, clock: Clock
) -> None:
    add_scan(store, clock.now - timedelta(minutes=2))
    exporter.export_all()
    first = manifest_of(storage)
    first_docs = assert_complete(storage, first)
    add_scan(store, clock.now - timedelta(minutes=1))
    exporter.export_all()  # the clock has not moved
    second = manifest_of(storage)
    second_docs = assert_complete(storage, second)

    stamp = f"{clock.now:%Y%m%dT%H%M%S}Z"
    assert (first.generation, second.generation) == (f"00000001-{stamp}", f"00000002-{stamp}")
    for kind, manifest, docs in (("scans", first, first_docs), ("scans", second, second_docs)):
        assert manifest.archives[kind] == f"archive/{kind}_{manifest.generation}.json.gz"
        assert gunzip(storage, manifest.archives[kind]) == docs[LATEST[kind]]
    assert first_docs[LATEST["scans"]] != second_docs[LATEST["scans"]]
    for manifest in (first, second):
        archived = gunzip(storage, f"archive/manifest_{manifest.generation}.json.gz")
        assert strict_loads(archived)["generation"] == manifest.generation


def test_generations_and_archives_sort_in_publication_order_when_the_clock_steps_back(
    storage: Storage, exporter, store, clock: Clock
) -> None:
    start = clock.now
    published = []
    for offset in (0, -60, -2 * 24 * 60, 1, 1):  # minutes from the first export
        clock.now = start + timedelta(minutes=offset)
        add_scan(store, start + timedelta(seconds=len(published)))  # scans are rebuilt
        exporter.export_all()
        manifest = manifest_of(storage)
        assert_complete(storage, manifest)
        published.append(manifest)

    generations = [m.generation for m in published]
    assert len(set(generations)) == len(generations)
    assert sorted(generations, key=fmt.generation_order) == generations
    assert sorted(generations) == generations  # the ids sort as plain strings too
    for before, after in itertools.pairwise(published):
        assert after.previous_generation == before.generation
    # Archives sort in publication order as well, so "newest" means "published last".
    for kind in ("scans", "manifest"):
        assert fmt.archives_newest_first(storage, kind) == [
            f"archive/{kind}_{m.generation}.json.gz" for m in reversed(published)
        ]
    newest = [m.generation for m in fmt.archived_manifests(storage)]
    assert newest == list(reversed(generations))


def test_a_lost_manifest_does_not_make_the_next_export_reuse_a_generation(
    storage: Storage, exporter, clock: Clock
) -> None:
    exporter.export_all()
    clock.advance(hours=-3)  # the clock steps back, then manifest.json is lost
    exporter.export_all()
    before = manifest_of(storage)
    storage.delete(fmt.MANIFEST_KEY)

    exporter.export_all()
    after = manifest_of(storage)
    assert after.previous_generation == before.generation
    assert fmt.generation_order(after.generation) > fmt.generation_order(before.generation)
    assert_complete(storage, after)


def test_batches_and_writer_threads_do_not_change_a_byte(
    storage: Storage, store, settings, clock: Clock, monkeypatch
) -> None:
    JSONExporter(store, storage, settings, clock=clock, writers=8).export_all()
    other = sibling(storage, "sequential")
    monkeypatch.setattr(exporter_module, "CHAIN_BATCH_ROWS", 1)  # one ticker per query
    JSONExporter(store, other, settings, clock=clock, writers=1).export_all()

    threaded, sequential = manifest_of(storage), manifest_of(other)
    assert threaded.generation == sequential.generation
    assert threaded.documents == sequential.documents
    assert threaded.chains == sequential.chains
    assert threaded.histories == sequential.histories
    assert threaded.archives == sequential.archives
    assert keys(storage) == keys(other)
    for key in keys(storage) - {fmt.MANIFEST_KEY, *keys(storage, "archive/manifest_")}:
        assert storage.get(key).data == other.get(key).data, key


def test_per_ticker_documents_are_written_inline_locally_and_on_threads_to_s3(
    small_store: Store, small_settings: Settings, tmp_path: Path, aws_env: None
) -> None:
    from moto import mock_aws

    from chalicelib.storage.local import LocalStorage
    from chalicelib.storage.s3 import S3Storage

    assert JSONExporter(small_store, LocalStorage(tmp_path / "x"), small_settings).writers == 1
    with mock_aws():
        s3 = S3Storage("bucket", "exports/")
        assert JSONExporter(small_store, s3, small_settings).writers == 8
    assert JSONExporter(small_store, s3, small_settings, writers=3).writers == 3
