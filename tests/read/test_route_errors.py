"""Bad parameters, unknown things and API keys: clear JSON errors naming the field, never a 500."""

from __future__ import annotations

import pytest
from chalice.test import Client
from readkit import Site, body, get

TICKER_ROUTES = (
    "/alerts/ticker/{t}",
    "/options/{t}/expirations",
    "/options/{t}/snapshot",
    "/options/{t}/history",
    "/features/{t}/latest",
)
ALL_ROUTES = (
    "/scans/latest",
    "/alerts/latest",
    "/alerts/latest/summary",
    "/alerts",
    "/tickers",
    "/openapi.json",
    *(route.format(t="SPY") for route in TICKER_ROUTES),
)


def assert_error(response, status: int, error: str, field: str | None) -> dict:
    assert response.status_code == status, response.body[:300]
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    data = body(response)
    assert set(data) == {"error", "message", "details"}
    assert data["error"] == error
    assert isinstance(data["message"], str) and data["message"]
    assert isinstance(data["details"], list)
    if field is not None:
        assert data["details"] and data["details"][0]["field"] == field
        assert field in data["message"]
        assert all(isinstance(d["message"], str) for d in data["details"])
    return data


BAD_QUERIES = [
    ("/scans/latest?limit=abc", "limit"),
    ("/scans/latest?limit=1.5", "limit"),
    ("/scans/latest?limit=1.0", "limit"),
    ("/scans/latest?limit=1e2", "limit"),
    ("/scans/latest?limit=", "limit"),
    ("/scans/latest?limit=0", "limit"),
    ("/scans/latest?limit=-1", "limit"),
    ("/scans/latest?limit=101", "limit"),
    ("/scans/latest?limit=" + "9" * 400, "limit"),
    ("/alerts/latest?limit=501", "limit"),
    ("/alerts/latest?min_score=nan", "min_score"),
    ("/alerts/latest?min_score=NaN", "min_score"),
    ("/alerts/latest?min_score=inf", "min_score"),
    ("/alerts/latest?min_score=-inf", "min_score"),
    ("/alerts/latest?min_score=-1", "min_score"),
    ("/alerts/latest?min_score=101", "min_score"),
    ("/alerts/latest?min_score=1e400", "min_score"),
    ("/alerts/latest?min_score=high", "min_score"),
    ("/alerts/latest/summary?min_score=100.5", "min_score"),
    ("/alerts/latest/summary?limit=two", "limit"),
    ("/alerts?min_score=nan", "min_score"),
    ("/alerts?ticker=a%20b", "ticker"),
    ("/alerts?ticker=..%2F..%2Fetc", "ticker"),
    ("/alerts?ticker=ABCDEFGHIJK", "ticker"),
    ("/alerts?detector=Rich-Premium", "detector"),
    ("/alerts?detector=" + "x" * 65, "detector"),
    ("/alerts?limit=0", "limit"),
    ("/alerts/ticker/SPY?limit=x", "limit"),
    ("/options/SPY/history?days=0", "days"),
    ("/options/SPY/history?days=366", "days"),
    ("/options/SPY/history?days=7.0", "days"),
    ("/options/SPY/history?days=week", "days"),
    ("/options/SPY/snapshot?expiration=2026-13-01", "expiration"),
    ("/options/SPY/snapshot?expiration=2026-02-30", "expiration"),
    ("/options/SPY/snapshot?expiration=tomorrow", "expiration"),
    ("/options/SPY/snapshot?expiration=1764547200", "expiration"),
    ("/options/SPY/snapshot?expiration=2026-12-18T00:00:00", "expiration"),
    ("/options/SPY/snapshot?expiration=2026-12-1", "expiration"),
]


@pytest.mark.parametrize(("path", "field"), BAD_QUERIES)
def test_bad_parameters_are_400_naming_the_field(
    served: Site, client: Client, path: str, field: str
) -> None:
    assert_error(get(client, path), 400, "bad_request", field)


BAD_TICKERS = [
    "..%2F..%2Fetc",
    "..",
    "a%20b",
    "a b",
    "ABCDEFGHIJK",  # 11 characters
    "1SPY",
    "SP_Y",
    "%C3%9F",  # ß, which str.upper() would turn into the valid-looking "SS"
    "SPY%00",
    "%2E%2E",
]


@pytest.mark.parametrize("route", TICKER_ROUTES)
@pytest.mark.parametrize("ticker", BAD_TICKERS)
def test_bad_tickers_in_the_path_are_400(
    served: Site, client: Client, route: str, ticker: str
) -> None:
    assert_error(get(client, route.format(t=ticker)), 400, "bad_request", "ticker")


@pytest.mark.parametrize("route", TICKER_ROUTES)
def test_unknown_well_formed_ticker_is_404(served: Site, client: Client, route: str) -> None:
    for ticker in ("ZZZZ", "zzzz", "BRK.B"):
        data = assert_error(get(client, route.format(t=ticker)), 404, "not_found", "ticker")
        assert ticker.upper() in data["message"]


def test_unknown_expiration_is_404(served: Site, client: Client) -> None:
    data = assert_error(
        get(client, "/options/SPY/snapshot?expiration=2030-01-18"), 404, "not_found", "expiration"
    )
    assert "2030-01-18" in data["message"]


def test_unknown_route_is_not_a_500(served: Site, client: Client) -> None:
    # The gateway (API Gateway, and Chalice's local one) answers unknown paths itself.
    assert get(client, "/options/SPY").status_code in (403, 404)


@pytest.mark.parametrize("path", ALL_ROUTES)
def test_api_key_guards_every_route_but_health(
    served: Site, client: Client, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    monkeypatch.setenv("OCD_API_KEY", "s3cret-key")
    assert_error(get(client, path), 401, "unauthorized", "x-api-key")
    assert_error(get(client, path, **{"x-api-key": "wrong"}), 401, "unauthorized", "x-api-key")
    assert_error(get(client, path, **{"x-api-key": ""}), 401, "unauthorized", "x-api-key")
    assert get(client, path, **{"x-api-key": "s3cret-key"}).status_code == 200
    assert get(client, path, **{"X-Api-Key": "s3cret-key"}).status_code == 200


def test_health_needs_no_api_key(
    served: Site, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OCD_API_KEY", "s3cret-key")
    response = get(client, "/health")
    assert response.status_code == 200
    assert body(response)["generation"] == served.manifest().generation


def test_key_is_checked_before_parameters(
    served: Site, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OCD_API_KEY", "s3cret-key")
    assert get(client, "/scans/latest?limit=abc").status_code == 401
    assert get(client, "/options/ZZZZ/expirations").status_code == 401


def test_cors_origin_is_sent_on_data_and_errors(
    served: Site, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OCD_CORS_ORIGIN", "https://dash.example")
    for path in ("/tickers", "/scans/latest?limit=0", "/health"):
        response = get(client, path)
        assert response.headers["Access-Control-Allow-Origin"] == "https://dash.example"
    assert "ETag" in get(client, "/tickers").headers["Access-Control-Expose-Headers"]


def test_misconfiguration_is_a_json_500_that_leaks_nothing(
    served: Site, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OCD_STORAGE", "s3")
    monkeypatch.delenv("OCD_BUCKET", raising=False)
    response = get(client, "/tickers")
    data = assert_error(response, 500, "internal_error", None)
    assert "OCD_BUCKET" not in data["message"] and data["details"] == []
