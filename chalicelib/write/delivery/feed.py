"""``alerts.atom``: the newest alerts as an Atom 1.0 feed (RFC 4287), one per generation.

Feed readers poll it; ``GET /alerts/feed`` serves the bytes as published. Entry ids are
``urn:ocd:alert:<id>`` (an alert keeps its id for ever, so readers never show it twice),
``updated`` is the alert's ``created_at``, and every entry has text content, so it is valid
without a link; with ``OCD_PUBLIC_URL`` each entry links to the alert in the dashboard. The
bytes depend only on the alerts (and the URL): an unchanged feed keeps its ETag.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from chalicelib.config import Settings
from chalicelib.deliveryformat import alert_url
from chalicelib.exportformat import iso, strict_json
from chalicelib.write.store import Store

ATOM = "http://www.w3.org/2005/Atom"
FEED_ID = "urn:ocd:feed:alerts"
FEED_TITLE = "Option Chain Dashboard alerts"
FEED_ENTRIES = 100
NEWEST_ALERTS = """
    SELECT id, ticker, detector_name, score, explanation, created_at FROM alerts
    ORDER BY created_at DESC, score DESC, id LIMIT ?
"""
# Characters XML 1.0 does not allow, even escaped.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True)
class FeedEntry:
    id: str
    ticker: str
    detector_name: str
    score: float
    summary: str
    rationale: str
    created_at: datetime  # aware UTC


def alerts_feed(store: Store, settings: Settings, generated_at: datetime) -> tuple[bytes, int]:
    """The feed of the newest ``FEED_ENTRIES`` alerts, and its entry count."""
    entries = [_entry(row) for row in store.rows(NEWEST_ALERTS, [FEED_ENTRIES])]
    data = build_feed(entries, public_url=settings.public_url, generated_at=generated_at)
    return data, len(entries)


def build_feed(
    entries: list[FeedEntry], *, public_url: str | None, generated_at: datetime
) -> bytes:
    """Atom XML for ``entries`` (newest first). ``generated_at`` dates an empty feed."""
    # Unqualified names under a default namespace declared on the root: the serialiser then
    # writes plain Atom element names (its default_namespace option refuses plain attributes).
    feed = ET.Element("feed", xmlns=ATOM)
    _text(feed, "id", FEED_ID)
    _text(feed, "title", FEED_TITLE)
    _text(feed, "updated", iso(entries[0].created_at if entries else generated_at))
    author = ET.SubElement(feed, "author")
    _text(author, "name", "Option Chain Dashboard")
    if public_url:
        ET.SubElement(feed, "link", rel="self", type="application/atom+xml",
                      href=f"{public_url}/alerts/feed")  # fmt: skip
        ET.SubElement(feed, "link", rel="alternate", type="text/html", href=f"{public_url}/")
    for entry in entries:
        item = ET.SubElement(feed, "entry")
        _text(item, "id", f"urn:ocd:alert:{entry.id}")
        _text(item, "title", f"{entry.ticker} {entry.detector_name}, score {entry.score:.1f}")
        _text(item, "updated", iso(entry.created_at))
        _text(item, "published", iso(entry.created_at))
        url = alert_url(public_url, entry.id)
        if url:
            ET.SubElement(item, "link", rel="alternate", type="text/html", href=url)
        ET.SubElement(item, "category", term=entry.detector_name)
        ET.SubElement(item, "category", term=entry.ticker)
        _text(item, "summary", entry.summary, type="text")
        body = "\n\n".join(part for part in (entry.summary, entry.rationale) if part)
        _text(item, "content", body, type="text")
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)


def _entry(row: tuple[Any, ...]) -> FeedEntry:
    alert_id, ticker, detector, score, explanation, created_at = row
    raw = explanation.encode() if isinstance(explanation, str) else bytes(explanation)
    parsed = orjson.loads(strict_json(raw))
    why = parsed if isinstance(parsed, dict) else {}
    return FeedEntry(str(alert_id), str(ticker), str(detector), float(score),
                     str(why.get("summary") or ""), str(why.get("rationale") or ""),
                     created_at.replace(tzinfo=UTC))  # fmt: skip


def _text(parent: ET.Element, name: str, text: str, **attributes: str) -> None:
    ET.SubElement(parent, name, attributes).text = _NOT_XML.sub("", text)
