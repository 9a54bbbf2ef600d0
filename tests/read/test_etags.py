"""ETags: a revalidation is a 304 until something a client would see changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from chalice.test import Client
from readkit import Site, body, get

PATHS = (
    "/health",
    "/scans/latest",
    "/alerts/latest",
    "/alerts/latest/summary",
    "/alerts?ticker=SPY",
    "/alerts/ticker/SPY",
    "/options/SPY/expirations",
    "/options/SPY/snapshot",
    "/options/SPY/history?days=10",
    "/features/SPY/latest",
    "/tickers",
)


def etag(client: Client, path: str) -> str:
    response = get(client, path)
    assert response.status_code == 200, response.body[:200]
    return response.headers["ETag"]


def test_if_none_match_forms(served: Site, client: Client) -> None:
    tag = etag(client, "/tickers")
    strong = tag.removeprefix("W/")
    for header in (tag, strong, f'"nope", {tag}', "*"):
        assert get(client, "/tickers", **{"If-None-Match": header}).status_code == 304
    for header in ('"nope"', 'W/"nope"', ""):
        assert get(client, "/tickers", **{"If-None-Match": header}).status_code == 200


def test_etags_differ_by_route_and_query(served: Site, client: Client) -> None:
    paths = ("/alerts/latest?limit=1", "/alerts/latest?limit=2",
             "/alerts/latest/summary?limit=1", "/alerts?limit=1")  # fmt: skip
    tags = [etag(client, p) for p in paths]
    assert len(set(tags)) == len(tags)
    assert etag(client, "/alerts/latest?limit=1") == tags[0]  # and are stable


def test_a_new_export_changes_every_etag(fresh: Site, client: Client) -> None:
    before = {path: etag(client, path) for path in PATHS}
    fresh.export(fresh.stores.db2, clock=lambda: datetime(2026, 11, 27, 22, 0, tzinfo=UTC))
    for path, old in before.items():
        response = get(client, path, **{"If-None-Match": old})
        assert response.status_code == 200, path
        assert response.headers["ETag"] != old, path
        assert body(response)["generation"] == fresh.generations[-1], path


def test_an_unchanged_chain_keeps_its_content_but_not_its_generation(
    fresh: Site, client: Client
) -> None:
    """Same store exported again: chain documents are delta-skipped (same bytes), yet responses
    carry the new generation, so their ETags move with it."""
    old_manifest = fresh.manifest()
    old = get(client, "/options/SPY/snapshot")
    new_manifest = fresh.export(fresh.stores.db2)
    assert new_manifest.chains["SPY"] == old_manifest.chains["SPY"]
    new = get(client, "/options/SPY/snapshot")
    assert new.headers["ETag"] != old.headers["ETag"]
    old_data, new_data = body(old), body(new)
    assert old_data.pop("generation") != new_data.pop("generation")
    for meta in ("generated_at", "age_seconds"):
        old_data.pop(meta), new_data.pop(meta)
    assert old_data == new_data


def test_health_etag_follows_status(
    fresh: Site, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A monitor revalidating /health must see ok -> stale even without a new export."""
    fresh.export(clock=lambda: datetime.now(UTC) - timedelta(minutes=10))
    ok = get(client, "/health")
    assert body(ok)["status"] == "ok" and body(ok)["stale_after_seconds"] == 900
    assert get(client, "/health", **{"If-None-Match": ok.headers["ETag"]}).status_code == 304
    monkeypatch.setenv("OCD_EXPORT_INTERVAL_SECONDS", "60")  # stale after 180 s
    stale = get(client, "/health", **{"If-None-Match": ok.headers["ETag"]})
    assert stale.status_code == 200
    assert body(stale)["status"] == "stale" and body(stale)["stale_after_seconds"] == 180
    assert stale.headers["ETag"] != ok.headers["ETag"]


def test_openapi_etag_is_stable(served: Site, client: Client) -> None:
    assert etag(client, "/openapi.json") == etag(client, "/openapi.json")
