"""A ticker from the store becomes part of a storage key: a bad one must not escape the root."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from exportkit import (
    BUCKET,
    LATEST,
    Clock,
    assert_complete,
    check_document,
    keys,
    manifest_of,
)

from chalicelib import exportformat as fmt
from chalicelib.storage.base import Storage
from chalicelib.storage.s3 import S3Storage
from chalicelib.write.store import Store


def _add_ticker(store: Store, ticker: str) -> None:
    """A copy of JPM's snapshot under another ticker, as if the store had been tampered with."""
    quoted = ticker.replace("'", "''")
    for table in ("chain_snapshots", "option_quotes"):
        store.rows(f"INSERT INTO {table} SELECT * REPLACE ('{quoted}' AS ticker) "
                   f"FROM {table} WHERE ticker = 'JPM'")  # fmt: skip


def _everything(storage: Storage, tmp_path: Path) -> set[str]:
    """Every object the backend holds: all bucket keys, or every file under the test's dir."""
    if isinstance(storage, S3Storage):
        pages = storage.client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
        return {item["Key"] for page in pages for item in page.get("Contents", ())}
    return {
        p.relative_to(tmp_path.parent).as_posix()
        for p in tmp_path.parent.rglob("*")
        if p.is_file() and ".duckdb" not in p.name
    }


@pytest.mark.parametrize("ticker", ["../X", "../../ESCAPE", "A/B", "..", "", "spy", "X Y"])
def test_a_ticker_that_cannot_form_a_key_fails_the_chains_kind_only(
    storage: Storage,
    small_store: Store,
    make_small_exporter,
    clock: Clock,
    tmp_path: Path,
    ticker: str,
) -> None:
    exporter = make_small_exporter()
    exporter.export_all()
    first = manifest_of(storage)
    before = _everything(storage, tmp_path)
    _add_ticker(small_store, ticker)

    clock.advance(minutes=5)
    results = exporter.export_all()

    assert not results["chains"].ok
    assert repr(ticker) in (results["chains"].error or "")
    assert all(results[kind].ok for kind in set(fmt.KINDS) - {"chains"})
    second = manifest_of(storage)
    assert second.chains == first.chains
    assert second.documents[LATEST["chains"]] == first.documents[LATEST["chains"]]
    assert_complete(storage, second)
    # Nothing was written for the bad ticker, inside the root or out of it.
    added = _everything(storage, tmp_path) - before
    assert not [key for key in added if "chains/" in key or ".." in key]
    root = "exports/" if isinstance(storage, S3Storage) else f"{tmp_path.name}/exports/"
    assert all(key.startswith(root) for key in added), added
    assert keys(storage, fmt.CHAINS_PREFIX) == set(first.chains.values())


def test_a_ticker_with_a_dot_is_exported(
    storage: Storage, small_store: Store, make_small_exporter
) -> None:
    _add_ticker(small_store, "BRK.B")
    assert all(result.ok for result in make_small_exporter().export_all().values())
    manifest = manifest_of(storage)
    assert re.fullmatch(r"chains/BRK\.B_[0-9a-f]{20}\.json", manifest.chains["BRK.B"])
    documents = assert_complete(storage, manifest)
    assert check_document(documents[manifest.chains["BRK.B"]], "chain")["ticker"] == "BRK.B"
