"""Delta export: per-ticker documents are rewritten only when their data changed, and only
trusted while they are still in the storage as written (finding 4 of issue 15)."""

from __future__ import annotations

import pytest
from exportkit import (
    LATEST,
    PUBLISHED,
    T2,
    WATCHLIST,
    Clock,
    WrappedStorage,
    assert_complete,
    check_document,
    env_for,
    index_rows,
    keys,
    manifest_of,
)

from chalicelib import exportformat as fmt
from chalicelib.config import load_settings
from chalicelib.storage.base import Storage
from chalicelib.write.scheduler import Scheduler

DOCS = 3  # per ticker: chain, history and features documents
MAX_WRITES = DOCS * len(WATCHLIST) + 20  # the write budget of one export


def test_an_export_without_new_snapshots_rewrites_no_chain_document(
    storage: Storage, make_exporter, clock: Clock
) -> None:
    make_exporter().export_all()
    first = manifest_of(storage)
    per_ticker = [*first.chains.values(), *first.histories.values(), *first.feature_sets.values()]
    versions = {key: storage.head(key) for key in per_ticker}

    clock.advance(minutes=5)
    counting = WrappedStorage(storage)
    results = make_exporter(counting).export_all()
    second = manifest_of(storage)

    assert all(result.ok for result in results.values())
    assert results["chains"].keys_skipped == DOCS * len(WATCHLIST) + 1  # and chains.json
    rewritten = {kind: r.keys_written for kind, r in results.items() if r.keys_written}
    assert rewritten == {fmt.DELIVERY_KIND: 2}  # the status names the generation releasing alerts
    assert not [key for key in counting.puts if key.startswith(fmt.TICKER_PREFIXES)]
    assert second.chains == first.chains and second.histories == first.histories
    assert second.feature_sets == first.feature_sets
    for key in per_ticker:
        assert second.documents[key] == first.documents[key]  # same sha, same generation
        assert second.documents[key].generation == first.generation
        assert storage.head(key) == versions[key]  # the object itself was not touched
    # Nothing else changed: every other latest document (the feed's too) and its archive stand;
    # the export writes the delivery status, the manifest and their archives only.
    delivery = f"archive/{fmt.DELIVERY_KIND}_{second.generation}.json.gz"
    assert second.archives == {**first.archives, fmt.DELIVERY_KIND: delivery}
    for kind, key in PUBLISHED.items():
        assert (second.documents[key] == first.documents[key]) is (kind != fmt.DELIVERY_KIND)
    assert sorted(counting.puts) == sorted(
        [delivery, fmt.DELIVERY_KEY, f"archive/manifest_{second.generation}.json.gz",
         fmt.MANIFEST_KEY]
    )  # fmt: skip
    assert counting.puts[-1] == fmt.MANIFEST_KEY
    assert second.storage_writes == 4
    assert_complete(storage, second)
    # The index still points at the documents, which still carry their own generation.
    index = check_document(storage.get(LATEST["chains"]).data, "chains", first.generation)
    assert {row["ticker"]: row["key"] for row in index_rows(index)} == first.chains


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

    assert results["chains"].keys_skipped == 0  # a new session: the histories move on too
    assert results["chains"].keys_written == 2 + DOCS * len(WATCHLIST)  # features are new too
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

    assert results["chains"].keys_skipped == DOCS * (len(WATCHLIST) - 1)
    assert results["chains"].keys_written == 2 + DOCS
    assert sorted(key for key in counting.puts if key.startswith(fmt.TICKER_PREFIXES)) == sorted(
        [second.chains["SPY"], second.histories["SPY"], second.feature_sets["SPY"]]
    )
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


def _later_snapshot_of_the_same_session(store, ticker: str, minutes: int) -> None:
    """A copy of the ticker's snapshot ``minutes`` later, in the same session (as a collect
    late in the session would add), with its bid moved so the chain differs."""
    store.rows(
        "INSERT INTO chain_snapshots SELECT * REPLACE (as_of + to_minutes(?) AS as_of) "
        "FROM chain_snapshots WHERE ticker = ?",
        [minutes, ticker],
    )
    store.rows(
        "INSERT INTO option_quotes SELECT * REPLACE (as_of + to_minutes(?) AS as_of, "
        "bid + 0.01 AS bid) FROM option_quotes WHERE ticker = ?",
        [minutes, ticker],
    )


def test_a_later_snapshot_of_the_session_keeps_the_history_document(
    storage: Storage, make_exporter, clock: Clock, store
) -> None:
    make_exporter().export_all()
    first = manifest_of(storage)
    _later_snapshot_of_the_same_session(store, "SPY", 10)

    clock.advance(minutes=15)
    counting = WrappedStorage(storage)
    results = make_exporter(counting).export_all()
    second = manifest_of(storage)

    assert second.chains["SPY"] != first.chains["SPY"]
    assert second.histories == first.histories  # history changes once a session, not a snapshot
    assert second.feature_sets == first.feature_sets  # no new features were computed
    assert [key for key in counting.puts if key.startswith(fmt.TICKER_PREFIXES)] == [
        second.chains["SPY"]
    ]
    assert results["chains"].keys_skipped == DOCS * len(WATCHLIST) - 1
    assert_complete(storage, second)


def test_a_rebackfill_rewrites_the_history_document(
    storage: Storage, make_exporter, clock: Clock, store
) -> None:
    make_exporter().export_all()
    first = manifest_of(storage)
    day = store.rows(
        "SELECT min(day) + 30 FROM daily_history WHERE ticker = 'JPM' AND source = 'backfill'"
    )[0][0]
    store.rows(  # a backfill again, from a source that disagrees about one close
        "UPDATE daily_history SET close = close + 1 WHERE ticker = 'JPM' AND day = ?", [day]
    )

    clock.advance(minutes=5)
    make_exporter().export_all()
    second = manifest_of(storage)

    assert second.histories["JPM"] != first.histories["JPM"]
    assert second.chains == first.chains
    assert {t: k for t, k in second.histories.items() if t != "JPM"} == {
        t: k for t, k in first.histories.items() if t != "JPM"
    }
    history = fmt.history_rows(
        check_document(storage.get(second.histories["JPM"]).data, "history")["columns"]
    )
    old = fmt.history_rows(
        check_document(storage.get(first.histories["JPM"]).data, "history")["columns"]
    )
    changed = [
        i
        for i, (a, b) in enumerate(zip(history, old, strict=True))
        if a["underlying_price"] != b["underlying_price"]
    ]
    assert len(changed) == 1 and history[changed[0]]["close_at"].startswith(str(day))


def test_deleted_per_ticker_documents_are_written_again(
    storage: Storage, make_exporter, clock: Clock
) -> None:
    """Before: the next export skipped them (same fingerprints) and published a manifest
    naming documents that were gone, so cold readers served nothing until the data changed."""
    make_exporter().export_all()
    first = manifest_of(storage)
    gone = [*first.chains.values(), first.histories["SPY"]]
    storage.delete_many(gone)

    clock.advance(minutes=5)
    results = make_exporter().export_all()
    second = manifest_of(storage)

    # the other histories, and every features document
    assert results["chains"].keys_skipped == 2 * len(WATCHLIST) - 1
    assert_complete(storage, second)  # every document it names is there, as named
    for key in gone:
        assert key not in second.documents or storage.head(key) is not None
    assert set(second.chains.values()).isdisjoint(first.chains.values())  # rebuilt, new keys


def test_a_damaged_document_of_the_same_size_is_repaired_within_the_hour(
    storage: Storage, make_exporter, clock: Clock
) -> None:
    make_exporter().export_all()
    first = manifest_of(storage)
    key = first.chains["SPY"]
    data = bytearray(storage.get(key).data)
    data[len(data) // 2] ^= 0x01  # one flipped bit: same size, wrong checksum
    storage.put(key, bytes(data))

    clock.advance(minutes=5)  # the hourly verification is not due: a stat cannot see it
    make_exporter().export_all()
    assert manifest_of(storage).chains["SPY"] == key

    clock.advance(hours=1)
    make_exporter().export_all()
    repaired = manifest_of(storage)
    assert repaired.chains["SPY"] != key
    assert repaired.verified_at == clock.now
    assert_complete(storage, repaired)
    clock.advance(minutes=5)  # verified: the next export trusts what it checked
    counting = WrappedStorage(storage)
    make_exporter(counting).export_all()
    assert not [k for k in counting.puts if k.startswith(fmt.TICKER_PREFIXES)]
    assert manifest_of(storage).verified_at == repaired.verified_at


def test_an_unchanged_latest_document_that_went_missing_is_written_again(
    storage: Storage, make_exporter, clock: Clock
) -> None:
    make_exporter().export_all()
    first = manifest_of(storage)
    storage.delete(LATEST["alerts"])

    clock.advance(minutes=5)
    counting = WrappedStorage(storage)
    results = make_exporter(counting).export_all()
    second = manifest_of(storage)

    assert results["alerts"].keys_written == 2
    assert second.archives["alerts"] != first.archives["alerts"]
    assert second.documents[LATEST["alerts"]].generation == second.generation
    assert {LATEST["alerts"], second.archives["alerts"]} <= set(counting.puts)
    assert_complete(storage, second)


@pytest.mark.parametrize("storage", ["local", "s3"], indirect=True)
def test_the_manifest_this_process_published_is_not_parsed_again_unless_it_changed(
    storage: Storage, make_small_exporter, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.write import exporter as exporter_module

    parsed: list[bytes] = []
    real = fmt.Manifest.model_validate_json
    monkeypatch.setattr(fmt.Manifest, "model_validate_json",
                        lambda data, **kw: parsed.append(data) or real(data, **kw))  # fmt: skip
    exporter = make_small_exporter()
    exporter.export_all()
    first = manifest_of(storage)  # parses it (once)
    _, kept = exporter_module._PUBLISHED[storage.location]
    assert kept == first  # what the process kept is what a reader parses
    parsed.clear()
    clock.advance(minutes=5)
    exporter.export_all()
    assert parsed == []  # the stored bytes were the ones published: not parsed again
    second = manifest_of(storage)
    assert second.previous_generation == first.generation
    # Another writer's manifest (here: the first one, put back) is read from the storage.
    storage.put(fmt.MANIFEST_KEY, fmt.dumps(first.model_dump(mode="json")))
    parsed.clear()
    clock.advance(minutes=5)
    exporter.export_all()
    assert len(parsed) == 1
    assert manifest_of(storage).previous_generation == first.generation
