"""Every route on both storage adapters, answers checked against the manifest and the store."""

from __future__ import annotations

import re
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from chalice.test import Client
from readkit import (
    ALERTS_1,
    ALERTS_2,
    GEN2_AT,
    T1,
    T2,
    WATCHLIST,
    Alert,
    Site,
    body,
    get,
    stored_alerts,
)

from chalicelib import catalogue
from chalicelib.exportformat import TABLE, expand_features, iso
from chalicelib.read.api import CONTRACT_FIELDS, SUMMARY_FIELDS
from chalicelib.write.store import Store

ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")

DATA_ROUTES = (
    "/scans/latest",
    "/alerts/latest",
    "/alerts/latest/summary",
    "/alerts",
    "/alerts/ticker/SPY",
    "/options/SPY/expirations",
    "/options/SPY/snapshot",
    "/options/SPY/history",
    "/features/SPY/latest",
    "/tickers",
)


def store_rows(site: Site, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with Store(site.stores.db2, read_only=True) as store:
        return store.rows(sql, params or [])


def alerts_newest_first(site: Site) -> list[Alert]:
    alerts = list(stored_alerts(site.stores.db2))
    assert {a[0] for a in ALERTS_1 + ALERTS_2} <= {a.id for a in alerts}  # ours, at least
    assert len({a.ticker for a in alerts}) == len(WATCHLIST) and len({a.score for a in alerts}) > 3
    return alerts


def assert_data_meta(site: Site, response: Any, source: str = "latest") -> dict[str, Any]:
    assert response.status_code == 200, response.body[:300]
    data = body(response)
    manifest = site.manifest()
    assert data["generation"] == manifest.generation
    assert data["generated_at"] == iso(manifest.generated_at)
    assert ISO_Z.match(data["generated_at"])
    assert isinstance(data["age_seconds"], int | float) and data["age_seconds"] >= 0
    assert data["source"] == source
    assert response.headers["X-Data-Source"] == source
    assert re.fullmatch(r'W/"[0-9a-f]+"', response.headers["ETag"])
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["Content-Type"] == "application/json"
    return data


@pytest.mark.parametrize("path", DATA_ROUTES)
def test_every_data_route_carries_generation_metadata_and_etag(
    served: Site, client: Client, path: str
) -> None:
    first = get(client, path)
    assert_data_meta(served, first)
    again = get(client, path, **{"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304
    assert again.body == b""
    assert again.headers["ETag"] == first.headers["ETag"]


def test_health_reports_generation_age_backend_and_results(served: Site, client: Client) -> None:
    response = get(client, "/health")
    assert response.status_code == 200
    data = body(response)
    manifest = served.manifest()
    assert data["status"] == "stale"  # the shared site was exported at a pinned, past time
    assert data["generation"] == manifest.generation == served.generations[-1]
    assert data["generated_at"] == iso(GEN2_AT)
    assert data["age_seconds"] > data["stale_after_seconds"] == 3 * 300
    assert data["source"] == "latest"
    assert data["storage"]["backend"] == served.backend
    assert set(data["exports"]) == {"alerts", "chains", "scans", "features", "feed", "delivery"}
    assert data["delivery"] == []  # no sink configured: each is off by default
    assert all(result["ok"] for result in data["exports"].values())
    assert data["exports"]["alerts"]["rows"] == len(alerts_newest_first(served))
    assert data["exports"]["chains"]["rows"] == len(WATCHLIST)


def test_scans_newest_first_with_limit(served: Site, client: Client) -> None:
    data = assert_data_meta(served, get(client, "/scans/latest"))
    assert data["total_count"] == 2
    assert [s["started_at"] for s in data["scans"]] == [iso(T2), iso(T1)]
    assert data["scans"][0]["status"] == "completed"
    limited = body(get(client, "/scans/latest?limit=1"))
    assert len(limited["scans"]) == 1 and limited["total_count"] == 2


def test_alerts_latest_newest_first_with_limit_and_min_score(served: Site, client: Client) -> None:
    stored = alerts_newest_first(served)
    data = assert_data_meta(served, get(client, "/alerts/latest"))
    assert [a["id"] for a in data["alerts"]] == [a.id for a in stored]
    assert data["total_count"] == len(stored)
    assert all(type(a["score"]) is float for a in data["alerts"])
    assert [a["score"] for a in data["alerts"]] == [a.score for a in stored]
    ours = next(a for a in data["alerts"] if a["id"] == "a2-jpm-rich")
    assert ours["metrics"] == {"iv_rank": 0.64, "z": 2.56}
    assert ours["created_at"] == "2026-11-27T21:04:00Z"

    limited = body(get(client, "/alerts/latest?limit=2"))
    assert [a["id"] for a in limited["alerts"]] == [a.id for a in stored[:2]]
    assert limited["total_count"] == len(stored)

    high = body(get(client, "/alerts/latest?min_score=64"))
    expected = [a.id for a in stored if a.score >= 64]
    assert [a["id"] for a in high["alerts"]] == expected
    assert high["total_count"] == len(expected) and 0 < len(expected) < len(stored)


def test_alerts_summary_has_only_the_short_fields(served: Site, client: Client) -> None:
    data = assert_data_meta(served, get(client, "/alerts/latest/summary?min_score=50&limit=3"))
    expected = [a.id for a in alerts_newest_first(served) if a.score >= 50]
    assert [a["id"] for a in data["alerts"]] == expected[:3]
    assert data["total_count"] == len(expected)
    for alert in data["alerts"]:
        assert tuple(alert) == SUMMARY_FIELDS
        assert isinstance(alert["score"], float)


@pytest.mark.parametrize(
    ("query", "wanted"),
    [
        ("ticker=spy", lambda a: a.ticker == "SPY"),
        ("ticker=SPY&detector=regime_shift",
         lambda a: (a.ticker, a.detector) == ("SPY", "regime_shift")),
        ("detector=rich_premium&min_score=60", lambda a: a.detector == "rich_premium"
         and a.score >= 60),
        ("ticker=AAPL&min_score=99", lambda a: False),
        ("ticker=&detector=", lambda a: True),
        ("min_score=40&limit=2", lambda a: a.score >= 40),
    ],
)  # fmt: skip
def test_alerts_query_filters(served: Site, client: Client, query: str, wanted: Any) -> None:
    data = assert_data_meta(served, get(client, f"/alerts?{query}"))
    expected = [a.id for a in alerts_newest_first(served) if wanted(a)]
    limit = 2 if "limit" in query else 100
    assert [a["id"] for a in data["alerts"]] == expected[:limit]
    assert data["total_count"] == len(expected)


def test_alerts_of_one_ticker(served: Site, client: Client) -> None:
    data = assert_data_meta(served, get(client, "/alerts/ticker/jpm?limit=1"))
    expected = [a.id for a in alerts_newest_first(served) if a.ticker == "JPM"]
    assert data["ticker"] == "JPM"
    assert [a["id"] for a in data["alerts"]] == expected[:1]
    assert data["total_count"] == len(expected) >= 2


def test_expirations_match_the_store(served: Site, client: Client) -> None:
    data = assert_data_meta(served, get(client, "/options/SPY/expirations"))
    (stored,) = store_rows(
        served,
        "SELECT list_transform(expirations, lambda e: strftime(e, '%Y-%m-%d')) "
        "FROM chain_snapshots WHERE ticker = 'SPY' AND as_of = ?",
        [T2.replace(tzinfo=None)],
    )
    assert data["ticker"] == "SPY"
    assert data["as_of"] == iso(T2)
    assert data["expirations"] == stored[0]
    assert data["expirations"] == sorted(data["expirations"]) and len(data["expirations"]) > 5


def _stored_contracts(site: Site, ticker: str, expiration: str, right: str) -> list[dict]:
    columns = ", ".join(f'"{c}"' for c in CONTRACT_FIELDS)
    rows = store_rows(
        site,
        f"SELECT {columns} FROM option_quotes WHERE ticker = ? AND as_of = ? "
        'AND expiration = ?::DATE AND "right" = ? ORDER BY strike',
        [ticker, T2.replace(tzinfo=None), expiration, right],
    )
    return [dict(zip(CONTRACT_FIELDS, row, strict=True)) for row in rows]


def _same(api_value: Any, stored: Any, name: str) -> bool:
    """The API's value is the store's, rounded as the catalogue says (exactly: DuckDB's
    rounding and Python's agree)."""
    if stored is None or api_value is None:
        return api_value is None and (stored is None or stored != stored)  # NULL or NaN -> null
    expected = catalogue.CONTRACT_FIELD_BY_NAME[name].precision.apply(float(stored))
    return api_value == pytest.approx(expected, rel=1e-12, abs=0)


@pytest.mark.parametrize("ticker", ["SPY", "JPM"])
def test_snapshot_defaults_to_nearest_expiration_and_equals_the_store(
    served: Site, client: Client, ticker: str
) -> None:
    data = assert_data_meta(served, get(client, f"/options/{ticker}/snapshot"))
    assert data["expiration"] == min(data["expirations"])
    assert data["as_of"] == iso(T2)
    assert isinstance(data["underlying_price"], float)
    for side, right in (("calls", "C"), ("puts", "P")):
        stored = _stored_contracts(served, ticker, data["expiration"], right)
        assert len(data[side]) == len(stored) > 0
        assert [c["strike"] for c in data[side]] == [s["strike"] for s in stored]
        for contract in data[side]:
            assert tuple(contract) == CONTRACT_FIELDS
        pairs = list(zip(data[side], stored, strict=True))
        for contract, row in pairs[:: max(1, len(pairs) // 7)]:
            mismatched = [f for f in CONTRACT_FIELDS if not _same(contract[f], row[f], f)]
            assert not mismatched, (contract, row)


def test_snapshot_of_a_chosen_expiration(served: Site, client: Client) -> None:
    listed = body(get(client, "/options/AAPL/expirations"))["expirations"]
    wanted = listed[3]
    data = assert_data_meta(served, get(client, f"/options/aapl/snapshot?expiration={wanted}"))
    assert data["ticker"] == "AAPL" and data["expiration"] == wanted
    stored = _stored_contracts(served, "AAPL", wanted, "P")
    assert len(data["puts"]) == len(stored)
    middle = len(stored) // 2
    assert all(_same(data["puts"][middle][f], stored[middle][f], f) for f in CONTRACT_FIELDS)


def test_history_window(served: Site, client: Client) -> None:
    week = assert_data_meta(served, get(client, "/options/SPY/history?days=7"))
    assert week["ticker"] == "SPY" and week["days"] == 7
    times = [row["as_of"] for row in week["history"]]
    assert times == sorted(times) and times[-1] == iso(T2)
    assert all(t > iso(T2 - timedelta(days=7)) for t in times)
    assert iso(T1) in times  # the T1 snapshot, not just daily closes
    default = body(get(client, "/options/SPY/history"))
    assert default["days"] == 30
    assert len(week["history"]) < len(default["history"]) <= 31
    (close_count,) = store_rows(
        served,
        "SELECT count(*) FROM daily_history WHERE ticker = 'SPY' AND day > ?::DATE",
        [(T2 - timedelta(days=30)).date()],
    )[0:1]
    assert len(default["history"]) >= min(close_count[0], 15)


def test_features_latest(served: Site, client: Client) -> None:
    data = assert_data_meta(served, get(client, "/features/SPY/latest"))
    rows = store_rows(
        served,
        "SELECT features::VARCHAR FROM features WHERE ticker = 'SPY' ORDER BY as_of DESC LIMIT 1",
    )
    assert data["ticker"] == "SPY"
    assert set(data) >= {"as_of", "features", "missing"}
    if rows:
        import orjson

        stored = orjson.loads(rows[0][0])
        assert data["features"] == expand_features(stored)
        # stored as a table, answered as the records compute_features made
        assert TABLE in stored["by_expiry"] and isinstance(data["features"]["by_expiry"], list)
        assert {"expiration", "atm_iv", "gex_by_strike"} <= set(data["features"]["by_expiry"][0])
    else:  # nothing computed features yet: an honest null, not an error
        assert data["features"] is None


def test_tickers(served: Site, client: Client) -> None:
    data = assert_data_meta(served, get(client, "/tickers"))
    assert data["total_count"] == len(WATCHLIST)
    rows = {row["ticker"]: row for row in data["tickers"]}
    assert set(rows) == set(WATCHLIST)
    counts = Counter(a.ticker for a in alerts_newest_first(served))
    prices = dict(
        store_rows(
            served,
            "SELECT ticker, underlying_price FROM chain_snapshots WHERE as_of = ?",
            [T2.replace(tzinfo=None)],
        )
    )
    for ticker, row in rows.items():
        assert row["alert_count"] == counts[ticker]
        assert row["last_price"] == pytest.approx(prices[ticker])
        assert row["as_of"] == iso(T2)
        assert row["contracts"] > 0 and row["expirations"] > 5
        feats = body(get(client, f"/features/{ticker}/latest"))["features"]
        assert row["change_pct"] == feats["change_pct"]  # the writer's, never recomputed
        assert row["next_earnings"] == feats["next_earnings"]
    assert any(isinstance(row["change_pct"], float) for row in rows.values())


def test_openapi_is_served(served: Site, client: Client) -> None:
    response = get(client, "/openapi.json")
    assert response.status_code == 200
    assert body(response)["openapi"].startswith("3.")
    revalidated = get(client, "/openapi.json", **{"If-None-Match": response.headers["ETag"]})
    assert revalidated.status_code == 304


def test_lowercase_and_padded_tickers_are_the_same_resource(served: Site, client: Client) -> None:
    upper = get(client, "/options/SPY/expirations")
    lower = get(client, "/options/spy/expirations")
    assert body(lower)["ticker"] == "SPY"
    assert lower.headers["ETag"] == upper.headers["ETag"]
    assert body(lower)["expirations"] == body(upper)["expirations"]
