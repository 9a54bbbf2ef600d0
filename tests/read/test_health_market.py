"""/health tells the quotes' own time and age beside the export's, "market closed" between
sessions, and a failing collect (a damaged database) as degraded with its reason."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from chalice.test import Client
from readkit import Site, body, get

from chalicelib.config import load_read_settings
from chalicelib.exportformat import FORMAT_VERSION, MANIFEST_KEY, MarketClock, dumps
from chalicelib.exportstatus import COLLECT_STATUS_KEY, record_status
from chalicelib.read.service import market_state

SETTINGS = load_read_settings({})  # stale after 900 s


def clock(closes_in: timedelta, quotes_age: timedelta) -> MarketClock:
    now = datetime.now(UTC)
    closes = now + closes_in
    return MarketClock(
        quotes_as_of=now - quotes_age,
        session=date(2026, 11, 24),
        closes_at=closes,
        next_open=closes + timedelta(hours=17, minutes=30),
        next_close=closes + timedelta(hours=24),
    )


@pytest.mark.parametrize(
    ("closes_in", "quotes_age", "state", "overdue"),
    [
        (timedelta(hours=2), timedelta(minutes=5), "open", False),  # mid-session, fresh
        (timedelta(hours=2), timedelta(hours=1), "open", True),  # mid-session, frozen
        (timedelta(hours=-3), timedelta(hours=3), "closed", False),  # the evening after
        (timedelta(hours=-18), timedelta(hours=18), "open", True),  # next session, no quotes
        (timedelta(hours=-30), timedelta(hours=30), "unknown", True),  # a session missed
    ],
    ids=["fresh", "frozen", "closed", "next-open", "missed"],
)
def test_market_state(closes_in, quotes_age, state: str, overdue: bool) -> None:
    market = market_state(clock(closes_in, quotes_age), SETTINGS)
    assert market is not None
    assert market["state"] == state and market["quotes_overdue"] is overdue
    assert market["quotes_age_seconds"] == pytest.approx(quotes_age.total_seconds(), abs=5)
    replay = market_state(clock(closes_in, quotes_age), SETTINGS, replay=True)
    assert replay is not None and replay["quotes_overdue"] is False  # a replay is never due


def test_health_names_the_provider_and_the_quotes_time(served: Site, client: Client) -> None:
    report = body(get(client, "/health"))
    manifest = served.manifest()
    assert report["provider"] == "synthetic"
    market = report["market"]
    assert market["quotes_as_of"] == manifest.market.quotes_as_of.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert market["quotes_age_seconds"] > report["age_seconds"]  # quotes older than the export
    assert market["session"] == manifest.market.session.isoformat()


def test_a_failing_collect_is_degraded_with_its_reason(fresh: Site, client: Client) -> None:
    fresh.export()  # exports are fresh ...
    assert body(get(client, "/health"))["status"] == "ok"
    record_status(fresh.storage, ok=False, at=datetime.now(UTC), generation=None,
                  error="the database … is damaged", key=COLLECT_STATUS_KEY)  # fmt: skip
    report = body(get(client, "/health"))
    assert report["status"] == "degraded"  # ... but their data is frozen
    assert "collect failing: the database … is damaged" in report["status_reason"]
    assert report["last_collect"]["ok"] is False
    record_status(fresh.storage, ok=True, at=datetime.now(UTC), generation=None, error=None,
                  key=COLLECT_STATUS_KEY)  # fmt: skip
    assert body(get(client, "/health"))["status"] == "ok"
    fresh.storage.delete(COLLECT_STATUS_KEY)


def test_documents_of_another_format_are_degraded_until_the_next_export(
    fresh: Site, client: Client
) -> None:
    """After an upgrade, before its first export, the published documents are of the previous
    format: the data routes cannot read them as data and answer 503 with the reason, and
    /health says so instead of "ok"."""
    fresh.export()
    manifest = fresh.manifest()
    older = manifest.model_copy(update={"format_version": FORMAT_VERSION - 1})
    fresh.storage.put(MANIFEST_KEY, dumps(older.model_dump(mode="json")))
    report = body(get(client, "/health"))
    assert report["status"] == "degraded"
    assert f"documents in format {FORMAT_VERSION - 1}" in report["status_reason"]
    ticker = sorted(manifest.chains)[0]
    data_routes = ("/tickers", "/alerts/latest", f"/options/{ticker}/expirations",
                   "/options/NOSUCH/expirations")  # fmt: skip
    for path in data_routes:  # not an empty 200 or a 404: unavailable, and why, until then
        response = get(client, path)
        assert response.status_code == 503, path
        assert response.headers["Retry-After"] == "60"
        error = body(response)
        assert error["error"] == "documents_upgrading"
        assert f"in format {FORMAT_VERSION - 1}" in error["message"]
    fresh.export()  # the next export publishes this format again
    assert body(get(client, "/health"))["status"] == "ok"
    for path in data_routes[:3]:
        assert get(client, path).status_code == 200, path
    assert get(client, data_routes[3]).status_code == 404
