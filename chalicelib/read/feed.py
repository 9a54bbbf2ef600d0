"""``GET /alerts/feed``: the published Atom feed of alerts, as its verified bytes.

The writer builds the feed (``chalicelib/write/delivery/feed.py``) and publishes it with each
generation; this serves exactly those bytes, from the generation's archive when the latest copy
is damaged, like every document (``ExportReader.named``).
"""

from __future__ import annotations

from chalicelib import exportformat as fmt
from chalicelib.errors import NotFound
from chalicelib.read.reader import ExportReader, Loaded

MEDIA_TYPE = "application/atom+xml"
_ATOM_ROOT = b'<feed xmlns="http://www.w3.org/2005/Atom"'


class FeedNotPublished(NotFound):
    def __init__(self) -> None:
        self.details = [{"field": "feed", "message": "no generation has published alerts.atom"}]
        super().__init__("the alerts feed is not published yet")


def is_atom(data: bytes) -> bool:
    """Whether bytes no manifest vouches for are an Atom feed at all (their root element)."""
    return _ATOM_ROOT in data[:256]


def alerts_feed(reader: ExportReader) -> tuple[bytes, Loaded]:
    """The feed's bytes and where they came from; FeedNotPublished when there is none."""
    loaded = reader.named(fmt.FEED_KIND, raw=is_atom)
    data = (loaded.doc or {}).get("data")
    if not isinstance(data, bytes):
        raise FeedNotPublished()
    return data, loaded
