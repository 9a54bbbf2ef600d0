"""What the writer owns it replaces (finding 3 of issue 15, writer side): a latest document or
manifest that is a symlink, or that cannot be read, is replaced by a regular file through an
atomic write; a symlink is never followed out of the root, and what it points at is untouched."""

from __future__ import annotations

from pathlib import Path

import pytest
from exportkit import (
    LATEST,
    Clock,
    WrappedStorage,
    add_alert,
    add_scan,
    assert_complete,
    manifest_of,
)

from chalicelib import exportformat as fmt
from chalicelib.storage.base import StoredObject
from chalicelib.storage.local import LocalStorage


class UnreadableManifest(WrappedStorage):
    """``manifest.json`` exists but cannot be read (a file mode an operator got wrong)."""

    def _get(self, key: str) -> StoredObject:
        if key == fmt.MANIFEST_KEY:
            raise PermissionError(13, "Permission denied", key)
        return self.inner.get(key)


pytestmark = pytest.mark.parametrize("storage", ["local"], indirect=True)  # files and links


@pytest.fixture
def local(storage: LocalStorage) -> LocalStorage:
    return storage


@pytest.mark.parametrize("name", [LATEST["alerts"], fmt.MANIFEST_KEY])
def test_a_symlink_in_place_of_a_document_is_replaced_not_followed(
    local: LocalStorage, make_small_exporter, small_store, clock: Clock, tmp_path: Path, name: str
) -> None:
    make_small_exporter(local).export_all()
    first = manifest_of(local)
    outside = tmp_path / "outside.json"
    outside.write_bytes(b'{"planted": true}')
    link = local.root / name
    link.unlink()
    link.symlink_to(outside)

    clock.advance(minutes=5)
    add_alert_and_scan(small_store, clock)
    results = make_small_exporter(local).export_all()

    assert all(result.ok for result in results.values())
    assert not link.is_symlink() and link.is_file()
    assert outside.read_bytes() == b'{"planted": true}'  # never written through the link
    second = manifest_of(local)
    assert fmt.generation_order(second.generation) == fmt.generation_order(first.generation) + 1
    assert_complete(local, second)


def add_alert_and_scan(store, clock: Clock) -> None:
    """New content for alerts and scans: both latest documents are written again."""
    add_alert(store, clock.now)
    add_scan(store, clock.now)


def test_an_unreadable_manifest_is_replaced_and_the_sequence_continues(
    local: LocalStorage, make_small_exporter, clock: Clock
) -> None:
    make_small_exporter(local).export_all()
    first = manifest_of(local)

    clock.advance(minutes=5)
    results = make_small_exporter(UnreadableManifest(local)).export_all()

    assert all(result.ok for result in results.values())
    second = manifest_of(local)
    assert second.previous_generation == first.generation  # read from its archive
    assert fmt.generation_order(second.generation) == fmt.generation_order(first.generation) + 1
    assert_complete(local, second)


def test_a_directory_symlinked_out_of_the_root_fails_the_kind_and_writes_nothing_outside(
    local: LocalStorage, make_small_exporter, small_store, clock: Clock, tmp_path: Path
) -> None:
    make_small_exporter(local).export_all()
    first = manifest_of(local)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    chains = local.root / "daily"
    for path in sorted(chains.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    chains.rmdir()
    chains.symlink_to(outside)  # the per-ticker history documents would land outside

    clock.advance(minutes=5)
    results = make_small_exporter(local).export_all()

    assert not results["chains"].ok and "outside" in (results["chains"].error or "")
    assert list(outside.iterdir()) == []
    assert manifest_of(local).chains == first.chains  # the kind kept its previous documents
