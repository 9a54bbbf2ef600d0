"""The export format: the one seam between the write side and the read side.

Layout under the export root (local directory or S3 prefix):

    manifest.json                        written last; names every document of the generation
    alerts.json scans.json features.json chains.json        latest documents (seed names)
    alerts.atom delivery.json            the alerts' Atom feed, the alert delivery status
    chains/<TICKER>/<digest>.json        per-ticker chain documents, immutable, content-addressed
    archive/<kind>_YYYYMMDD_HHMMSS[_n].json.gz               immutable gzip copies, one per export
                                         (``.atom.gz`` for the feed)

Generation ids (``YYYYMMDDTHHMMSSZ-NNNNNN``) and archive keys (stamped with the generation's
time, not the clock's) both sort in publication order, even when the clock steps back.
Every document but the Atom feed is a strict-JSON object with ``generation``, ``generated_at``,
``kind`` and ``count``. Neither side imports the other; both import this module.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from chalicelib.errors import ObjectNotFound
from chalicelib.logs import log_event
from chalicelib.storage.base import Storage

Kind = Literal["alerts", "chains", "scans", "features"]
KINDS: tuple[Kind, ...] = ("alerts", "chains", "scans", "features")
# Published beside the data kinds, listed and archived the same way, read by key: the Atom feed
# of the newest alerts (served as it is) and the alert delivery status (``deliveryformat``).
FEED_KIND, FEED_KEY = "feed", "alerts.atom"
DELIVERY_KIND, DELIVERY_KEY = "delivery", "delivery.json"
EXTRA_KEYS: dict[str, str] = {FEED_KIND: FEED_KEY, DELIVERY_KIND: DELIVERY_KEY}
PUBLISHED_KINDS: tuple[str, ...] = (*KINDS, *EXTRA_KEYS)
MANIFEST_KEY = "manifest.json"
ARCHIVE_PREFIX = "archive/"
CHAINS_PREFIX = "chains/"
FORMAT_VERSION = 1

_ARCHIVE_RE = re.compile(
    r"^archive/(?P<kind>[a-z]+)_(?P<stamp>\d{8}_\d{6})(?:_(?P<n>\d+))?\.(?:json|atom)\.gz$"
)
_GENERATION_RE = re.compile(r"^(?P<stamp>\d{8}T\d{6})Z-(?P<seq>\d{6,})$")


def latest_key(kind: Kind) -> str:
    return f"{kind}.json"


def document_key(kind: str) -> str:
    """The latest document of any published kind (``alerts.atom`` for the feed)."""
    return EXTRA_KEYS.get(kind) or f"{kind}.json"


def chain_key(ticker: str, digest: str) -> str:
    return f"{CHAINS_PREFIX}{ticker}/{digest}.json"


def archive_key(kind: str, when: datetime, n: int = 0) -> str:
    suffix = f"_{n}" if n else ""
    ext = "atom" if kind == FEED_KIND else "json"
    return f"{ARCHIVE_PREFIX}{kind}_{when.astimezone(UTC):%Y%m%d_%H%M%S}{suffix}.{ext}.gz"


def parse_archive_key(key: str) -> tuple[str, datetime, int] | None:
    """(kind, timestamp, n) of an archive key, or None for anything else."""
    match = _ARCHIVE_RE.match(key)
    if not match:
        return None
    when = datetime.strptime(match["stamp"], "%Y%m%d_%H%M%S").replace(tzinfo=UTC)
    return match["kind"], when, int(match["n"] or 0)


def next_generation(previous: str | None, now: datetime) -> str:
    """``YYYYMMDDTHHMMSSZ-NNNNNN``: sorts in publication order even if the clock steps back."""
    stamp, seq = now.astimezone(UTC).strftime("%Y%m%dT%H%M%S"), 1
    if previous and (match := _GENERATION_RE.match(previous)):
        stamp = max(stamp, match["stamp"])
        seq = int(match["seq"]) + 1
    return f"{stamp}Z-{seq:06d}"


def generation_order(generation: str) -> tuple[str, int]:
    """Sort key of a generation id: publication order (ids of other shapes sort first)."""
    match = _GENERATION_RE.match(generation)
    return (match["stamp"], int(match["seq"])) if match else ("", -1)


def generation_time(generation: str) -> datetime | None:
    """The (never decreasing) timestamp in a generation id; archives are stamped with it, so
    archive keys sort in publication order too, whatever the clock did."""
    match = _GENERATION_RE.match(generation)
    if not match:
        return None
    return datetime.strptime(match["stamp"], "%Y%m%dT%H%M%S").replace(tzinfo=UTC)


def dumps(value: Any) -> bytes:
    """Strict JSON: NaN and infinities become null, datetimes ISO 8601 with Z, numpy allowed."""
    return orjson.dumps(
        value, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC
    )


# Tokens of the lenient JSON DuckDB accepts in JSON columns and writes for non-finite doubles:
# strings (kept as they are), NaN / Infinity / inf literals, and numbers (which may overflow).
_LENIENT_TOKEN = re.compile(
    rb'"(?:[^"\\]|\\.)*"'
    rb"|[-+]?(?:NaN|nan|Infinity|infinity|inf|Inf|INF)"
    rb"|-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
)


def strict_json(raw: bytes) -> bytes:
    """``raw`` unchanged if strict JSON; else with NaN and infinities (which DuckDB writes for
    non-finite doubles and keeps inside JSON columns) as null. Raises ValueError otherwise."""
    try:
        orjson.loads(raw)
        return raw
    except orjson.JSONDecodeError:
        pass
    fixed = _LENIENT_TOKEN.sub(_strict_token, raw)
    orjson.loads(fixed)  # still not JSON: a JSONDecodeError (a ValueError) says where
    return fixed


def _strict_token(match: re.Match[bytes]) -> bytes:
    token = match.group()
    if token[:1] == b'"':
        return token
    return token if math.isfinite(float(token)) else b"null"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class DocumentEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    sha256: str
    bytes: int = Field(ge=0)
    rows: int = Field(ge=0)
    generation: str  # the generation that wrote these bytes (older for delta-skipped documents)
    fingerprint: str | None = None  # what the content was built from, for delta export


class KindResult(BaseModel):
    """What one kind's export did: the seed's result shape, plus keys written and skipped."""

    model_config = ConfigDict(frozen=True)

    kind: str
    ok: bool
    rows: int = 0
    bytes: int = 0
    duration_ms: float = 0.0
    keys_written: int = 0
    keys_skipped: int = 0
    error: str | None = None


class MarketClock(BaseModel):
    """When the published quotes are from, and what the market's clock said about them.

    Readers tell "market closed" from "stale" with it, without a calendar of their own: quotes
    of a session are current until ``closes_at``; from then until ``next_open`` the market is
    closed and the close is the newest there can be; after ``next_open`` newer quotes are due.
    """

    model_config = ConfigDict(frozen=True)

    quotes_as_of: datetime  # the newest snapshot's as_of
    session: date  # its New York session
    closes_at: datetime  # that session's close (13:00 New York on early closes)
    next_open: datetime  # the following session's open
    next_close: datetime  # ... and its close: past it, at least a whole session was missed


class Manifest(BaseModel):
    """The pointer a reader follows: everything of one generation, with checksums."""

    model_config = ConfigDict(frozen=True)

    format_version: int = FORMAT_VERSION
    generation: str
    generated_at: datetime
    previous_generation: str | None = None
    duration_ms: float = 0.0
    documents: dict[str, DocumentEntry]
    chains: dict[str, str] = Field(default_factory=dict)  # ticker -> per-ticker document key
    archives: dict[str, str] = Field(default_factory=dict)  # kind -> archive key
    results: dict[str, KindResult] = Field(default_factory=dict)
    storage_writes: int = 0
    provider: str | None = None  # where the quotes come from: synthetic, file or yfinance
    market: MarketClock | None = None


def archives_newest_first(storage: Storage, kind: str) -> list[str]:
    """Archive keys of one kind (``manifest`` included), newest first."""
    found = sorted(
        (parsed[1], parsed[2], info.key)
        for info in storage.list(f"{ARCHIVE_PREFIX}{kind}_")
        if (parsed := parse_archive_key(info.key)) and parsed[0] == kind
    )
    return [key for _, _, key in reversed(found)]


def archived_manifests(storage: Storage, limit: int | None = None) -> Iterator[Manifest]:
    """Valid archived manifests, newest first (damaged ones are skipped)."""
    for key in archives_newest_first(storage, "manifest")[:limit]:
        try:
            yield Manifest.model_validate_json(gzip.decompress(storage.get(key).data))
        except (ObjectNotFound, ValueError, OSError, EOFError):
            continue


def load_manifest(storage: Storage) -> Manifest | None:
    """The published manifest; if it is missing or damaged, the newest archived one; else None.

    The writer must continue the generation sequence even when ``manifest.json`` was lost.
    """
    try:
        return Manifest.model_validate_json(storage.get(MANIFEST_KEY).data)
    except ObjectNotFound:
        pass
    except ValueError:
        log_event("manifest_unreadable", key=MANIFEST_KEY)
    return next(archived_manifests(storage), None)
