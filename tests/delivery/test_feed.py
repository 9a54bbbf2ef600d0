"""``alerts.atom``: Atom 1.0 of the newest 100 alerts, published and verified like every
document; parsed by feedparser and checked against RFC 4287's required elements."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.etree import ElementTree

import feedparser
from deliverykit import T0, add_alerts, candidates, publish, settings_for

from chalicelib import exportformat as fmt
from chalicelib.storage.factory import make_storage
from chalicelib.write.delivery.feed import FEED_ENTRIES, FeedEntry, build_feed
from chalicelib.write.store import Store

A = "{http://www.w3.org/2005/Atom}"


def check_rfc4287(data: bytes) -> ElementTree.Element:
    """The feed and each entry carry what RFC 4287 requires (4.1.1, 4.1.2)."""
    feed = ElementTree.fromstring(data)
    assert feed.tag == f"{A}feed"
    for name in ("id", "title", "updated"):
        assert len(feed.findall(f"{A}{name}")) == 1, name
    assert feed.find(f"{A}author/{A}name") is not None  # entries have none of their own
    for entry in feed.findall(f"{A}entry"):
        for name in ("id", "title", "updated"):
            assert len(entry.findall(f"{A}{name}")) == 1, name
        content = entry.find(f"{A}content")
        # without content an entry must have an alternate link; ours always has content
        assert content is not None and content.get("type") == "text" and content.text
    return feed


def test_the_feed_holds_the_newest_100_alerts_newest_first(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, public_url="https://ocd.example.com")
    with Store(settings.database) as store:
        for day in range(5):  # 5 × 24 alerts, a day apart
            add_alerts(store, settings, candidates(24, as_of=T0 - timedelta(days=day)))
        manifest = publish(store, settings)
        order = "ORDER BY created_at DESC, score DESC, id LIMIT 100"
        newest = [str(r[0]) for r in store.rows(f"SELECT id FROM alerts {order}")]
    data = make_storage(settings).get(fmt.FEED_KEY).data
    entry = manifest.documents[fmt.FEED_KEY]
    assert (entry.sha256, entry.bytes, entry.rows) == (fmt.sha256(data), len(data), FEED_ENTRIES)
    assert gzip.decompress(make_storage(settings).get(manifest.archives["feed"]).data) == data
    assert manifest.archives["feed"].endswith(".atom.gz")

    check_rfc4287(data)
    parsed = feedparser.parse(data)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    assert parsed.feed.id == "urn:ocd:feed:alerts"
    assert parsed.feed.updated == "2026-11-27T15:00:23Z"  # the newest alert
    links = {link.rel: link.href for link in parsed.feed.links}
    assert links == {"self": "https://ocd.example.com/alerts/feed",
                     "alternate": "https://ocd.example.com/"}  # fmt: skip
    assert [e.id for e in parsed.entries] == [f"urn:ocd:alert:{a}" for a in newest]
    first = parsed.entries[0]
    assert first.title == "MSFT term_kink, score 70.0"  # the 24th candidate of the day
    assert first.updated == first.published == "2026-11-27T15:00:23Z"
    assert first.link == f"https://ocd.example.com/#/alerts/{newest[0]}"
    assert first.summary == "MSFT term_kink & <friends>"  # escaped in the XML, whole here
    assert {t.term for t in first.tags} == {"term_kink", "MSFT"}


def test_the_bytes_depend_only_on_the_alerts(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    with Store(settings.database) as store:
        add_alerts(store, settings, candidates(3))
        first = publish(store, settings)
        second = publish(store, settings)
        add_alerts(store, settings, candidates(4)[3:])
        third = publish(store, settings)
    assert first.generation != second.generation
    assert first.documents[fmt.FEED_KEY].sha256 == second.documents[fmt.FEED_KEY].sha256
    assert third.documents[fmt.FEED_KEY].sha256 != second.documents[fmt.FEED_KEY].sha256
    data = make_storage(settings).get(fmt.FEED_KEY).data
    parsed = feedparser.parse(data)
    assert len(parsed.entries) == 4 and not parsed.bozo
    assert check_rfc4287(data).findall(f".//{A}link") == []  # no OCD_PUBLIC_URL: no links


def test_an_empty_feed_is_valid_and_dated_by_its_generation() -> None:
    at = datetime(2026, 11, 27, 21, 5, tzinfo=UTC)
    data = build_feed([], public_url=None, generated_at=at)
    feed = check_rfc4287(data)
    assert feed.findall(f"{A}entry") == []
    parsed = feedparser.parse(data)
    assert not parsed.bozo and parsed.feed.updated == "2026-11-27T21:05:00Z"


def test_text_that_xml_cannot_carry_is_dropped_and_markup_is_escaped() -> None:
    entry = FeedEntry("al_1", "SPY", "low_iv", 55.0, "bell\x07 <b>&amp;</b>", "nul\x00 \ufffe ok",
                      datetime(2026, 11, 27, 15, tzinfo=UTC))  # fmt: skip
    data = build_feed([entry], public_url=None, generated_at=entry.created_at)
    check_rfc4287(data)
    parsed = feedparser.parse(data)
    assert not parsed.bozo
    assert parsed.entries[0].summary == "bell <b>&amp;</b>"
    assert parsed.entries[0].content[0].value == "bell <b>&amp;</b>\n\nnul  ok"
