"""The sealed history: immutable Parquet partitions of closed sessions, and their manifest.

Layout under the export root (local directory or S3 prefix), Hive-partitioned by session date:

    history/chains/date=YYYY-MM-DD/part-<id>.parquet     each ticker's closing chain
    history/intraday/date=YYYY-MM-DD/part-<id>.parquet   every snapshot of the session
    history/manifest.json                                every file, with sha256 and rows

Like a table format (Iceberg, Delta): files are written once under names no other content can
take, re-read and checked, and only then named by the manifest, which is written last. A file
the manifest does not name is a crashed seal's leftover and may be removed. ``part-<id>`` is
derived from the snapshots a file holds, so a retried seal of the same snapshots writes the same
key. The columns are the contract with readers (``ocd.py import``, DuckDB's ``read_parquet``,
Athena); ``date`` comes from the path, not the file.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from chalicelib.errors import ObjectNotFound
from chalicelib.exportformat import dumps
from chalicelib.logs import log_event
from chalicelib.storage.base import Storage

SealKind = Literal["chains", "intraday"]
SEAL_KINDS: tuple[SealKind, ...] = ("chains", "intraday")
SCHEMA_VERSION = 1
HISTORY_PREFIX = "history/"
MANIFEST_KEY = "history/manifest.json"

# (column, DuckDB type, Athena type): the sealed files' schema, in file order.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("ticker", "VARCHAR", "string"),
    ("as_of", "TIMESTAMP WITH TIME ZONE", "timestamp"),  # UTC instant
    ("expiration", "DATE", "date"),
    ("strike", "DOUBLE", "double"),
    ("right", "VARCHAR", "string"),  # 'C' or 'P'
    ("bid", "DOUBLE", "double"),
    ("ask", "DOUBLE", "double"),
    ("last", "DOUBLE", "double"),
    ("volume", "BIGINT", "bigint"),
    ("open_interest", "BIGINT", "bigint"),
    ("implied_volatility", "DOUBLE", "double"),
    ("delta", "DOUBLE", "double"),
    ("gamma", "DOUBLE", "double"),
    ("theta", "DOUBLE", "double"),
    ("vega", "DOUBLE", "double"),
    ("rho", "DOUBLE", "double"),
    ("underlying_price", "DOUBLE", "double"),
)
COLUMN_NAMES = tuple(name for name, _, _ in COLUMNS)
PARTITION_COLUMN = "date"

_KEY_RE = re.compile(
    r"^history/(?P<kind>chains|intraday)/date=(?P<day>\d{4}-\d{2}-\d{2})/(?P<name>part-[0-9a-f]+)"
    r"\.parquet$"
)


def partition_prefix(kind: SealKind, session: date) -> str:
    return f"{HISTORY_PREFIX}{kind}/date={session:%Y-%m-%d}/"


def partition_key(kind: SealKind, session: date, name: str) -> str:
    return f"{partition_prefix(kind, session)}{name}.parquet"


def parse_partition_key(key: str) -> tuple[SealKind, date, str] | None:
    """(kind, session, name) of a sealed file's key, or None for any other key."""
    match = _KEY_RE.match(key)
    if not match:
        return None
    kind: SealKind = "chains" if match["kind"] == "chains" else "intraday"
    return kind, date.fromisoformat(match["day"]), match["name"]


def part_name(kind: SealKind, session: date, snapshots: Iterable[tuple[str, datetime]]) -> str:
    """A name fixed by what the file holds: a retried seal of the same snapshots reuses it."""
    digest = hashlib.sha256(f"{SCHEMA_VERSION}|{kind}|{session}".encode())
    for ticker, as_of in sorted(snapshots):
        digest.update(f"|{ticker}@{as_of.isoformat()}".encode())
    return f"part-{digest.hexdigest()[:20]}"


class SealedFile(BaseModel):
    """One immutable partition file, as the manifest names it."""

    model_config = ConfigDict(frozen=True)

    key: str
    kind: SealKind
    date: date
    sha256: str
    bytes: int = Field(ge=0)
    rows: int = Field(ge=0)
    snapshots: int = Field(ge=0)
    schema_version: int = SCHEMA_VERSION


class HistoryManifest(BaseModel):
    """Every sealed file; a reader that follows it never sees a partial or orphaned file."""

    model_config = ConfigDict(frozen=True)

    schema_version: int = SCHEMA_VERSION
    generated_at: datetime
    columns: list[str] = Field(default_factory=lambda: list(COLUMN_NAMES))
    partition_column: str = PARTITION_COLUMN
    files: list[SealedFile] = Field(default_factory=list)

    def body(self) -> bytes:
        return dumps(self.model_dump(mode="json"))


def load_history_manifest(storage: Storage) -> HistoryManifest | None:
    """The published history manifest; None when there is none or it cannot be parsed."""
    try:
        return HistoryManifest.model_validate_json(storage.get(MANIFEST_KEY).data)
    except ObjectNotFound:
        return None
    except ValueError:
        log_event("history_manifest_unreadable", key=MANIFEST_KEY)
        return None
