"""On local disk a forked child writes the features documents while the exporter builds the
chains and histories: the generation is the one a single process publishes, byte for byte, and
a child that dies leaves nothing undone (the parent writes what it did not report)."""

from __future__ import annotations

import os
from typing import Any

import pytest
from exportkit import assert_complete, manifest_of, sibling

from chalicelib.storage.base import Storage
from chalicelib.write import exporter as exporter_module
from chalicelib.write import forked
from chalicelib.write.exporter import JSONExporter


@pytest.fixture
def forks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Fork from the first features document on; the blocks of each fork, as a list."""
    monkeypatch.setattr(exporter_module, "FORK_MIN_FEATURE_SETS", 1)
    calls: list[int] = []
    real = forked.in_two

    def spy(blocks: Any, *args: Any) -> Any:
        calls.append(len(blocks))
        return real(blocks, *args)

    monkeypatch.setattr(forked, "in_two", spy)
    return calls


def _single_process(storage: Storage, make_exporter) -> dict[str, Any]:
    alone = sibling(storage, "alone")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(exporter_module, "FORK_MIN_FEATURE_SETS", 10**9)
        make_exporter(alone).export_all()
    manifest = manifest_of(alone)
    return {"manifest": manifest, "documents": assert_complete(alone, manifest)}


def _child_failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage() == "fork_child_failed"]


@pytest.mark.parametrize("storage", ["local"], indirect=True)
def test_a_forked_export_publishes_what_one_process_does(
    storage: Storage, make_exporter, forks: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    reference = _single_process(storage, make_exporter)
    assert forks == []
    caplog.set_level("INFO", logger="ocd")
    results = make_exporter().export_all()
    assert forks == [2] and all(r.ok for r in results.values())
    assert _child_failures(caplog) == []  # the child wrote them
    manifest = manifest_of(storage)
    documents = assert_complete(storage, manifest)
    assert manifest.feature_sets == reference["manifest"].feature_sets
    assert manifest.chains == reference["manifest"].chains
    assert manifest.histories == reference["manifest"].histories
    for key in manifest.feature_sets.values():
        assert documents[key] == reference["documents"][key]
        assert manifest.documents[key] == reference["manifest"].documents[key]
    assert manifest.storage_writes == reference["manifest"].storage_writes


@pytest.mark.parametrize("storage", ["local"], indirect=True)
def test_when_the_child_dies_the_parent_writes_the_features_documents(
    storage: Storage,
    make_exporter,
    forks: list[int],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    reference = _single_process(storage, make_exporter)
    parent = os.getpid()
    real = JSONExporter._write_apart

    def dies_in_the_child(self: JSONExporter, *args: Any) -> Any:
        if os.getpid() != parent:
            os._exit(3)
        return real(self, *args)

    monkeypatch.setattr(JSONExporter, "_write_apart", dies_in_the_child)
    caplog.set_level("INFO", logger="ocd")
    results = make_exporter().export_all()
    assert forks == [2] and all(r.ok for r in results.values())
    assert _child_failures(caplog) == ["fork_child_failed"]
    manifest = manifest_of(storage)
    documents = assert_complete(storage, manifest)
    assert manifest.feature_sets == reference["manifest"].feature_sets
    assert all(documents[key] for key in manifest.feature_sets.values())
    assert manifest.storage_writes == reference["manifest"].storage_writes


@pytest.mark.parametrize("storage", ["s3"], indirect=True)
def test_s3_exports_do_not_fork(storage: Storage, make_exporter, forks: list[int]) -> None:
    make_exporter().export_all()
    manifest = manifest_of(storage)
    assert forks == [] and manifest.feature_sets
    assert_complete(storage, manifest)
