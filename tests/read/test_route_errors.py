"""Bad parameters, unknown things and API keys: clear JSON errors naming the field, never a 500."""

from __future__ import annotations

import pytest
from chalice.test import Client
from readkit import Site, body, fresh_app, get, preflight

from chalicelib.analytics.detector_names import DETECTOR_NAMES

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


ORIGIN = "https://dash.example"


def test_cors_preflight_allows_the_api_key_header(
    served: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = fresh_app(monkeypatch, OCD_CORS_ORIGIN=ORIGIN, OCD_API_KEY="s3cret-key")
    for path in ("/tickers", "/options/SPY/snapshot", "/health", "/openapi.json"):
        answer = preflight(app, path, ORIGIN, "x-api-key")
        assert answer["statusCode"] == 200, path
        headers = answer["headers"]
        assert headers["Access-Control-Allow-Origin"] == ORIGIN
        allowed = headers["Access-Control-Allow-Headers"].lower().split(",")
        assert {"x-api-key", "if-none-match"} <= set(allowed)
        assert {"GET", "HEAD"} <= set(headers["Access-Control-Allow-Methods"].split(","))


def test_cors_origin_is_sent_on_data_and_errors(
    served: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = Client(fresh_app(monkeypatch, OCD_CORS_ORIGIN=ORIGIN))
    for path in ("/tickers", "/scans/latest?limit=0", "/health", "/options/ZZZZ/snapshot"):
        assert get(client, path).headers["Access-Control-Allow-Origin"] == ORIGIN, path
    exposed = get(client, "/tickers").headers["Access-Control-Expose-Headers"].split(",")
    assert {"ETag", "X-Data-Source"} <= set(exposed)


def test_no_cors_headers_without_an_origin(served: Site, client: Client) -> None:
    assert "Access-Control-Allow-Origin" not in get(client, "/tickers").headers


@pytest.mark.parametrize(
    ("path", "field", "words"),
    [
        ("/options/SPY/snapshot?expiry=2026-12-04", "expiry", "expiration"),
        ("/tickers?limit=5", "limit", "no query parameters"),
        ("/alerts?tickers=SPY", "tickers", "ticker, detector, min_score, limit"),
        ("/options/SPY/history?ticker=AAPL", "ticker", "days"),
        ("/health?verbose=1", "verbose", "no query parameters"),
        ("/openapi.json?format=yaml", "format", "no query parameters"),
        ("/scans/latest?limit=1&limit=2", "limit", "2 times"),
    ],
)
def test_unknown_or_repeated_parameters_are_400_naming_them(
    served: Site, client: Client, path: str, field: str, words: str
) -> None:
    data = assert_error(get(client, path), 400, "bad_request", field)
    assert words in data["details"][0]["message"]


def test_unknown_detector_is_400_listing_the_detectors(served: Site, client: Client) -> None:
    data = assert_error(get(client, "/alerts?detector=no_such_detector"), 400, "bad_request",
                        "detector")  # fmt: skip
    assert all(name in data["message"] for name in DETECTOR_NAMES)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("path", ["/tickers", "/health", "/static/app.js", "/"])
def test_other_methods_are_405_in_the_error_shape(
    served: Site, client: Client, method: str, path: str
) -> None:
    response = client.http.request(method, path)
    data = assert_error(response, 405, "method_not_allowed", None)
    assert method in data["message"]
    assert set(response.headers["Allow"].replace(" ", "").split(",")) == {"GET", "HEAD"}


def test_static_404_has_the_error_shape(served: Site, client: Client) -> None:
    data = assert_error(get(client, "/static/nope.js"), 404, "not_found", "name")
    assert "nope.js" in data["message"]


def test_health_without_the_key_tells_only_freshness(
    served: Site, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OCD_API_KEY", "s3cret-key")
    monkeypatch.setenv("OCD_STORAGE", served.backend)
    public = body(get(client, "/health"))
    assert set(public) == {"status", "generation", "generated_at", "age_seconds",
                           "stale_after_seconds", "market"}  # fmt: skip
    assert set(public["market"]) == {"state", "quotes_age_seconds"}  # ages only
    assert public["generation"] == served.manifest().generation
    wrong = body(get(client, "/health", **{"x-api-key": "nope"}))
    assert set(wrong) == set(public)
    full = body(get(client, "/health", **{"x-api-key": "s3cret-key"}))
    assert full["storage"]["backend"] == served.backend and "last_export" in full
    assert get(client, "/health").headers["ETag"] != get(
        client, "/health", **{"x-api-key": "s3cret-key"}).headers["ETag"]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "value"),
    [("OCD_ANALYTICS", '{"low_iv_percentile": '), ("OCD_ANALYTICS", '{"no_such_knob": 1}'),
     ("OCD_WATCHLIST", "NOT A TICKER"), ("OCD_FLUSH_ROWS", "0"), ("OCD_PROVIDER", "bloomberg")],
)  # fmt: skip
def test_a_bad_writer_setting_does_not_stop_the_api(
    served: Site, client: Client, monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    for path in ("/health", "/tickers", "/options/SPY/snapshot", "/alerts/latest"):
        assert get(client, path).status_code == 200, path


def test_misconfiguration_is_a_json_500_that_leaks_nothing(
    served: Site, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OCD_STORAGE", "s3")
    monkeypatch.delenv("OCD_BUCKET", raising=False)
    response = get(client, "/tickers")
    data = assert_error(response, 500, "internal_error", None)
    assert "OCD_BUCKET" not in data["message"] and data["details"] == []
