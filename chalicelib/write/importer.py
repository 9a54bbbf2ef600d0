"""Imports end-of-day option chain files into the staging tables the file provider replays.

A file goes through DuckDB as columns; no contract becomes a Python object:

1. **inspect**: the header (or the JSON document) tells the format (:mod:`importformats`);
   an unknown format or an unreadable file raises before anything is staged;
2. **read**: the format's select list over DuckDB's reader fills a temp table of ``RAW_COLUMNS``
   (one parse of the file; progress is reported while it runs);
3. **snapshots**: rows group by (ticker, quote time). A group with a bad ticker, no quote date or
   no underlying price is rejected whole; one whose (ticker, as_of) is already staged is skipped
   whole, which makes re-importing a file a no-op;
4. **units**: IV in percent, and theta/vega/rho scales, are checked on a sample against the
   pricing core at the vendor's own IV (``UNIT_CANDIDATES``);
5. **stage**, in one transaction and one statement: rows breaking the collector's rules
   (``REASON`` mirrors ``chain.reject_reasons``) are left out and counted by reason, a contract
   repeated within a snapshot (Cboe lists SPX and SPXW series on one underlying, say) keeps its
   most traded row (volume, then open interest), values are converted to our units; then each
   snapshot is recorded with its contract count.

Missing IVs and greeks stay NULL here: the file provider computes them with the pricing core when
it serves the day (:mod:`providers.completion`), a day's chains in one vectorised pass, so the
import itself is a pass of DuckDB over the file. Quote times become UTC ``as_of``: a date alone
means that day's 16:00 New York close (:func:`calendar.session_bounds`), a time is read in the
format's zone.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import re
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from datetime import time as dtime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import orjson
from numpy.typing import NDArray

from chalicelib import exportformat as export_format
from chalicelib.config import TICKER_PATTERN
from chalicelib.domain import calendar as cal
from chalicelib.domain.pricing import bs_greeks
from chalicelib.errors import OCDError
from chalicelib.logs import log_event
from chalicelib.write.importformats import (
    GREEKS,
    OCD_CHAIN,
    RAW_COLUMNS,
    UNIT_CANDIDATES,
    ChainFormat,
    Columns,
    describe_expected,
    detect,
    normalise_header,
    sql_literal,
    time_format,
)
from chalicelib.write.providers.completion import years_to_expiry
from chalicelib.write.store import DatabaseError, Store

IMPORTABLE_SCHEMAS = (2, 3, export_format.SCHEMA_VERSION)  # chain documents (3 and 4 alike)

UNIT_SAMPLE = 4000
UNIT_MIN_ROWS = 12  # fewer near-the-money rows than this: the format's documented units
UNIT_TOLERANCE = math.log(1.3)  # a scale is taken when the data's median ratio is this close
_TICKER = re.compile(TICKER_PATTERN)
_HEAD_BYTES = 1 << 16
_JSON_START = re.compile(rb"\{|\[\s*[{\]]")

# One callback type for progress: (phase, fraction done in [0, 1], rows done if known)
Progress = Callable[[str, float, int | None], None]


class UnknownFormat(OCDError):
    """The file's header (or document) matches no format we read."""

    exit_code = 65  # EX_DATAERR


class UnreadableFile(OCDError):
    """The file is missing, not readable, or damaged (corrupt gzip or Parquet, …)."""

    exit_code = 66  # EX_NOINPUT


@dataclass(frozen=True)
class SourceFile:
    """A file whose format is known, ready to import."""

    path: Path
    format: ChainFormat
    reader: str  # a SQL table expression (or the name of a view registered at import)
    columns: Columns
    ticker: str | None = None
    estimated_rows: int | None = None
    document: dict[str, NDArray] | None = None  # JSON documents, as columns


@dataclass
class FileReport:
    path: str
    format: str
    rows: int = 0  # contract rows read (after melting wide rows)
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    skipped: int = 0  # rows of snapshots staged before (re-import)
    snapshots: int = 0
    snapshots_skipped: int = 0
    tickers: list[str] = field(default_factory=list)
    dates: list[str] = field(default_factory=list)
    units: dict[str, float] = field(default_factory=dict)
    missing: Counter[str] = field(default_factory=Counter)  # computed when replayed
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "rows": self.rows,
            "accepted": self.accepted,
            "rejected": dict(sorted(self.rejected.items())),
            "skipped_already_imported": self.skipped,
            "snapshots": self.snapshots,
            "snapshots_already_imported": self.snapshots_skipped,
            "tickers": self.tickers,
            "dates": self.dates,
            "units": self.units,
            "missing": dict(sorted(self.missing.items())),
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows / self.seconds) if self.seconds > 0 else None,
        }


# ---- inspect ---------------------------------------------------------------------------------
def inspect(store: Store, path: Path | str, ticker: str | None = None) -> SourceFile:
    """Tell the format of ``path`` from its header; raises UnknownFormat or UnreadableFile."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
        size = path.stat().st_size
    except OSError as exc:
        raise UnreadableFile(f"{path}: cannot read: {exc.strerror or exc}") from None
    if magic == b"PAR1":
        return _inspect_parquet(store, path, ticker)
    if magic == b"PK\x03\x04":
        raise UnknownFormat(f"{path}: a zip archive; unzip it first (CSV, gzip, Parquet, JSON)")
    gz = magic[:2] == b"\x1f\x8b"
    head = _head(path, gz)
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not stripped:
        raise UnknownFormat(f"{path}: empty file, no header; expected {describe_expected()}")
    if _JSON_START.match(stripped):  # not "[QUOTE_…": OptionsDX headers start with a bracket
        return _inspect_json(path, gz)
    first = stripped.split(b"\n", 1)[0].decode("utf-8", errors="replace").rstrip("\r")
    header = next(csv.reader([first]), [])
    names = normalise_header(header)
    fmt = detect(names)
    if fmt is None:
        shown = ", ".join(h.strip() for h in header[:8]) + (", …" if len(header) > 8 else "")
        raise UnknownFormat(
            f"{path}: unknown format (header: {shown or first[:80]}); "
            f"expected one of: {describe_expected()}"
        )
    if fmt.needs_ticker:
        ticker = _ticker_for(path, ticker, fmt)
    columns = {n: "VARCHAR" for n in names}
    sample = list(csv.reader(stripped.decode("utf-8", errors="replace").splitlines()[1:50]))
    seen = {
        name: found
        for i, name in enumerate(names)
        if (found := time_format([row[i] for row in sample if i < len(row)])) is not None
    }
    spec = "{" + ", ".join(f"{sql_literal(n)}: 'VARCHAR'" for n in names) + "}"
    reader = (
        f"read_csv({sql_literal(str(path))}, header = true, auto_detect = false, delim = ',', "
        f"quote = '\"', escape = '\"', columns = {spec}, "
        f"compression = '{'gzip' if gz else 'none'}', null_padding = true, "
        "store_rejects = true, rejects_table = 'import_rejects', "
        "rejects_scan = 'import_reject_scans')"
    )
    rows = _estimate_rows(path, gz, size, head)
    return SourceFile(path, fmt, reader, Columns(columns, seen), ticker, rows)


def _head(path: Path, gz: bool) -> bytes:
    try:
        with gzip.open(path, "rb") if gz else path.open("rb") as fh:
            return fh.read(_HEAD_BYTES)
    except (OSError, EOFError, zlib.error) as exc:
        raise UnreadableFile(f"{path}: cannot read: {exc}") from None


def _estimate_rows(path: Path, gz: bool, size: int, head: bytes) -> int | None:
    """Rows in a CSV, from the size and the mean length of the first lines (for the ETA)."""
    lines = head.count(b"\n")
    if lines < 2:
        return None
    if gz:  # the gzip trailer holds the uncompressed size mod 2^32
        with path.open("rb") as fh:
            fh.seek(-4, io.SEEK_END)
            size = int.from_bytes(fh.read(4), "little")
    return max(int(size / (len(head) / lines)) - 1, 0)


def _inspect_parquet(store: Store, path: Path, ticker: str | None) -> SourceFile:
    reader = f"read_parquet({sql_literal(str(path))})"
    try:
        described = store.rows(f"DESCRIBE SELECT * FROM {reader}")
        count = store.rows(f"SELECT count(*) FROM {reader}")[0][0]
    except DatabaseError as exc:
        raise UnreadableFile(f"{path}: cannot read Parquet: {_first_line(exc)}") from None
    original = [str(r[0]) for r in described]
    names = normalise_header(original)
    fmt = detect(names)
    if fmt is None:
        raise UnknownFormat(
            f"{path}: unknown format (Parquet columns: {', '.join(original[:8])}); "
            f"expected one of: {describe_expected()}"
        )
    if fmt.needs_ticker:
        ticker = _ticker_for(path, ticker, fmt)
    renamed = ", ".join(
        f"{_quoted(o)} AS {_quoted(n)}" for o, n in zip(original, names, strict=True)
    )
    types = {n: str(r[1]) for n, r in zip(names, described, strict=True)}
    return SourceFile(path, fmt, f"(SELECT {renamed} FROM {reader})", Columns(types), ticker,
                      int(count))  # fmt: skip


def _inspect_json(path: Path, gz: bool) -> SourceFile:
    try:
        raw = gzip.decompress(path.read_bytes()) if gz else path.read_bytes()
        value = orjson.loads(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise UnreadableFile(f"{path}: cannot read: {exc}") from None
    except orjson.JSONDecodeError as exc:
        raise UnreadableFile(f"{path}: damaged JSON: {exc}") from None
    docs = value if isinstance(value, list) else [value]
    if not docs or not all(isinstance(d, dict) and set(OCD_CHAIN.required) <= set(d) for d in docs):
        raise UnknownFormat(
            f"{path}: JSON, but not an ocd chain document (needs {', '.join(OCD_CHAIN.required)})"
        )
    try:
        columns = _document_columns(docs)
    except (TypeError, ValueError, KeyError) as exc:
        raise UnreadableFile(f"{path}: damaged chain document: {exc}") from None
    types = dict(RAW_COLUMNS)
    return SourceFile(path, OCD_CHAIN, "import_document", Columns(types), None,
                      len(columns["strike"]), columns)  # fmt: skip


def _document_columns(docs: list[dict[str, Any]]) -> dict[str, NDArray]:
    """Chain documents (columnar, ``exportformat.ChainDocument``) as RAW_COLUMNS arrays
    (None → NaN; stamps naive UTC). Format 2's carry the same contracts (and the features,
    which are not imported)."""
    cols: dict[str, list[Any]] = {k: [] for k in RAW_COLUMNS}
    for doc in docs:
        if doc.get("schema_version") not in IMPORTABLE_SCHEMAS:
            raise ValueError(f"schema_version {doc.get('schema_version')!r}, not one of "
                             f"{IMPORTABLE_SCHEMAS}")  # fmt: skip
        columns = doc["columns"]
        n = doc["count"]
        as_of = datetime.fromisoformat(str(doc["as_of"]).replace("Z", "+00:00"))
        stamp = as_of.astimezone(UTC).replace(tzinfo=None) if as_of.tzinfo else as_of
        cols["ticker"] += [doc["ticker"]] * n
        cols["stamp"] += [stamp] * n
        cols["spot"] += [doc["underlying_price"]] * n
        cols["dividend_yield"] += [doc.get("dividend_yield")] * n
        expirations = export_format.expand_runs(columns["expiration"])
        cols["expiration"] += [np.datetime64(e, "s") for e in expirations]
        cols["right"] += export_format.expand_runs(columns["right"])
        for k in ("strike", "bid", "ask", "last", "volume", "open_interest",
                  "implied_volatility", *GREEKS):  # fmt: skip
            cols[k] += columns[k]
        if not all(len(cols[k]) == len(cols["ticker"]) for k in cols):
            raise ValueError(f"{doc['ticker']}: columns are not all {n} long")
    out: dict[str, NDArray] = {}
    for k, t in RAW_COLUMNS.items():
        if t == "DOUBLE":
            out[k] = np.array([np.nan if v is None else v for v in cols[k]], dtype=np.float64)
        elif k == "stamp":
            out[k] = np.array(cols[k], dtype="datetime64[us]")
        elif k == "expiration":
            out[k] = np.array(cols[k], dtype="datetime64[s]")
        else:
            out[k] = np.array(cols[k], dtype=object)
    return out


def _ticker_for(path: Path, given: str | None, fmt: ChainFormat) -> str:
    """The ticker of a format without a ticker column: given, else the file name's first word."""
    if given:
        ticker = given.strip().upper()
    else:
        stem = path.name.split(".")[0]
        ticker = re.split(r"[^A-Za-z0-9]", stem, maxsplit=1)[0].upper()
    if not _TICKER.fullmatch(ticker):
        raise UnknownFormat(
            f"{path}: {fmt.title} rows carry no ticker and none could be taken from the file "
            f"name ({ticker!r}); pass --ticker"
        )
    return ticker


# ---- import ----------------------------------------------------------------------------------
REASON = """CASE
    WHEN r."right" IS NULL OR r."right" NOT IN ('C', 'P') THEN 'bad_right'
    WHEN NOT coalesce(isfinite(r.strike) AND isfinite(r.bid) AND isfinite(r.ask), false)
      OR coalesce(isinf(r.last) OR isinf(r.volume) OR isinf(r.open_interest)
         OR isinf(r.implied_volatility) OR isinf(r.delta) OR isinf(r.gamma) OR isinf(r.theta)
         OR isinf(r.vega) OR isinf(r.rho), false) THEN 'non_finite'
    WHEN r.strike <= 0 THEN 'non_positive_strike'
    WHEN coalesce(r.bid < 0 OR r.ask < 0 OR r.last < 0 OR r.implied_volatility < 0, false)
      THEN 'negative_price'
    WHEN coalesce(r.volume < 0 OR r.open_interest < 0, false) THEN 'negative_size'
    WHEN r.bid > r.ask THEN 'bid_above_ask'
    WHEN r.expiration IS NULL THEN 'bad_date'
    WHEN r.expiration < CAST(s.as_of AS DATE) THEN 'expired'
END"""
ROWS = "import_rows r JOIN import_snaps s ON r.ticker = s.ticker AND r.stamp = s.stamp"
SNAPSHOT_GROUPS = """
    SELECT ticker, stamp, count(*),
           median(spot) FILTER (spot > 0 AND isfinite(spot)),
           max(dividend_yield) FILTER (isfinite(dividend_yield))
    FROM import_rows GROUP BY ALL
"""
# Duplicates cost a hash of every row to rule out; hashes collide, so a hit is confirmed exactly.
MAYBE_DUPLICATES = """
    SELECT count(*) FROM (
        SELECT 1 FROM import_rows GROUP BY hash(ticker, stamp, expiration, strike, "right")
        HAVING count(*) > 1
    )
"""
REJECT_COUNTS = f"""
    SELECT reason, count(*) FROM (SELECT {REASON} AS reason FROM {ROWS})
    WHERE reason IS NOT NULL GROUP BY ALL
"""
DUPLICATES = f"""
    CREATE OR REPLACE TEMP TABLE import_drop AS
    SELECT rowid AS rid FROM (
        SELECT r.rowid, row_number() OVER (
                   PARTITION BY s.ticker, s.as_of, r.expiration, r.strike, r."right"
                   ORDER BY r.volume DESC NULLS LAST, r.open_interest DESC NULLS LAST,
                            r.bid DESC NULLS LAST, r.ask NULLS LAST, r.rowid) AS n
        FROM {ROWS} WHERE ({REASON}) IS NULL
    ) WHERE n > 1
"""
UNIT_SAMPLE_SQL = f"""
    SELECT r.strike, r."right" = 'C' AS is_call, r.expiration, s.as_of, s.spot,
           s.dividend_yield, r.implied_volatility, r.theta, r.vega, r.rho
    FROM {ROWS}
    WHERE r.implied_volatility > 0 AND r."right" IN ('C', 'P')
      AND r.strike BETWEEN s.spot * 0.8 AND s.spot * 1.25
      AND r.expiration BETWEEN CAST(s.as_of AS DATE) + 14 AND CAST(s.as_of AS DATE) + 400
    LIMIT {UNIT_SAMPLE}
"""
INSERT = """
    INSERT INTO import_quotes
    SELECT r.ticker, s.as_of, r.expiration, r.strike, r."right", r.bid, r.ask, r.last,
           CAST(CASE WHEN isfinite(r.volume) THEN round(r.volume) ELSE 0 END AS BIGINT),
           CAST(round(r.open_interest) AS BIGINT), r.implied_volatility / {iv}, r.delta,
           r.gamma, r.theta / {theta}, r.vega / {vega}, r.rho / {rho}
    FROM {rows} {drop}
    WHERE ({reason}) IS NULL
"""
STAGED_COUNTS = """
    SELECT q.ticker, q.as_of, count(*) AS contracts,
           count(*) - count(q.implied_volatility) AS implied_volatility,
           count(*) - count(q.delta) AS delta, count(*) - count(q.gamma) AS gamma,
           count(*) - count(q.theta) AS theta, count(*) - count(q.vega) AS vega,
           count(*) - count(q.rho) AS rho
    FROM import_quotes q SEMI JOIN import_snaps s ON q.ticker = s.ticker AND q.as_of = s.as_of
    WHERE q.as_of BETWEEN ? AND ?
    GROUP BY ALL
"""
STAGE_SNAPSHOTS = """
    INSERT INTO import_snapshots
    SELECT c.ticker, c.as_of, any_value(s.spot), any_value(s.dividend_yield),
           any_value(c.contracts), ?, ?, ?
    FROM import_counts c JOIN import_snaps s USING (ticker, as_of)
    GROUP BY c.ticker, c.as_of
"""


def import_file(
    store: Store,
    source: SourceFile,
    *,
    progress: Progress | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> FileReport:
    """Stage ``source``'s new snapshots; returns what was read, staged, rejected and skipped."""
    started = time.perf_counter()
    report = FileReport(path=str(source.path), format=source.format.name)
    # Rows need no order (staging is read by key): DuckDB then reads and writes in parallel
    # without reassembling the file's order, which measured ~20 % less CPU on 1M rows.
    store.rows("SET preserve_insertion_order = false")
    try:
        _read(store, source, report, progress)
        new = _snapshots(store, source.format, report)
        if new:
            with store.registered("import_snaps", _snap_columns(new)):
                report.units = _units(store, source.format)
                _stage(store, source, report, new, clock(), progress)
    finally:  # the file's rows live in memory until then
        for table in ("import_rows", "import_drop"):
            store.rows(f"DROP TABLE IF EXISTS {table}")
        store.rows("RESET preserve_insertion_order")
    report.seconds = time.perf_counter() - started
    log_event("import_file", **report.as_dict())
    return report


def _read(store: Store, source: SourceFile, report: FileReport, progress: Progress | None) -> None:
    sql = source.format.sql(source.columns, source.reader, source.ticker)
    for table in ("import_rejects", "import_reject_scans"):
        store.rows(f"DROP TABLE IF EXISTS {table}")
    try:
        with _registered(store, source), _watching(store, progress, "read", source.estimated_rows):
            store.rows(f"CREATE OR REPLACE TEMP TABLE import_rows AS {sql}")
    except DatabaseError as exc:
        raise UnreadableFile(f"{source.path}: cannot read: {_first_line(exc)}") from None
    report.rows = store.count("import_rows")
    if progress is not None:
        progress("read", 1.0, report.rows)
    if store.rows("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'import_rejects'")[0][0]:
        malformed = store.count("import_rejects")
        if malformed:
            report.rejected["malformed_line"] += malformed


@contextmanager
def _registered(store: Store, source: SourceFile) -> Iterator[None]:
    if source.document is None:
        yield
        return
    with store.registered(source.reader, dict(source.document)):
        yield


@contextmanager
def _watching(
    store: Store, progress: Progress | None, phase: str, rows: int | None
) -> Iterator[None]:
    """Report the running query's progress from a helper thread while the block runs."""
    if progress is None:
        yield
        return
    stop = threading.Event()
    with store.progress_tracking() as percent:

        def poll() -> None:
            while not stop.wait(0.2):
                done = percent()
                if done >= 0:
                    frac = min(done / 100, 1.0)
                    progress(phase, frac, int(frac * rows) if rows else None)

        thread = threading.Thread(target=poll, name="import-progress", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()


@dataclass(frozen=True)
class _Snap:
    ticker: str
    stamp: datetime
    as_of: datetime  # naive UTC
    spot: float
    div_yield: float
    rows: int


def _snapshots(store: Store, fmt: ChainFormat, report: FileReport) -> list[_Snap]:
    """New snapshots of the file; the others are counted as rejected or already imported."""
    groups = store.rows(SNAPSHOT_GROUPS)
    tickers = sorted({str(t) for t, *_ in groups if t is not None})
    staged = {
        (str(t), a)
        for t, a in store.rows(
            "SELECT ticker, as_of FROM import_snapshots WHERE ticker IN (SELECT unnest(?))",
            [tickers],
        )
    }
    zone = ZoneInfo(fmt.zone)
    new: list[_Snap] = []
    skipped: set[tuple[str, datetime]] = set()
    for ticker, stamp, n, spot, q in groups:
        if ticker is None or not _TICKER.fullmatch(ticker):
            report.rejected["bad_ticker"] += n
        elif stamp is None:
            report.rejected["bad_date"] += n
        elif spot is None:
            report.rejected["no_underlying_price"] += n
        else:
            as_of = _as_of(stamp, zone)
            if (ticker, as_of) in staged:
                report.skipped += n
                skipped.add((ticker, as_of))
            else:
                new.append(_Snap(ticker, stamp, as_of, float(spot), float(q or 0.0), int(n)))
    report.snapshots_skipped = len(skipped)
    return new


def _as_of(stamp: datetime, zone: ZoneInfo) -> datetime:
    """A naive stamp in ``zone`` as naive UTC; midnight (a date alone) is the 16:00 close."""
    if zone.key == "UTC":
        return stamp
    if stamp.time() == dtime(0, 0):
        close = cal.session_bounds(stamp.date())[1]
        return close.replace(tzinfo=None)
    return stamp.replace(tzinfo=zone).astimezone(UTC).replace(tzinfo=None)


def _snap_columns(new: list[_Snap]) -> dict[str, NDArray]:
    return {
        "ticker": np.array([s.ticker for s in new], dtype=object),
        "stamp": np.array([s.stamp for s in new], dtype="datetime64[us]"),
        "as_of": np.array([s.as_of for s in new], dtype="datetime64[us]"),
        "spot": np.array([s.spot for s in new], dtype=np.float64),
        "dividend_yield": np.array([s.div_yield for s in new], dtype=np.float64),
    }


def _units(store: Store, fmt: ChainFormat) -> dict[str, float]:
    """Divisors to our units: the format's defaults, corrected by what a sample shows."""
    units = {name: fmt.units.scale(name) for name in ("iv", "theta", "vega", "rho")}
    if not fmt.units.checked:
        return units
    median_iv = store.rows(
        "SELECT median(implied_volatility) FROM import_rows WHERE implied_volatility > 0"
    )[0][0]
    if median_iv is not None and median_iv > 3.0:  # a median IV above 300 % is IV in percent
        units["iv"] = 100.0
    sample = store.columns(UNIT_SAMPLE_SQL)
    if len(sample["strike"]) < UNIT_MIN_ROWS:
        return units
    t = years_to_expiry(np.ma.getdata(sample["expiration"]), np.ma.getdata(sample["as_of"]))
    ours = bs_greeks(
        _floats(sample["spot"]),
        _floats(sample["strike"]),
        t,
        0.0,  # a rate error moves the ratio a little; the scales are orders apart
        _floats(sample["implied_volatility"]) / units["iv"],
        np.ma.getdata(sample["is_call"]).astype(bool),
        _floats(sample["dividend_yield"]),
    )._asdict()
    for name, candidates in UNIT_CANDIDATES.items():
        theirs, mine = _floats(sample[name]), ours[name]
        with np.errstate(all="ignore"):
            ratio = theirs / mine
        ratio = ratio[np.isfinite(ratio) & (ratio > 0) & (np.abs(mine) > 1e-6)]
        if ratio.size < UNIT_MIN_ROWS:
            continue
        observed = float(np.median(ratio))
        best = min(candidates, key=lambda c: abs(math.log(observed / c)))
        if abs(math.log(observed / best)) < UNIT_TOLERANCE:
            units[name] = best
    return units


def _stage(
    store: Store,
    source: SourceFile,
    report: FileReport,
    new: list[_Snap],
    now: datetime,
    progress: Progress | None,
) -> None:
    drop = ""
    merged = len({(n.ticker, n.as_of) for n in new}) < len(new)  # two stamps, one as_of
    if merged or store.rows(MAYBE_DUPLICATES)[0][0]:
        store.rows(DUPLICATES)
        duplicates = store.count("import_drop")
        if duplicates:
            report.rejected["duplicate"] += duplicates
            drop = "ANTI JOIN import_drop x ON x.rid = r.rowid"
    units = {k: repr(float(v)) for k, v in report.units.items()}
    insert = INSERT.format(rows=ROWS, drop=drop, reason=REASON, **units)
    span = [min(n.as_of for n in new), max(n.as_of for n in new)]
    with store.transaction():
        with _watching(store, progress, "stage", sum(n.rows for n in new)):
            inserted = store.rows(insert)
        report.accepted = int(inserted[0][0]) if inserted else 0
        if progress is not None:
            progress("stage", 1.0, report.accepted)
        counts = store.columns(STAGED_COUNTS, span)
        with store.registered("import_counts", counts):
            store.rows(STAGE_SNAPSHOTS, [source.format.name, str(source.path), _naive(now)])
    rejected = sum(n.rows for n in new) - report.accepted - report.rejected["duplicate"]
    if rejected > 0:
        report.rejected.update({str(k): int(n) for k, n in store.rows(REJECT_COUNTS)})
    for name in ("implied_volatility", *GREEKS):
        if missing := int(np.sum(counts[name])):
            report.missing[name] = missing
    report.snapshots = len(counts["ticker"])
    report.tickers = sorted({str(t) for t in counts["ticker"]})
    report.dates = sorted({str(d)[:10] for d in counts["as_of"]})


def _floats(values: NDArray) -> NDArray[np.float64]:
    return np.ma.filled(np.ma.asarray(values, dtype=np.float64), np.nan)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
