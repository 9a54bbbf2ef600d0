"""Delta export: per-ticker documents are rewritten only when their data changed."""

from __future__ import annotations

from exportkit import (
    LATEST,
    T2,
    WATCHLIST,
    Clock,
    WrappedStorage,
    assert_complete,
    check_document,
    env_for,
    keys,
    manifest_of,
)

from chalicelib import exportformat as fmt
from chalicelib.config import load_settings
from chalicelib.storage.base import Storage
from chalicelib.write.scheduler import Scheduler

MAX_WRITES = len(WATCHLIST) + 20  # the write budget of one export


def test_an_export_without_new_snapshots_rewrites_no_chain_document(
    storage: Storage, make_exporter, clock: Clock
) -> None:
    make_exporter().export_all()
    first = manifest_of(storage)
    versions = {key: storage.head(key) for key in first.chains.values()}

    clock.advance(minutes=5)
    counting = WrappedStorage(storage)
    results = make_exporter(counting).export_all()
    second = manifest_of(storage)

    assert results["chains"].ok
    assert results["chains"].keys_skipped == len(WATCHLIST)
    assert results["chains"].keys_written == 2  # its archive and chains.json
    assert not [key for key in counting.puts if key.startswith(fmt.CHAINS_PREFIX)]
    assert second.chains == first.chains
    for key in first.chains.values():
        assert second.documents[key] == first.documents[key]  # same sha, same generation
        assert second.documents[key].generation == first.generation
        assert storage.head(key) == versions[key]  # the object itself was not touched
    assert len(counting.puts) == second.storage_writes == 2 * len(fmt.PUBLISHED_KINDS) + 2
    assert_complete(storage, second)
    # The index still points at the documents, which still carry their own generation.
    index = check_document(storage.get(LATEST["chains"]).data, "chains", second.generation)
    assert {row["ticker"]: row["key"] for row in index["chains"]} == first.chains


def test_a_new_snapshot_rewrites_the_chain_documents(
    storage: Storage, make_exporter, clock: Clock, collect_again
) -> None:
    make_exporter().export_all()
    first = manifest_of(storage)
    collect_again(T2)

    clock.advance(days=3)
    counting = WrappedStorage(storage)
    results = make_exporter(counting).export_all()
    second = manifest_of(storage)

    assert results["chains"].keys_skipped == 0
    assert results["chains"].keys_written == 2 + len(WATCHLIST)
    assert set(second.chains) == set(first.chains)
    documents = assert_complete(storage, second)
    for ticker, key in second.chains.items():
        assert key != first.chains[ticker]
        assert key in counting.puts
        chain = check_document(documents[key], "chain", second.generation)
        assert (
            chain["as_of"]
            > check_document(storage.get(first.chains[ticker]).data, "chain")["as_of"]
        )
    # The manifest names this generation's chain documents only, not every one ever written.
    assert {key for key in second.documents if key.startswith(fmt.CHAINS_PREFIX)} == set(
        second.chains.values()
    )
    assert len(counting.puts) == second.storage_writes <= MAX_WRITES
    assert set(first.chains.values()) <= keys(storage)  # the previous generation still serves


def test_only_the_tickers_with_new_data_are_rewritten(
    storage: Storage, make_exporter, clock: Clock, store, tmp_path
) -> None:
    make_exporter().export_all()
    first = manifest_of(storage)
    spy_only = load_settings(env_for(tmp_path, watchlist="SPY"))
    Scheduler(spy_only, store).collect(T2)

    clock.advance(days=3)
    counting = WrappedStorage(storage)
    results = make_exporter(counting).export_all()
    second = manifest_of(storage)

    assert results["chains"].keys_skipped == len(WATCHLIST) - 1
    assert results["chains"].keys_written == 3
    assert [key for key in counting.puts if key.startswith(fmt.CHAINS_PREFIX)] == [
        second.chains["SPY"]
    ]
    assert second.chains["SPY"] != first.chains["SPY"]
    for ticker in set(WATCHLIST) - {"SPY"}:
        assert second.chains[ticker] == first.chains[ticker]
        assert second.documents[second.chains[ticker]].generation == first.generation
    assert_complete(storage, second)
    assert second.storage_writes <= MAX_WRITES


def test_storage_writes_stay_within_budget_over_many_exports(
    storage: Storage, make_exporter, clock: Clock
) -> None:
    exporter = make_exporter()
    for _ in range(4):
        clock.advance(minutes=5)
        counting = WrappedStorage(storage)
        exporter.storage = counting
        exporter.export_all()
        manifest = manifest_of(storage)
        assert len(counting.puts) == manifest.storage_writes <= MAX_WRITES
