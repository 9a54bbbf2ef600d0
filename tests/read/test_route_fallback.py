"""The fallback matrix through the HTTP routes, on both adapters: never a 500, always honest
about which copy was served (``source`` in the body, ``X-Data-Source`` in the headers)."""

from __future__ import annotations

import pytest
from chalice.test import Client
from readkit import DAMAGES, T1, T2, Site, body, damage, get, stored_alerts

from chalicelib import exportformat as fmt
from chalicelib.exportformat import iso


def served_from(response, source: str, generation: str | None) -> dict:
    assert response.status_code == 200, response.body[:300]
    data = body(response)
    assert data["source"] == source
    assert response.headers["X-Data-Source"] == source
    assert data["generation"] == generation
    return data


@pytest.mark.parametrize("how", DAMAGES)
def test_damaged_latest_alerts_come_from_the_archive(fresh: Site, client: Client, how: str) -> None:
    damage(fresh, "alerts.json", how)
    first = get(client, "/alerts/latest")
    data = served_from(first, "archive", fresh.generations[1])
    assert len(data["alerts"]) == data["total_count"] == len(stored_alerts(fresh.stores.db2))
    again = get(client, "/alerts/latest")  # warm: same answer, same ETag
    served_from(again, "archive", fresh.generations[1])
    assert again.headers["ETag"] == first.headers["ETag"]


@pytest.mark.parametrize("how", ["random", "other_content"])
def test_damaged_archive_too_serves_the_older_generation(
    fresh: Site, client: Client, how: str
) -> None:
    damage(fresh, "alerts.json", how)
    damage(fresh, fresh.manifest().archives["alerts"], how)
    data = served_from(get(client, "/alerts/latest/summary"), "archive", fresh.generations[0])
    assert [a["id"] for a in data["alerts"]] == [a.id for a in stored_alerts(fresh.stores.db1)]
    assert data["generated_at"] == iso(fresh.archived_manifest(fresh.generations[0]).generated_at)


@pytest.mark.parametrize("how", ["missing", "truncated"])
def test_everything_damaged_is_an_empty_200(fresh: Site, client: Client, how: str) -> None:
    for kind in fmt.KINDS:
        damage(fresh, fmt.latest_key(kind), how)
        for key in fmt.archives_newest_first(fresh.storage, kind):
            damage(fresh, key, how)
    for path, rows in (("/alerts/latest", "alerts"), ("/scans/latest", "scans"),
                       ("/tickers", "tickers"), ("/alerts?ticker=SPY", "alerts")):  # fmt: skip
        data = served_from(get(client, path), "none", None)
        assert data[rows] == [] and data["total_count"] == 0
        assert data["generated_at"] is None and data["age_seconds"] is None
    # The manifest is intact, so tickers are known and their chain documents still served.
    assert served_from(get(client, "/options/SPY/expirations"), "latest", fresh.generations[1])
    assert get(client, "/health").status_code == 200


def test_nothing_exported_at_all(empty_site: Site, client: Client) -> None:
    health = get(client, "/health")
    assert health.status_code == 200
    data = body(health)
    assert (data["status"], data["generation"], data["source"]) == ("empty", None, "none")
    assert data["storage"]["backend"] == empty_site.backend
    for path in ("/alerts/latest", "/alerts/latest/summary", "/alerts", "/scans/latest",
                 "/tickers"):  # fmt: skip
        served_from(get(client, path), "none", None)
    for path in ("/options/SPY/snapshot", "/alerts/ticker/SPY", "/features/SPY/latest"):
        assert get(client, path).status_code == 404  # no export names any ticker yet


@pytest.mark.parametrize("how", ["missing", "random"])
def test_missing_manifest_is_replaced_by_the_newest_archived_one(
    fresh: Site, client: Client, how: str
) -> None:
    damage(fresh, fmt.MANIFEST_KEY, how)
    health = body(get(client, "/health"))
    assert health["generation"] == fresh.generations[1]
    assert health["source"] == "archive"
    data = served_from(get(client, "/alerts/latest"), "latest", fresh.generations[1])
    assert data["total_count"] == len(stored_alerts(fresh.stores.db2))
    served_from(get(client, "/options/JPM/history"), "latest", fresh.generations[1])


@pytest.mark.parametrize("how", DAMAGES)
def test_damaged_chain_document_serves_the_older_generation(
    fresh: Site, client: Client, how: str
) -> None:
    damage(fresh, fresh.manifest().chains["SPY"], how)
    snapshot = served_from(get(client, "/options/SPY/snapshot"), "archive", fresh.generations[0])
    assert snapshot["as_of"] == iso(T1) and snapshot["calls"] and snapshot["puts"]
    served_from(get(client, "/options/SPY/expirations"), "archive", fresh.generations[0])
    aapl = served_from(get(client, "/options/AAPL/snapshot"), "latest", fresh.generations[1])
    assert aapl["as_of"] == iso(T2)


def test_chain_damaged_everywhere_is_an_empty_200(fresh: Site, client: Client) -> None:
    damage(fresh, fresh.manifest().chains["SPY"], "random")
    damage(fresh, fresh.archived_manifest(fresh.generations[0]).chains["SPY"], "missing")
    snapshot = served_from(get(client, "/options/SPY/snapshot"), "none", None)
    assert (snapshot["calls"], snapshot["puts"], snapshot["expiration"]) == ([], [], None)
    assert served_from(get(client, "/options/SPY/history"), "none", None)["history"] == []
    # the features have their own document, which is intact
    features = served_from(get(client, "/features/SPY/latest"), "latest", fresh.generations[1])
    assert features["features"]
    assert get(client, "/options/SPY/snapshot?expiration=2026-12-18").status_code == 404


def test_features_damaged_everywhere_are_null_not_an_error(fresh: Site, client: Client) -> None:
    named = {fresh.manifest().feature_sets["SPY"],
             fresh.archived_manifest(fresh.generations[0]).feature_sets["SPY"]}  # fmt: skip
    for key in named:
        damage(fresh, key, "random")
    data = served_from(get(client, "/features/SPY/latest"), "none", None)
    assert (data["ticker"], data["features"], data["missing"]) == ("SPY", None, {})
    assert served_from(get(client, "/options/SPY/snapshot"), "latest", fresh.generations[1])


def test_ticker_alerts_do_not_read_chain_documents(fresh: Site, client: Client) -> None:
    damage(fresh, fresh.manifest().chains["AAPL"], "missing")
    data = served_from(get(client, "/alerts/ticker/AAPL"), "latest", fresh.generations[1])
    assert data["total_count"] == sum(a.ticker == "AAPL" for a in stored_alerts(fresh.stores.db2))


def _index_rows(site: Site) -> dict[str, dict]:
    import orjson

    columns = orjson.loads(site.read("chains.json"))["columns"]
    return {r["ticker"]: r for r in fmt.table_rows(columns, list(columns))}


def test_tickers_never_mix_features_of_another_generation(fresh: Site, client: Client) -> None:
    """features.json of generation 2 damaged and its archive gone: generation 1's features
    are the only ones readable, and must not stand beside generation 2's prices (finding 5)."""
    gen1, gen2 = fresh.generations
    damage(fresh, "features.json", "random")
    fresh.delete(fresh.manifest().archives["features"])
    assert get(client, "/features/SPY/latest").status_code == 200  # per-ticker docs are intact
    data = served_from(get(client, "/tickers"), "latest", gen2)
    (fallback,) = data["fallbacks"]
    assert (fallback["part"], fallback["generation"], fallback["source"]) == (
        "features", gen1, "archive")  # fmt: skip
    assert gen1 in fallback["reason"] and gen2 in fallback["reason"]
    index = _index_rows(fresh)
    for row in data["tickers"]:
        assert row["iv_rank"] is None and row["change_pct"] is None
        assert row["atm_iv"] == index[row["ticker"]]["atm_iv"]  # generation 2's, from the index
        assert row["as_of"] == iso(T2) and row["alert_count"] is not None


def test_tickers_never_mix_alerts_of_another_generation(fresh: Site, client: Client) -> None:
    gen1, gen2 = fresh.generations
    damage(fresh, "alerts.json", "truncated")
    fresh.delete(fresh.manifest().archives["alerts"])
    data = served_from(get(client, "/tickers"), "latest", gen2)
    assert [(f["part"], f["generation"]) for f in data["fallbacks"]] == [("alerts", gen1)]
    assert all(row["alert_count"] is None for row in data["tickers"])
    assert all(row["iv_rank"] is not None or row["atm_iv"] is not None for row in data["tickers"])


def test_tickers_of_one_generation_say_no_fallback(served: Site, client: Client) -> None:
    data = served_from(get(client, "/tickers"), "latest", served.generations[1])
    assert data["fallbacks"] == []
    assert sum(row["alert_count"] for row in data["tickers"]) == len(
        stored_alerts(served.stores.db2))  # fmt: skip
