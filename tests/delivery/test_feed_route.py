"""``GET /alerts/feed`` serves the published Atom bytes (ETag, archive fallback), and ``/health``
shows per sink what ``delivery.json`` says; neither needs a writer setting."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import feedparser
import orjson
import pytest
from chalice.test import Client
from deliverykit import T0, Receiver, add_alerts, candidates, deliver_now, publish

from chalicelib import exportformat as fmt
from chalicelib.config import Settings
from chalicelib.read import service
from chalicelib.storage.factory import make_storage
from chalicelib.write.store import Store

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def client(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    """The app reading the test's exports, with the API's settings only: no writer setting
    (sinks, secret) is in its environment."""
    from app import app

    for name in [n for n in os.environ if n.startswith("OCD_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("OCD_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("OCD_MANIFEST_TTL_SECONDS", "0")
    service.reset_caches()
    with Client(app, project_dir=str(ROOT)) as test_client:
        yield test_client
    service.reset_caches()


def test_the_feed_is_served_as_published_with_an_etag(
    client: Client, settings: Settings, store: Store
) -> None:
    assert client.http.get("/alerts/feed").status_code == 404  # nothing published yet
    add_alerts(store, settings, candidates(2))
    publish(store, settings)
    published = make_storage(settings).get(fmt.FEED_KEY).data

    response = client.http.get("/alerts/feed")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/atom+xml"
    assert response.headers["X-Data-Source"] == "latest"
    assert response.body == published
    assert len(feedparser.parse(response.body).entries) == 2
    etag = response.headers["ETag"]
    assert client.http.get("/alerts/feed", headers={"If-None-Match": etag}).status_code == 304
    assert client.http.head("/alerts/feed").headers["ETag"] == etag

    publish(store, settings)  # a new generation with the same alerts: the same bytes, ETag
    assert client.http.get("/alerts/feed").headers["ETag"] == etag
    add_alerts(store, settings, candidates(3)[2:])
    publish(store, settings)
    changed = client.http.get("/alerts/feed", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert client.http.get("/alerts/feed?format=rss").status_code == 400


def test_a_damaged_feed_is_served_from_its_archive(
    client: Client, settings: Settings, store: Store
) -> None:
    add_alerts(store, settings, candidates(2))
    publish(store, settings)
    storage = make_storage(settings)
    good = storage.get(fmt.FEED_KEY).data
    storage.put(fmt.FEED_KEY, good.replace(b"rich_premium", b"rich_premiun", 1))

    response = client.http.get("/alerts/feed")
    assert response.status_code == 200
    assert response.headers["X-Data-Source"] == "archive"
    assert response.body == good


def test_health_shows_each_sink_without_its_secret(
    client: Client, settings: Settings, store: Store, receiver: Receiver
) -> None:
    assert orjson.loads(client.http.get("/health").body)["delivery"] is None
    alerts = add_alerts(store, settings, candidates(2))
    publish(store, settings)
    body = orjson.loads(client.http.get("/health").body)
    assert body["delivery"] == [{"sink": "webhook", "last_success": None, "backlog": 2,
                                 "delivered": 0, "dead": 0, "last_error": None,
                                 "last_error_at": None}]  # fmt: skip
    receiver.plan[2] = "503"
    deliver_now(store, settings, T0)
    publish(store, settings)
    (webhook,) = orjson.loads(client.http.get("/health").body)["delivery"]
    assert webhook == {"sink": "webhook", "last_success": "2026-11-27T15:00:00Z", "backlog": 1,
                       "delivered": 1, "dead": 0, "last_error": "HTTP 503",
                       "last_error_at": "2026-11-27T15:00:00Z"}  # fmt: skip
    deliver_now(store, settings, T0 + timedelta(minutes=1))
    publish(store, settings)
    (webhook,) = orjson.loads(client.http.get("/health").body)["delivery"]
    assert (webhook["backlog"], webhook["delivered"]) == (0, 2)
    assert webhook["last_success"] == "2026-11-27T15:01:00Z"
    assert receiver.acks() == {f"msg_{a}": 1 for a in alerts}


TOKEN = "feed-token-0123456789abcdef"


def test_a_feed_reader_subscribes_with_the_feed_token_when_an_api_key_is_set(
    client: Client, settings: Settings, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Feed readers cannot send x-api-key: ``?token=`` (OCD_FEED_TOKEN) opens the feed, and only
    the feed; a wrong token is a 401 naming it, never a fall back to the key."""
    add_alerts(store, settings, candidates(2))
    publish(store, settings)
    monkeypatch.setenv("OCD_API_KEY", "the-api-key")
    monkeypatch.setenv("OCD_FEED_TOKEN", TOKEN)
    service.reset_caches()

    assert client.http.get("/alerts/feed").status_code == 401
    response = client.http.get(f"/alerts/feed?token={TOKEN}")
    assert response.status_code == 200 and len(feedparser.parse(response.body).entries) == 2
    assert client.http.get("/alerts/feed", headers={"x-api-key": "the-api-key"}).status_code == 200
    wrong = client.http.get("/alerts/feed?token=not-the-token-at-all",
                            headers={"x-api-key": "the-api-key"})  # fmt: skip
    assert wrong.status_code == 401
    assert orjson.loads(wrong.body)["details"] == [
        {"field": "token", "message": "wrong feed token"}
    ]
    # The token opens nothing else.
    assert client.http.get(f"/alerts/latest?token={TOKEN}").status_code == 401
    assert client.http.get("/alerts/latest", headers={"x-api-key": TOKEN}).status_code == 401


def test_a_token_is_refused_where_none_is_configured_and_a_short_one_is_no_setting(
    client: Client, settings: Settings, store: Store
) -> None:
    from chalicelib.config import load_read_settings
    from chalicelib.errors import ConfigError

    add_alerts(store, settings, candidates(1))
    publish(store, settings)
    assert client.http.get("/alerts/feed").status_code == 200  # no key: the feed is open
    assert client.http.get(f"/alerts/feed?token={TOKEN}").status_code == 401
    assert client.http.get("/alerts/feed?tokn=x").status_code == 400  # unknown parameter
    with pytest.raises(ConfigError, match="OCD_FEED_TOKEN"):
        load_read_settings({"OCD_FEED_TOKEN": "short"})
