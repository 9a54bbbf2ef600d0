"""One kind failing: the others publish, the failing kind's previous documents stay served."""

from __future__ import annotations

from datetime import timedelta

import pytest
from exportkit import (
    LATEST,
    RESULT_FIELDS,
    Clock,
    add_scan,
    assert_complete,
    assert_recoverable,
    check_document,
    keys,
    manifest_of,
)

from chalicelib import exportformat as fmt
from chalicelib.storage.base import Storage
from chalicelib.write.exporter import JSONExporter


def _break(monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    def broken(self: JSONExporter, pub: object, **params: object) -> object:
        raise RuntimeError(f"{kind} query failed")

    monkeypatch.setattr(JSONExporter, f"_{kind}", broken)


@pytest.mark.parametrize("kind", ["scans", "chains"])
def test_a_failing_kind_keeps_its_previous_document_and_archive(
    storage: Storage, exporter: JSONExporter, clock: Clock, kind: str, monkeypatch
) -> None:
    exporter.export_all()
    first = manifest_of(storage)
    first_docs = assert_complete(storage, first)

    _break(monkeypatch, kind)
    clock.advance(minutes=5)
    add_scan(exporter.store, clock.now - timedelta(minutes=1))  # scans have new content
    results = exporter.export_all()

    failed = results[kind]
    assert set(failed.model_dump()) == RESULT_FIELDS
    assert not failed.ok
    assert failed.error == f"RuntimeError: {kind} query failed"
    assert (failed.rows, failed.bytes, failed.keys_written) == (0, 0, 0)
    assert all(results[other].ok for other in set(fmt.KINDS) - {kind})

    second = manifest_of(storage)
    assert second.previous_generation == first.generation
    assert second.results[kind] == failed
    # The failing kind: same entry, same archive, same bytes (not rewritten), still readable.
    assert second.documents[LATEST[kind]] == first.documents[LATEST[kind]]
    assert second.archives[kind] == first.archives[kind]
    assert storage.get(LATEST[kind]).data == first_docs[LATEST[kind]]
    assert keys(storage, f"archive/{kind}_") == {first.archives[kind]}
    if kind == "chains":
        assert second.chains == first.chains
    documents = assert_recoverable(storage, second)
    assert check_document(documents[LATEST[kind]], kind)["generation"] == first.generation
    # The other kinds published: scans (new content) in the new generation, the unchanged
    # ones by keeping their documents.
    for other in set(fmt.KINDS) - {kind}:
        changed = other == "scans"
        wrote = second.generation if changed else first.generation
        assert second.documents[LATEST[other]].generation == wrote
        assert check_document(documents[LATEST[other]], other)["generation"] == wrote
        assert (second.archives[other] != first.archives[other]) is changed

    monkeypatch.undo()  # the kind recovers at the next export
    clock.advance(minutes=5)
    assert all(result.ok for result in exporter.export_all().values())
    third = manifest_of(storage)
    if kind == "scans":  # rebuilt: its content changed meanwhile
        assert third.documents[LATEST[kind]].generation == third.generation
    else:  # the chains' content did not change: the published documents stand
        assert third.documents[LATEST[kind]] == first.documents[LATEST[kind]]
    assert_complete(storage, third)


def test_a_kind_failing_at_the_first_export_is_absent_not_empty(
    storage: Storage, exporter: JSONExporter, monkeypatch
) -> None:
    _break(monkeypatch, "features")
    results = exporter.export_all()
    assert not results["features"].ok
    manifest = manifest_of(storage)
    assert LATEST["features"] not in manifest.documents
    assert "features" not in manifest.archives
    assert LATEST["features"] not in keys(storage)
    assert not keys(storage, "archive/features_")
    assert_complete(storage, manifest)
