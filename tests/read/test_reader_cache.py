"""Caching: warm requests parse and read nothing; memory grows with what is read, bounded."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from chalice.test import Client
from readkit import WATCHLIST, CountingStorage, Site, body, get, stored_alerts

from chalicelib import exportformat as fmt
from chalicelib.read import service
from chalicelib.read.reader import ExportReader, LruCache

ROUTES = (
    "/scans/latest",
    "/alerts/latest?limit=3",
    "/alerts/latest/summary",
    "/alerts?ticker=SPY",
    "/alerts/ticker/SPY",
    "/options/SPY/expirations",
    "/options/SPY/snapshot",
    "/options/SPY/history",
    "/features/SPY/latest",
    "/tickers",
)


def app_reader(site: Site) -> ExportReader:
    return service.reader_for(site.settings)


@pytest.mark.parametrize("path", ROUTES)
def test_a_warm_request_parses_nothing(served: Site, client: Client, path: str) -> None:
    assert get(client, path).status_code == 200
    reader = app_reader(served)
    cold = reader.parses
    assert cold >= 2  # the manifest and at least one document
    for _ in range(2):
        assert get(client, path).status_code == 200
    assert reader.parses == cold


def test_other_queries_on_a_cached_document_parse_nothing(served: Site, client: Client) -> None:
    """Every route of a ticker reads its chain document; /features reads the ticker's
    features document and /history its history document (each kept apart, as they change on
    their own): one parse each, once."""
    get(client, "/options/SPY/snapshot")
    reader = app_reader(served)
    cold = reader.parses
    expirations = body(get(client, "/options/SPY/expirations"))["expirations"]
    for expiration in expirations[:4]:
        assert get(client, f"/options/SPY/snapshot?expiration={expiration}").status_code == 200
    assert reader.parses == cold
    for _ in range(2):
        get(client, "/features/SPY/latest")
        assert reader.parses == cold + 1
    get(client, "/options/SPY/history?days=3")
    assert reader.parses == cold + 2
    get(client, "/options/SPY/history?days=30")
    assert reader.parses == cold + 2


def test_a_new_export_is_parsed_again(fresh: Site, client: Client) -> None:
    assert body(get(client, "/alerts/latest"))["generation"] == fresh.generations[1]
    reader = app_reader(fresh)
    warm = reader.parses
    fresh.export(fresh.stores.db1, clock=lambda: datetime(2026, 11, 28, 12, tzinfo=UTC))
    data = body(get(client, "/alerts/latest"))
    assert data["generation"] == fresh.generations[-1]
    assert data["total_count"] == len(stored_alerts(fresh.stores.db1))
    assert reader.parses == warm + 2  # the new manifest and the new alerts document


def test_one_ticker_reads_only_its_own_document(served: Site) -> None:
    storage = CountingStorage(served.storage)
    reader = ExportReader(storage)
    loaded = reader.chain("SPY")
    assert loaded is not None and loaded.source == "latest"
    manifest = reader.manifest()
    assert manifest is not None
    assert storage.gets() == sorted([fmt.MANIFEST_KEY, manifest.chains["SPY"]])
    assert reader.parses == 2
    assert reader.tickers() == frozenset(WATCHLIST)


def test_a_warm_read_is_one_stat_or_head_and_no_get(served: Site) -> None:
    storage = CountingStorage(served.storage)
    reader = ExportReader(storage, manifest_ttl=0)
    reader.document("alerts"), reader.chain("JPM")
    storage.calls.clear()
    for _ in range(3):
        assert reader.document("alerts").source == "latest"
    assert storage.gets() == []
    assert dict(storage.calls) == {("head", fmt.MANIFEST_KEY): 3}


def test_a_manifest_ttl_spares_even_the_head(fresh: Site) -> None:
    storage = CountingStorage(fresh.storage)
    reader = ExportReader(storage, manifest_ttl=3600)
    first = reader.document("alerts")
    fresh.export()  # within the TTL the reader keeps answering from what it verified
    storage.calls.clear()
    again = reader.document("alerts")
    assert again.generation == first.generation == fresh.generations[1]
    assert not storage.calls
    assert ExportReader(fresh.storage).document("alerts").generation == fresh.generations[-1]


def test_cache_is_bounded_by_bytes(served: Site) -> None:
    manifest = served.manifest()
    sizes = {t: manifest.documents[manifest.chains[t]].bytes for t in WATCHLIST}
    budget = sizes["SPY"] + min(sizes.values()) // 2  # room for SPY, not SPY and another
    reader = served.reader(max_cached_bytes=budget)
    reader.chain("SPY")
    assert reader.cache.weight == sizes["SPY"]
    reader.chain("JPM")
    assert reader.cache.weight <= budget
    parses = reader.parses
    reader.chain("SPY")  # evicted by JPM: parsed again
    assert reader.parses == parses + 1
    assert reader.cache.weight <= budget


def test_lru_cache_limits() -> None:
    cache = LruCache(max_items=2, max_weight=10)
    cache.put("a", 1, 4)
    cache.put("b", 2, 4)
    assert cache.get("a") == 1  # a is now the most recent
    cache.put("c", 3, 4)  # over both limits: b goes
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
    cache.put("huge", 4, 11)  # heavier than the whole budget: not kept, nothing evicted
    assert cache.get("huge") is None and len(cache) == 2 and cache.weight == 8
    cache.put("a", 5, 2)  # replacing re-weighs
    assert cache.weight == 6
    cache.clear()
    assert len(cache) == 0 and cache.weight == 0


def test_cache_budget_follows_lambda_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", raising=False)
    assert service.cache_budget() == 64 << 20
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
    assert service.cache_budget() == (1024 << 20) // 10
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "32")
    assert service.cache_budget() == 4 << 20  # a floor
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "lots")
    assert service.cache_budget() == 64 << 20
