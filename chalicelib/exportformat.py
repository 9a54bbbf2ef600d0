"""The export format: the one seam between the write side and the read side.

Layout under the export root (local directory or S3 prefix):

    manifest.json                        written last; names every document of the generation
    alerts.json scans.json features.json chains.json        latest documents (seed names)
    alerts.atom delivery.json            the alerts' Atom feed, the alert delivery status
    chains/<TICKER>_<digest>.json        per-ticker chain documents, immutable, content-addressed
    daily/<TICKER>_<digest>.json         per-ticker daily history documents, the same way
    features/<TICKER>_<digest>.json      per-ticker latest features documents, the same way
    archive/<kind>_<generation>.json.gz  immutable gzip copies, one per kind per generation
                                         (``.atom.gz`` for the feed)

Generation ids (``NNNNNNNN-YYYYMMDDTHHMMSSZ``) are a sequence number and the writer's clock: the
number orders them and makes them unique, whatever the clock does; the time is for people.
Archive keys carry the generation id, so they are unique and ordered the same way.

Every document but the Atom feed is a strict-JSON object (no NaN, no infinities) with the
``Header`` fields, and its shape is one of the contracts below (``CONTRACTS``, by ``kind``). The
exporter builds to the contracts, export tests validate every written document against them
(``validate``), the read handlers read them, and the OpenAPI response schemas derive from their row
types. Large tables are columnar: one array per field (``Table``), and columns of few distinct
values as runs (``Runs``). Neither side imports the other; both import this module, which is pure
Python.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from functools import cache
from typing import Annotated, Any, Literal, NamedTuple

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, WithJsonSchema, with_config
from typing_extensions import TypedDict

from chalicelib import catalogue
from chalicelib.deliveryformat import DeliveryDocument
from chalicelib.errors import InvalidKey, ObjectNotFound
from chalicelib.logs import log_event
from chalicelib.storage.base import Storage

Kind = Literal["alerts", "chains", "scans", "features"]
KINDS: tuple[Kind, ...] = ("alerts", "chains", "scans", "features")
# Published beside the data kinds, listed and archived the same way, read by key: the Atom feed
# of the newest alerts (served as it is) and the alert delivery status (``deliveryformat``).
FEED_KIND, FEED_KEY = "feed", "alerts.atom"
DELIVERY_KIND, DELIVERY_KEY = "delivery", "delivery.json"
MANIFEST_KEY = "manifest.json"
ARCHIVE_PREFIX = "archive/"
CHAINS_PREFIX = "chains/"
HISTORY_PREFIX = "daily/"
FEATURE_SET_PREFIX = "features/"
# per-ticker, content-addressed documents, and the manifest's maps of them (ticker -> key)
TICKER_PREFIXES = (CHAINS_PREFIX, HISTORY_PREFIX, FEATURE_SET_PREFIX)
PER_TICKER_MAPS = ("chains", "histories", "feature_sets")
# Of every document and of the manifest. 1 was row-per-contract JSON; 2 carried the features
# inside the chain document; 3 gave them their own document (``feature_set``); 4 writes the
# history document's times as epoch seconds and its near-constant columns as runs, and the
# features' lists of records as tables (``compact_features``).
SCHEMA_VERSION = 4
FORMAT_VERSION = SCHEMA_VERSION

_ARCHIVE_RE = re.compile(
    r"^archive/(?P<kind>[a-z]+)_(?:(?P<seq>\d{8,})-(?P<stamp>\d{8}T\d{6})Z"
    r"|(?P<legacy>\d{8}_\d{6})(?:_(?P<n>\d+))?)\.(?P<ext>[a-z]+)\.gz$"
)
_GENERATION_RE = re.compile(r"^(?P<seq>\d{8,})-(?P<stamp>\d{8}T\d{6})Z$")
_LEGACY_GENERATION_RE = re.compile(r"^(?P<stamp>\d{8}T\d{6})Z-(?P<seq>\d{6,})$")


# ---- keys and generation ids -------------------------------------------------------------
# Latest documents whose key is not ``<kind>.json`` (a kind of another format, say).
LATEST_KEYS: dict[str, str] = {FEED_KIND: FEED_KEY}
PUBLISHED_KINDS: tuple[str, ...] = (*KINDS, FEED_KIND, DELIVERY_KIND)


def latest_key(kind: str) -> str:
    return LATEST_KEYS.get(kind, f"{kind}.json")


# A per-ticker document's key: ``<prefix><ticker>_<digest>.json``, every ticker's in the one
# directory of its kind (no ticker holds ``_``). Creating a directory per ticker cost as much as
# writing the document; a store exported before keeps its ``<prefix><ticker>/<digest>.json``
# keys while their content stands, and retention removes them (and their directories) after.
def chain_key(ticker: str, digest: str) -> str:
    return f"{CHAINS_PREFIX}{ticker}_{digest}.json"


def history_key(ticker: str, digest: str) -> str:
    return f"{HISTORY_PREFIX}{ticker}_{digest}.json"


def feature_set_key(ticker: str, digest: str) -> str:
    return f"{FEATURE_SET_PREFIX}{ticker}_{digest}.json"


def archive_key(kind: str, generation: str, ext: str = "json") -> str:
    """The archive of ``kind`` written by ``generation``: one per kind per generation."""
    if not _GENERATION_RE.match(generation):
        raise ValueError(f"not a generation id: {generation!r}")
    return f"{ARCHIVE_PREFIX}{kind}_{generation}.{ext}.gz"


class ArchiveKey(NamedTuple):
    kind: str
    seq: int  # the generation's sequence number; -1 for keys of format 1
    when: datetime  # the generation's (writer clock) time
    n: int  # format 1's collision suffix

    @property
    def order(self) -> tuple[int, datetime, int]:
        return (self.seq, self.when, self.n)


def parse_archive_key(key: str) -> ArchiveKey | None:
    """What an archive key says, or None for anything else (format 1 keys included)."""
    match = _ARCHIVE_RE.match(key)
    if not match:
        return None
    if match["seq"] is not None:
        when = datetime.strptime(match["stamp"], "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
        return ArchiveKey(match["kind"], int(match["seq"]), when, 0)
    when = datetime.strptime(match["legacy"], "%Y%m%d_%H%M%S").replace(tzinfo=UTC)
    return ArchiveKey(match["kind"], -1, when, int(match["n"] or 0))


def next_generation(previous: str | None, now: datetime) -> str:
    """The id after ``previous``: its sequence number plus one, stamped with ``now``."""
    seq = max(generation_order(previous), 0) + 1 if previous else 1
    return f"{seq:08d}-{now.astimezone(UTC):%Y%m%dT%H%M%S}Z"


def generation_order(generation: str | None) -> int:
    """Sort key of a generation id: its sequence number (-1 for ids of no known shape).
    Ids of format 1 (``YYYYMMDDTHHMMSSZ-NNNNNN``) keep their number, which format 2 continues."""
    match = _GENERATION_RE.match(generation or "") or _LEGACY_GENERATION_RE.match(generation or "")
    return int(match["seq"]) if match else -1


def generation_time(generation: str) -> datetime | None:
    """The writer's clock when it began the generation (for people: it may jump)."""
    match = _GENERATION_RE.match(generation) or _LEGACY_GENERATION_RE.match(generation)
    if not match:
        return None
    return datetime.strptime(match["stamp"], "%Y%m%dT%H%M%S").replace(tzinfo=UTC)


# ---- strict JSON ---------------------------------------------------------------------------
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


# ---- document contracts --------------------------------------------------------------------
_STRICT = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)
Number = float | None  # finite, or null when the data cannot support a value
Count = int | None
Timestamp = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]  # ...Z
Day = Annotated[str, WithJsonSchema({"type": "string", "format": "date"})]  # YYYY-MM-DD
_PYTHON: dict[str, Any] = {"number": Number, "integer": Count, "boolean": bool, "string": str,
                           "date": Day, "timestamp": Timestamp}  # fmt: skip

# The numeric fields of a contract, in the order the API answers them (the catalogue's order).
CONTRACT_COLUMNS: tuple[str, ...] = tuple(
    f.name for f in catalogue.CONTRACT_FIELDS if f.kind in ("number", "integer")
)
# The fields of a daily history row, in the order the API answers them.
HISTORY_COLUMNS: tuple[str, ...] = tuple(f.name for f in catalogue.HISTORY_FIELDS)


def _field_type(field: catalogue.ContractField) -> Any:
    return float if field.name == "strike" else _PYTHON[field.kind]


# One contract of a snapshot as the API answers it (``calls`` and ``puts`` rows).
ContractRow = with_config(_STRICT)(
    TypedDict(  # type: ignore[operator]
        "ContractRow",
        {f.name: _field_type(f) for f in catalogue.CONTRACT_FIELDS if f.name in CONTRACT_COLUMNS},
    )
)
# One session of a ticker's daily history as the API answers it.
HistoryRow = with_config(_STRICT)(
    TypedDict(  # type: ignore[operator]
        "HistoryRow", {f.name: _field_type(f) for f in catalogue.HISTORY_FIELDS}
    )
)


@with_config(_STRICT)
class Header(TypedDict):
    """What every document starts with."""

    schema_version: Literal[4]
    kind: str
    generation: str  # the generation that wrote these bytes
    generated_at: Timestamp
    count: int  # rows of the document's table


@with_config(_STRICT)
class Runs(TypedDict):
    """A column of few distinct values in runs: run ``(i, n)`` is ``values[i]`` ``n`` times."""

    values: list[str]
    runs: list[tuple[int, int]]


# A snapshot's contracts, ordered by expiration, then right (calls first), then strike: one
# array per numeric field, expiration and right as runs (so each expiration's calls, then its
# puts, are one contiguous slice).
ChainColumns = with_config(_STRICT)(
    TypedDict(  # type: ignore[operator]
        "ChainColumns",
        {
            "expiration": Runs,
            "right": Runs,
            **{name: list[ContractRow.__annotations__[name]] for name in CONTRACT_COLUMNS},
        },
    )
)


def _runs_of(name: str, value: Any) -> Any:
    """A ``Runs`` contract whose values are of type ``value``."""
    fields = {"values": list[value], "runs": list[tuple[int, int]]}
    return with_config(_STRICT)(TypedDict(name, fields))  # type: ignore[operator]


def _history_value(field: catalogue.ContractField) -> Any:
    """A history column's value: times as whole seconds since the epoch (UTC), ``as_of`` null
    where it is the session's close (``close_at``: backfilled and final rows)."""
    if field.kind == "timestamp":
        return int | None if field.name == "as_of" else int
    return HistoryRow.__annotations__[field.name]


# A ticker's sessions before the one of its chain, oldest first: each column an array, or runs
# where it has few (a backfilled year has no volume, open interest nor ``as_of``).
HistoryColumns = with_config(_STRICT)(
    TypedDict(  # type: ignore[operator]
        "HistoryColumns",
        {
            f.name: list[_history_value(f)]  # type: ignore[misc]
            | _runs_of(f"{f.name.title().replace('_', '')}Runs", _history_value(f))
            for f in catalogue.HISTORY_FIELDS
        },
    )
)
# The history columns written as epoch seconds (the API answers them as ISO 8601 times).
HISTORY_TIMES: tuple[str, ...] = tuple(
    f.name for f in catalogue.HISTORY_FIELDS if f.kind == "timestamp"
)


@with_config(_STRICT)
class ChainDocument(Header):
    """``chains/<TICKER>_<digest>.json``: one ticker's latest snapshot (kind ``chain``)."""

    ticker: str
    as_of: Timestamp
    underlying_price: Number
    dividend_yield: Number
    expirations: list[Day]
    columns: ChainColumns
    session: HistoryRow | None  # the daily row of the chain's own session (changes intraday)


@with_config(_STRICT)
class FeatureSetDocument(Header):
    """``features/<TICKER>_<digest>.json``: one ticker's latest features (kind ``feature_set``;
    ``compute_features``'s values, units in the catalogue, lists of records as tables:
    ``expand_features``), rewritten when they are computed again. Kept apart from the chain
    document so a snapshot reads only contracts."""

    ticker: str
    as_of: Timestamp
    features: dict[str, Any] | None
    missing: dict[str, str]


@with_config(_STRICT)
class HistoryDocument(Header):
    """``daily/<TICKER>_<digest>.json``: the sessions before the chain's (kind ``history``),
    rewritten only when a session is over or its rows change."""

    ticker: str
    since: str  # first day of the window (the IV-rank window before the chain's session)
    columns: HistoryColumns


@with_config(_STRICT)
class IndexColumns(TypedDict):
    ticker: list[str]
    as_of: list[str]
    underlying_price: list[Number]
    atm_iv: list[Number]
    expirations: list[int]  # how many
    contracts: list[int]
    key: list[str]  # the ticker's chain document
    history_key: list[str | None]  # ... its history document
    features_key: list[str | None]  # ... and its features document


@with_config(_STRICT)
class ChainsIndex(Header):
    """``chains.json``: every ticker with a chain document (kind ``chains``)."""

    limit: int | None
    columns: IndexColumns


@with_config(_STRICT)
class FeaturesDocument(Header):
    """``features.json``: every ticker's scalar features, one column per feature (structured
    features live in the ticker's features document only)."""

    limit: int | None
    tickers: list[str]
    as_of: list[str]
    columns: dict[str, list[Any]]
    missing: list[dict[str, str]]


@with_config(_STRICT)
class AlertRow(TypedDict):
    id: str
    scan_id: str
    ticker: str
    detector_name: str
    score: Number  # null only when a non-finite score reached the store
    metrics: dict[str, Any]
    explanation: dict[str, Any]
    strategies: list[Any]
    created_at: Timestamp


@with_config(_STRICT)
class AlertsDocument(Header):
    """``alerts.json``: alerts scoring at least ``min_score``, newest first."""

    min_score: float
    alerts: list[AlertRow]


@with_config(_STRICT)
class ScanRow(TypedDict):
    scan_id: str
    started_at: Timestamp
    finished_at: Timestamp | None
    status: str
    tickers_scanned: int | None
    chains_collected: int | None
    alerts_generated: int | None
    runtime_seconds: float | None
    errors: list[str]


@with_config(_STRICT)
class ScansDocument(Header):
    """``scans.json``: scans of the last ``days`` days, newest first."""

    days: int
    scans: list[ScanRow]


# The contract of every document, by its ``kind``.
CONTRACTS: dict[str, Any] = {
    "alerts": AlertsDocument,
    "scans": ScansDocument,
    "features": FeaturesDocument,
    "chains": ChainsIndex,
    "chain": ChainDocument,
    "history": HistoryDocument,
    "feature_set": FeatureSetDocument,
    DELIVERY_KIND: DeliveryDocument,  # deliveryformat: the delivery status
}
_ROWS = {"alerts": "alerts", "scans": "scans", DELIVERY_KIND: "sinks"}  # a list per document


@cache
def contract_adapter(kind: str) -> TypeAdapter[Any]:
    return TypeAdapter(CONTRACTS[kind])


def json_schema(contract: Any) -> dict[str, Any]:
    """The JSON Schema (2020-12) of a contract or row type, for OpenAPI and tests."""
    return TypeAdapter(contract).json_schema()


def validate(data: bytes, kind: str | None = None) -> dict[str, Any]:
    """``data`` parsed and checked against its contract (ValueError says what is wrong): the
    types, no NaN, no unknown field, and that every column of a table is ``count`` long."""
    doc = orjson.loads(data)
    if not isinstance(doc, dict):
        raise ValueError("a document is a JSON object")
    kind = kind or str(doc.get("kind"))
    if kind not in CONTRACTS:
        raise ValueError(f"no contract for kind {kind!r}")
    contract_adapter(kind).validate_json(data)
    if doc["kind"] != kind:
        raise ValueError(f"kind {doc['kind']!r}, expected {kind!r}")
    count = doc["count"]
    columns = doc.get("columns")
    rows = doc.get(_ROWS[kind]) if kind in _ROWS else None
    if rows is not None and len(rows) != count:
        raise ValueError(f"count {count}, but {len(rows)} {kind}")
    if kind == "features":
        for name in ("tickers", "as_of", "missing"):
            if len(doc[name]) != count:
                raise ValueError(f"{name}: {len(doc[name])} values for count {count}")
    for name, column in (columns or {}).items():
        n = sum(length for _, length in column["runs"]) if isinstance(column, dict) else len(column)
        if n != count:
            raise ValueError(f"column {name}: {n} values for count {count}")
        if isinstance(column, dict) and any(
            not 0 <= i < len(column["values"]) or length <= 0 for i, length in column["runs"]
        ):
            raise ValueError(f"column {name}: a run names no value or is empty")
    if kind == "chain":
        chain_layout(columns)
    return doc


# ---- reading columnar documents (pure Python: the read side uses these) ----------------------
def chain_layout(columns: Mapping[str, Any]) -> dict[str, tuple[range, range]]:
    """Each expiration's (calls, puts) row ranges in a chain document's columns. Runs of
    ``right`` never cross an expiration's bounds (ValueError if they do)."""
    if "expiration" not in columns:  # an empty document (nothing could be read)
        return {}
    expirations, rights = columns["expiration"], columns["right"]
    names, runs = rights["values"], iter(rights["runs"])
    out: dict[str, tuple[range, range]] = {}
    start = pos = 0
    for e, n in expirations["runs"]:
        stop = start + n
        sides = {"C": range(start, start), "P": range(stop, stop)}
        while pos < stop:
            i, m = next(runs, (0, 0))
            if m <= 0:
                raise ValueError("the runs of right end before the contracts do")
            sides[names[i]] = range(pos, pos + m)
            pos += m
        if pos != stop:
            raise ValueError(
                f"a run of right crosses the end of expiration {expirations['values'][e]}"
            )
        out[expirations["values"][e]] = (sides["C"], sides["P"])
        start = stop
    return out


def table_rows(
    columns: Mapping[str, Sequence[Any]], names: Sequence[str], rows: range | None = None
) -> list[dict[str, Any]]:
    """Rows (dicts with ``names`` in order) of a columnar table, or of the ``rows`` range."""
    picked = [columns[name] for name in names]
    if rows is not None:
        picked = [column[rows.start : rows.stop] for column in picked]
    return [dict(zip(names, values, strict=True)) for values in zip(*picked, strict=True)]


def expand_runs(column: Mapping[str, Any]) -> list[Any]:
    """A run-length column as one value per row."""
    values = column["values"]
    return [values[i] for i, n in column["runs"] for _ in range(n)]


def history_rows(columns: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A history document's rows (``HistoryRow``): runs expanded, times as ISO 8601, and
    ``as_of`` filled in from ``close_at`` where null."""
    plain = {}
    for name in HISTORY_COLUMNS:
        column = columns[name]
        plain[name] = expand_runs(column) if isinstance(column, Mapping) else column
        if name in HISTORY_TIMES:
            plain[name] = [None if s is None else _iso_seconds(s) for s in plain[name]]
    rows = table_rows(plain, HISTORY_COLUMNS)
    for row in rows:
        if row["as_of"] is None:
            row["as_of"] = row["close_at"]
    return rows


def _iso_seconds(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- structured features as tables (the store's and the features documents' form) ----------
TABLE = "$table"  # marks a list of records written as a table: {"$table": keys, "rows": [...]}
# The features that are lists of records (``by_expiry``, ``gex_by_strike`` …).
RECORD_LISTS: frozenset[str] = frozenset(f.name for f in catalogue.FEATURES if f.kind == "records")


def _table(records: Any) -> Any:
    """Records as one table: the keys once (in the records' order), a row of values per record
    (a row's own lists of records as tables too), and the cells of keys a record lacks listed
    in ``absent`` as ``[row, column]``. Anything else (fewer than two records, keys in another
    order) as it is. Records that all have the first one's keys in its order (the usual case:
    this runs for every ticker's features at every computation) are their ``values()``."""
    if type(records) is not list or len(records) < 2 or type(records[0]) is not dict:
        return records
    order = tuple(records[0])
    if all(type(r) is dict and tuple(r) == order for r in records):
        keys, rows, absent = list(order), [list(r.values()) for r in records], []
    else:
        keys = list(order)
        for record in records:
            if type(record) is not dict:
                return records
            keys += [k for k in record if k not in keys]
        rows, absent = [], []
        for i, record in enumerate(records):
            if list(record) != keys:  # keys missing, or in another order (then not a table)
                if [k for k in keys if k in record] != list(record):
                    return records
                absent += [[i, j] for j, k in enumerate(keys) if k not in record]
            rows.append([record.get(k) for k in keys])
    for row in rows:
        if list in map(type, row):  # a cell may be records itself (the test runs in C)
            for j, value in enumerate(row):
                if type(value) is list and value and type(value[0]) is dict:
                    row[j] = _table(value)
    table: dict[str, Any] = {TABLE: keys, "rows": rows}
    if absent:
        table["absent"] = absent
    return table


def compact_features(values: Mapping[str, Any]) -> dict[str, Any]:
    """``compute_features`` values with each list of records a table: its keys once, not in
    every record (~a quarter of a features document). ``expand_features`` is the inverse."""
    return {k: _table(v) if k in RECORD_LISTS else v for k, v in values.items()}


def _records(value: Any) -> Any:
    if type(value) is not dict or TABLE not in value:
        return value
    keys = value[TABLE]
    out = []
    for row in value["rows"]:
        record = dict(zip(keys, row, strict=True))
        for key, item in record.items():
            if type(item) is dict and TABLE in item:
                record[key] = _records(item)
        out.append(record)
    for i, j in value.get("absent", ()):
        del out[i][keys[j]]
    return out


def expand_features(values: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Features as ``compute_features`` made them, from their stored form (tables back to lists
    of records; features stored before tables pass through unchanged)."""
    if values is None:
        return None
    return {k: _records(v) if k in RECORD_LISTS else v for k, v in values.items()}


# ---- manifest ------------------------------------------------------------------------------
class DocumentEntry(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    sha256: str
    bytes: int = Field(ge=0)
    rows: int = Field(ge=0)
    generation: str  # the generation that wrote these bytes (older for delta-skipped documents)
    fingerprint: str | None = None  # what the content was built from, for delta export


class KindResult(BaseModel):
    """What one kind's export did: the seed's result shape, plus keys written and skipped."""

    model_config = ConfigDict(frozen=True, defer_build=True)

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

    model_config = ConfigDict(frozen=True, defer_build=True)

    quotes_as_of: datetime  # the newest snapshot's as_of
    session: date  # its New York session
    closes_at: datetime  # that session's close (13:00 New York on early closes)
    next_open: datetime  # the following session's open
    next_close: datetime  # ... and its close: past it, at least a whole session was missed


class Manifest(BaseModel):
    """The pointer a reader follows: everything of one generation, with checksums."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    format_version: int = FORMAT_VERSION
    generation: str
    generated_at: datetime
    previous_generation: str | None = None
    duration_ms: float = 0.0
    documents: dict[str, DocumentEntry]
    chains: dict[str, str] = Field(default_factory=dict)  # ticker -> chain document key
    histories: dict[str, str] = Field(default_factory=dict)  # ticker -> history document key
    feature_sets: dict[str, str] = Field(default_factory=dict)  # ticker -> features document
    archives: dict[str, str] = Field(default_factory=dict)  # kind -> archive key
    results: dict[str, KindResult] = Field(default_factory=dict)
    storage_writes: int = 0
    provider: str | None = None  # where the quotes come from: synthetic, file or yfinance
    market: MarketClock | None = None
    verified_at: datetime | None = None  # when the writer last re-read every document's bytes


def archives_newest_first(storage: Storage, kind: str) -> list[str]:
    """Archive keys of one kind (``manifest`` included), newest first."""
    found = sorted(
        (parsed.order, info.key)
        for info in storage.list(f"{ARCHIVE_PREFIX}{kind}_")
        if (parsed := parse_archive_key(info.key)) and parsed.kind == kind
    )
    return [key for _, key in reversed(found)]


def archived_manifests(storage: Storage, limit: int | None = None) -> Iterator[Manifest]:
    """Valid archived manifests, newest first (damaged ones are skipped)."""
    for key in archives_newest_first(storage, "manifest")[:limit]:
        try:
            yield Manifest.model_validate_json(gzip.decompress(storage.get(key).data))
        except (ObjectNotFound, ValueError, OSError, EOFError):
            continue


def archived_ticker_keys(storage: Storage, limit: int) -> set[str]:
    """Every per-ticker document key the newest ``limit`` archived manifests name (damaged
    ones skipped), read without building the manifests: retention needs only these maps."""
    named: set[str] = set()
    for key in archives_newest_first(storage, "manifest")[:limit]:
        try:
            doc = orjson.loads(gzip.decompress(storage.get(key).data))
        except (ObjectNotFound, ValueError, OSError, EOFError):
            continue
        maps = [doc.get(name) for name in PER_TICKER_MAPS] if isinstance(doc, dict) else []
        for keys in maps:
            if isinstance(keys, dict):
                named.update(k for k in keys.values() if isinstance(k, str))
    return named


def load_manifest(storage: Storage) -> Manifest | None:
    """The published manifest; if it is missing, damaged or unreadable, the newest archived
    one; else None. The writer must continue the generation sequence even when
    ``manifest.json`` was lost."""
    try:
        return Manifest.model_validate_json(storage.get(MANIFEST_KEY).data)
    except ObjectNotFound:
        pass
    except ValueError:
        log_event("manifest_unreadable", key=MANIFEST_KEY)
    except (OSError, InvalidKey) as exc:  # unreadable, or a symlink out: the writer replaces it
        log_event("manifest_unreadable", key=MANIFEST_KEY, error=f"{type(exc).__name__}: {exc}")
    return next(archived_manifests(storage), None)
