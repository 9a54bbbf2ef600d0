"""JSONExporter: publishes the store as JSON documents, like a table format commits a snapshot.

Publication protocol (also in the README):
1. per-ticker chain and history documents go to new, content-addressed keys (immutable;
   unchanged ones are not rewritten, after checking they are still there with their size);
2. each rebuilt kind gets an immutable gzip archive under a key of its generation's own;
3. the latest documents (``alerts.json`` …) are replaced, each atomically;
4. ``manifest.json`` is replaced last: it names the generation and every document's sha256.
A reader follows the manifest. Before step 4 it still sees the previous generation: latest
documents that no longer match their checksum are read from that generation's archives. A crash
at any step therefore leaves the previous generation complete and served. Retention runs only
after a successful publish and never removes what the newest generations reference.

Every document is built to its contract in ``exportformat``. Chain documents are columnar and
built from DuckDB's result columns (put in order and rounded in numpy) with orjson, a batch
of tickers at a time: memory stays bounded however long the watchlist, the next batch is
queried on a second connection while Python orders, rounds and serializes this one, and on S3
the PUTs run on threads too (``Storage.deferred_writers``).

Kinds: ``KINDS`` maps each kind of a generation to its builder and the parameters
``export_all`` gives it. To add one: its contract (and its latest key, if not ``<kind>.json``)
in ``exportformat``; a method ``_<kind>(self, pub, **params) -> Built``; one entry in ``KINDS``.
"""

from __future__ import annotations

import errno
import gc
import gzip
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from queue import Full, Queue
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from chalicelib import catalogue
from chalicelib import exportformat as fmt
from chalicelib.config import TICKER_PATTERN, Settings
from chalicelib.domain import calendar as cal
from chalicelib.errors import InvalidKey, ObjectNotFound, OCDError, PreconditionFailed
from chalicelib.exportformat import DocumentEntry, KindResult, Manifest, MarketClock
from chalicelib.logs import log_event
from chalicelib.storage.base import Storage
from chalicelib.write import export_queries as q
from chalicelib.write.delivery.feed import alerts_feed
from chalicelib.write.delivery.status import delivery_document
from chalicelib.write.store import Store

KEEP_GENERATIONS = 3  # per-ticker documents stay while one of this many manifests names them
KEEP_ARCHIVES = 3  # archives kept per kind regardless of age
# Contracts (or history rows) serialised per query: bounds the writer's memory.
CHAIN_BATCH_ROWS = 250_000
# Tickers whose features documents are read per query (~20 KB each): each query decompresses
# the features of every row group it cannot skip, so fewer, larger queries.
FEATURE_BATCH = 2500
PER_TICKER = fmt.PER_TICKER_MAPS
# Checksums of kept per-ticker documents are verified (hourly) on this many threads. They are
# written on ``Storage.deferred_writers`` threads: on S3 so a PUT's latency overlaps the building
# of the next documents; on local disk, with no fsync per document, inline.
VERIFY_THREADS = 8
ARCHIVE_GZIP_LEVEL = 1  # archives are fallback copies: 3-4x faster than 6, ~10 % larger
VERIFY_EVERY = timedelta(hours=1)  # how often every unchanged document's bytes are re-read
_TICKER = re.compile(TICKER_PATTERN)
_NUMPY = orjson.OPT_SERIALIZE_NUMPY
CONTENT_TYPES = {"json": "application/json", "atom": "application/atom+xml"}
# The export precision of each numeric contract column (rounded here, not in SQL).
CONTRACT_PRECISION = {f.name: f.precision for f in catalogue.CONTRACT_FIELDS
                      if f.kind == "number" and f.name in fmt.CONTRACT_COLUMNS}  # fmt: skip

# The kinds of a generation: name -> (builder method, the parameters ``export_all`` passes).
KINDS: dict[str, tuple[str, dict[str, Any]]] = {
    "alerts": ("_alerts", {"min_score": 0.0}),
    "chains": ("_chains", {"limit": None}),
    "scans": ("_scans", {"days": 30}),
    "features": ("_features", {"limit": None}),
    fmt.FEED_KIND: ("_feed", {}),
    fmt.DELIVERY_KIND: ("_delivery", {}),
}


class DiskFull(OCDError):
    """The export storage has no space left (ENOSPC), even after retention freed what it may:
    nothing was published, and what this attempt wrote was removed again."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"disk full: {detail}; the previous generation stays served")


def history_start(day: date, sessions: int) -> date:
    """First day of the daily history a ticker's documents serve: the ``sessions`` trading days
    before ``day`` (the IV-rank window, 252 sessions ≈ 369 calendar days), so a chart of the
    history shows every day IV rank and percentile were computed over."""
    return cal.last_trading_days(cal.previous_trading_day(day), sessions)[0]


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection during an export: it allocates some 100,000 containers
    (entries, dicts, lists) that all live until it ends, so every collection rescanned them for
    nothing (0.3 s of a full export). Its cycles are collected once it is over."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@dataclass
class Built:
    """One kind's output: its latest document, plus what it wrote besides (per-ticker ones)."""

    data: bytes
    rows: int
    entries: dict[str, DocumentEntry] = field(default_factory=dict)
    # the manifest's maps of per-ticker documents (chains, histories, feature_sets): ticker -> key
    per_ticker: dict[str, dict[str, str]] | None = None
    written: int = 0
    written_bytes: int = 0
    skipped: int = 0
    fingerprint: str | None = None  # what the content is made of: the same, it is kept
    kept: bool = False  # the published document stands (the builder found it unchanged)


@dataclass
class Inventory:
    """What the storage held when the export began (one listing per prefix): archive keys,
    and the per-ticker documents with their sizes: every one (a listing), or only those
    ``named`` (one stat each, where that is cheaper than listing a directory per ticker).
    Retention uses it too."""

    archives: list[tuple[fmt.ArchiveKey, str]]
    ticker_docs: dict[str, int]

    @classmethod
    def of(cls, storage: Storage, named: Iterable[str] | None = None) -> Inventory:
        archives = [
            (parsed, info.key)
            for info in storage.list(fmt.ARCHIVE_PREFIX)
            if (parsed := fmt.parse_archive_key(info.key)) is not None
        ]
        if named is not None:
            return cls(archives, storage.sizes(named))
        docs: dict[str, int] = {}
        for prefix in fmt.TICKER_PREFIXES:
            try:
                docs.update((info.key, info.size) for info in storage.list(prefix))
            except InvalidKey as exc:  # e.g. a directory symlinked out of the root: not ours
                log_event("export_unlisted", prefix=prefix, error=str(exc))
        return cls(archives, docs)

    def newest_generation(self) -> str | None:
        """The newest generation id any archive carries (a crashed export's too)."""
        newest = max((a for a, _ in self.archives if a.seq >= 0), key=lambda a: a.seq, default=None)
        if newest is None:
            return None
        return f"{newest.seq:08d}-{newest.when:%Y%m%dT%H%M%S}Z"


@dataclass
class Publication:
    generation: str
    generated_at: datetime
    previous: Manifest | None
    inventory: Inventory
    verify: bool  # re-read every unchanged per-ticker document before trusting it
    writes: int = 0
    written: list[str] = field(default_factory=list)  # keys this attempt wrote


class JSONExporter:
    """The seed's interface; every ``export_*`` publishes one new generation."""

    def __init__(
        self,
        store: Store,
        storage: Storage,
        settings: Settings,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        writers: int | None = None,
    ) -> None:
        self.store = store
        self.storage = storage
        self.settings = settings
        self.clock = clock
        self.writers = storage.deferred_writers if writers is None else writers

    # ---- public, seed-compatible ----------------------------------------------------
    def export_alerts(self, min_score: float = 0.0) -> KindResult:
        return self._publish({"alerts": {"min_score": min_score}})["alerts"]

    def export_chains(self, limit: int | None = None) -> KindResult:
        return self._publish({"chains": {"limit": limit}})["chains"]

    def export_scans(self, days: int = 30) -> KindResult:
        return self._publish({"scans": {"days": days}})["scans"]

    def export_features(self, limit: int | None = None) -> KindResult:
        return self._publish({"features": {"limit": limit}})["features"]

    def export_all(self) -> dict[str, KindResult]:
        return self._publish({kind: dict(params) for kind, (_, params) in KINDS.items()})

    # ---- publication ----------------------------------------------------------------
    def _publish(self, kinds: dict[str, dict[str, Any]]) -> dict[str, KindResult]:
        """One generation. When the storage is full, retention frees what it may and the
        export is tried once more; if it is still full, DiskFull (nothing published)."""
        with _collector_paused():
            try:
                return self._publish_once(kinds)
            except DiskFull as full:
                freed = self._retain_now()
                log_event("export_disk_full", freed=freed, error=str(full))
                if not freed:
                    raise
            return self._publish_once(kinds)

    def _publish_once(self, kinds: dict[str, dict[str, Any]]) -> dict[str, KindResult]:
        started = time.perf_counter()
        now = self.clock()
        previous = _published_manifest(self.storage)
        verified = previous.verified_at if previous else None
        verify = verified is None or not timedelta(0) <= now - verified < VERIFY_EVERY
        # Where a head is a stat, not a request, the per-ticker documents are listed only with
        # the hourly verification: the previous generation's sizes come from one stat each, and
        # orphans (a crashed export's) wait for that listing to be removed.
        named = None  # None: list them
        if previous is not None and not verify and self.storage.head_is_cheap:
            named = _ticker_keys(previous)
        inventory = Inventory.of(self.storage, named)
        newest = max(
            [previous.generation if previous else None, inventory.newest_generation()],
            key=fmt.generation_order,
        )
        pub = Publication(
            generation=fmt.next_generation(newest, now),
            generated_at=now,
            previous=previous,
            inventory=inventory,
            verify=verify,
        )
        try:
            return self._generation(pub, kinds, started)
        except BaseException as exc:
            if not _disk_full(exc):
                raise
            self._undo(pub)
            raise DiskFull(f"{type(exc).__name__}: {exc}") from exc

    def _generation(
        self, pub: Publication, kinds: dict[str, dict[str, Any]], started: float
    ) -> dict[str, KindResult]:
        previous = pub.previous
        documents = dict(previous.documents) if previous else {}
        archives = dict(previous.archives) if previous else {}
        per_ticker = {name: dict(getattr(previous, name)) if previous else {}
                      for name in PER_TICKER}  # fmt: skip
        results: dict[str, KindResult] = {}
        latest: list[tuple[str, bytes]] = []
        for kind, params in kinds.items():
            kind_start = time.perf_counter()
            key = fmt.latest_key(kind)
            try:
                built: Built = getattr(self, KINDS[kind][0])(pub, **params)
                kept = built.kept or self._unchanged(pub, kind, built.fingerprint)
                archive = archives[kind] if kept else self._put_archive(pub, kind, key, built.data)
            except Exception as exc:  # a failing kind keeps its previous documents
                if _disk_full(exc):
                    raise
                results[kind] = KindResult(
                    kind=kind,
                    ok=False,
                    error=f"{type(exc).__name__}: {exc}",
                    duration_ms=_ms(kind_start),
                )
                log_event(
                    "export_kind",
                    kind=kind,
                    ok=False,
                    error=results[kind].error,
                    generation=pub.generation,
                )
                continue
            if built.per_ticker is not None:  # the new per-ticker documents replace the old
                documents = {k: v for k, v in documents.items() if not _is_ticker_key(k)}
                documents.update(built.entries)
                per_ticker = built.per_ticker
            if kept:  # the same content as published: its bytes and archive stand
                results[kind] = KindResult(
                    kind=kind,
                    ok=True,
                    rows=documents[key].rows,
                    bytes=built.written_bytes,
                    duration_ms=_ms(kind_start),
                    keys_written=built.written,
                    keys_skipped=built.skipped + 1,
                )
                continue
            documents[key] = DocumentEntry(
                sha256=fmt.sha256(built.data),
                bytes=len(built.data),
                rows=built.rows,
                generation=pub.generation,
                fingerprint=built.fingerprint,
            )
            archives[kind] = archive
            latest.append((key, built.data))
            results[kind] = KindResult(
                kind=kind,
                ok=True,
                rows=built.rows,
                bytes=len(built.data) + built.written_bytes,
                duration_ms=_ms(kind_start),
                keys_written=2 + built.written,
                keys_skipped=built.skipped,
            )
        for key, data in latest:
            self._put(pub, key, data, content_type=_content_type(key))
        manifest = Manifest(
            generation=pub.generation,
            generated_at=pub.generated_at,
            previous_generation=previous.generation if previous else None,
            duration_ms=_ms(started),
            documents=documents,
            **per_ticker,
            archives=archives,
            results={**(previous.results if previous else {}), **results},
            storage_writes=pub.writes + 2,
            provider=self.settings.provider,
            market=self._market_clock(),
            verified_at=self._verified_at(pub, kinds, results),
        )
        body = fmt.dumps(manifest.model_dump(mode="json"))
        self._put_archive(pub, "manifest", fmt.MANIFEST_KEY, body)
        self._put(pub, fmt.MANIFEST_KEY, body)
        _PUBLISHED[self.storage.location] = (fmt.sha256(body), manifest)
        for result in results.values():
            if result.ok:
                log_event("export_kind", generation=pub.generation, **result.model_dump())
        log_event(
            "export",
            generation=pub.generation,
            duration_ms=_ms(started),
            storage_writes=pub.writes,
            documents=len(documents),
            verified=pub.verify and "chains" in kinds,
            ok=all(r.ok for r in results.values()),
        )
        try:
            self._retain(manifest, pub)
        except Exception as exc:  # published already: the next export retries the clean-up
            log_event("retention_failed", generation=pub.generation, error=f"{exc!r}")
        return results

    def _verified_at(
        self, pub: Publication, kinds: dict[str, Any], results: dict[str, KindResult]
    ) -> datetime | None:
        """When every per-ticker document the manifest names was last checked byte for byte:
        now, if this export re-read the unchanged ones; else as before."""
        chains = results.get("chains")
        if pub.verify and chains is not None and chains.ok:
            return pub.generated_at
        return pub.previous.verified_at if pub.previous else None

    def _market_clock(self) -> MarketClock | None:
        newest = self.store.rows("SELECT max(as_of) FROM chain_snapshots")[0][0]
        if newest is None:
            return None
        quotes_as_of = newest.replace(tzinfo=UTC)
        session = cal.session_of(quotes_as_of)
        next_open, next_close = cal.session_bounds(cal.next_trading_day(session))
        return MarketClock(
            quotes_as_of=quotes_as_of,
            session=session,
            closes_at=cal.session_close(session),
            next_open=next_open,
            next_close=next_close,
        )

    def _unchanged(self, pub: Publication, kind: str, fingerprint: str | None) -> bool:
        """Whether the published latest document of ``kind`` has the content ``fingerprint``
        says and is still stored whole (its size; its checksum when the hourly verification is
        due), with its archive: then it stands, not rewritten and not archived again."""
        previous = pub.previous
        key = fmt.latest_key(kind)
        entry = previous.documents.get(key) if previous else None
        archive = previous.archives.get(kind) if previous else None
        if not (entry and archive and fingerprint and entry.fingerprint == fingerprint):
            return False
        try:
            if pub.verify:
                intact = fmt.sha256(self.storage.get(key).data) == entry.sha256
            else:
                info = self.storage.head(key)
                intact = info is not None and info.size == entry.bytes
        except (ObjectNotFound, OSError):
            intact = False
        if not intact:
            log_event("export_repair", documents=1, keys=[key], generation=pub.generation)
        return intact

    def _put(
        self, pub: Publication, key: str, data: bytes, content_type: str = "application/json"
    ) -> None:
        self.storage.put(key, data, content_type=content_type)
        pub.writes += 1

    def _put_archive(self, pub: Publication, kind: str, latest: str, data: bytes) -> str:
        """The immutable gzip copy of ``kind`` for this generation (create-only: two writers
        racing for one generation id cannot overwrite each other's archive)."""
        key = fmt.archive_key(kind, pub.generation, latest.rpartition(".")[2])
        packed = gzip.compress(data, compresslevel=ARCHIVE_GZIP_LEVEL, mtime=0)
        try:
            self.storage.put(
                key, packed, content_type=_content_type(latest), content_encoding="gzip",
                if_none_match=True,
            )  # fmt: skip
        except PreconditionFailed:
            # A retried write whose first attempt landed (its answer was lost) finds its own
            # bytes there; anything else is another writer's export of this generation id.
            if not self._holds(key, packed):
                raise PreconditionFailed(
                    f"{key} already exists: another writer published generation {pub.generation}"
                ) from None
        pub.writes += 1
        pub.written.append(key)
        return key

    def _holds(self, key: str, data: bytes) -> bool:
        try:
            return self.storage.get(key).data == data
        except ObjectNotFound:
            return False

    def _undo(self, pub: Publication) -> None:
        """Remove what a failed attempt wrote that no manifest names (its archives and new
        per-ticker documents), so a full disk is not filled further and the id is not used."""
        named = set(pub.previous.documents) if pub.previous else set()
        doomed = [key for key in pub.written if key not in named]
        try:
            deleted = self.storage.delete_many(doomed) if doomed else 0
        except Exception as exc:
            log_event("export_undo_failed", generation=pub.generation, error=f"{exc!r}")
            return
        log_event("export_undone", generation=pub.generation, deleted=deleted)

    # ---- kinds ----------------------------------------------------------------------
    def _header(self, pub: Publication, kind: str, count: int, **params: Any) -> dict[str, Any]:
        return {
            "schema_version": fmt.SCHEMA_VERSION,
            "kind": kind,
            "generation": pub.generation,
            "generated_at": fmt.iso(pub.generated_at),
            "count": count,
            **params,
        }

    def _document(self, header: dict[str, Any], rows_name: str, rows_json: bytes) -> bytes:
        return b"".join((fmt.dumps(header)[:-1], b',"', rows_name.encode(), b'":', rows_json, b"}"))

    def _alerts(self, pub: Publication, min_score: float) -> Built:
        n, rows = self.store.rows(q.ALERTS, [min_score])[0]
        rows = fmt.strict_json(rows)
        header = self._header(pub, "alerts", int(n), min_score=float(min_score))
        return Built(self._document(header, "alerts", rows), int(n),
                     fingerprint=_digest(f"{min_score!r}".encode(), rows))  # fmt: skip

    def _scans(self, pub: Publication, days: int) -> Built:
        # the window ends at the newest scan when that is older than now (a replayed history)
        newest = self.store.rows("SELECT max(started_at) FROM scans")[0][0]
        end = min(_naive(pub.generated_at), newest) if newest else _naive(pub.generated_at)
        n, rows = self.store.rows(q.SCANS, [end - timedelta(days=days)])[0]
        rows = fmt.strict_json(rows)
        header = self._header(pub, "scans", int(n), days=days)
        return Built(self._document(header, "scans", rows), int(n),
                     fingerprint=_digest(str(days).encode(), rows))  # fmt: skip

    def _features(self, pub: Publication, limit: int | None) -> Built:
        """The scalar features table; when the latest features rows are the ones the published
        document was built from, it is not built at all (parsing them is the cost)."""
        n, digest, oldest = self.store.rows(q.LATEST_FEATURES_DIGEST, [limit])[0]
        fingerprint = f"{limit}|{n}|{digest}|{fmt.SCHEMA_VERSION}"
        if self._unchanged(pub, "features", fingerprint):
            return Built(b"", int(n), fingerprint=fingerprint, kept=True)
        rows = self.store.rows(q.LATEST_FEATURE_ROWS, [oldest, limit]) if n else []
        scalars = [orjson.loads(fmt.strict_json(v.encode())) for *_, v in rows]
        transposed = (
            map(list, zip(*scalars, strict=True))
            if scalars
            else ([] for _ in catalogue.SCALAR_FEATURES)
        )
        columns = dict(zip(catalogue.SCALAR_FEATURES, transposed, strict=True))
        doc = {
            **self._header(pub, "features", len(rows), limit=limit),
            "tickers": [t for t, *_ in rows],
            "as_of": [a for _, a, *_ in rows],
            "missing": [orjson.loads(fmt.strict_json(m.encode())) for _, _, m, _ in rows],
            "columns": columns,
        }
        return Built(fmt.dumps(doc), len(rows), fingerprint=fingerprint)

    def _feed(self, pub: Publication) -> Built:
        """``alerts.atom``: the newest alerts as an Atom feed (``delivery/feed.py``)."""
        data, rows = alerts_feed(self.store, self.settings, pub.generated_at)
        return Built(data, rows, fingerprint=fmt.sha256(data))  # the same feed is kept

    def _delivery(self, pub: Publication) -> Built:
        """``delivery.json``: the outbox per sink, and the alerts this generation releases;
        rebuilt by every export, as it names the generation that releases them."""
        return Built(*delivery_document(self.store, self.settings, pub.generation,
                                        pub.generated_at))  # fmt: skip

    def _chains(self, pub: Publication, limit: int | None) -> Built:
        """The index document; per-ticker chain, history and features documents are written
        here, to new keys, as they are built. A ticker's document whose inputs are what the
        previous generation published is kept (delta export), if it is still in the storage
        with its size (and, once an hour, its checksum)."""
        snaps = self.store.columns(q.LATEST_SNAPSHOTS)
        tickers = [str(t) for t in snaps["ticker"]][:limit]
        bad = [t for t in tickers if not _TICKER.fullmatch(t)]
        if bad:  # checked before anything is written: a ticker becomes part of a storage key
            raise ValueError(f"tickers not matching {TICKER_PATTERN}: {bad[:5]!r}")
        n = len(tickers)
        plan = _Plan.of(snaps, n, self.settings.analytics.iv_window_days)
        with self.store.registered("tickers", plan.table(range(n))):
            digests = {
                str(t): f"{int(k)}|{d}" for t, k, d in self.store.rows(q.HISTORY_FINGERPRINTS)
            }
        version = fmt.SCHEMA_VERSION
        fingerprints: dict[str, list[str | None]] = {
            "chains": [
                f"{plan.as_of[i]}|{h}|{version}" for i, h in enumerate(snaps["session_hash"][:n])
            ],
            "histories": [
                f"{plan.since[i]}|{digests[t]}|{version}" if t in digests else None
                for i, t in enumerate(tickers)
            ],
            "feature_sets": [f"{f}|{version}" if f else None for f in plan.features_as_of],
        }
        built = Built(b"", n, per_ticker={name: {} for name in fingerprints})
        assert built.per_ticker is not None
        previous = pub.previous
        kept = _Kept(self.storage, pub)
        for name, fps in fingerprints.items():
            old = getattr(previous, name) if previous else {}
            for i, ticker in enumerate(tickers):
                kept.consider(old.get(ticker), fps[i])
        kept.settle()
        changed: dict[str, list[int]] = {}
        for name, fps in fingerprints.items():
            old = getattr(previous, name) if previous else {}
            keys, todo = built.per_ticker[name], changed.setdefault(name, [])
            for i, ticker in enumerate(tickers):
                key = old.get(ticker)
                if key is not None and key in kept.entries:
                    keys[ticker] = key
                    built.entries[key] = kept.entries[key]
                    built.skipped += 1
                elif fps[i] is not None or name == "chains":
                    todo.append(i)
        days = [self.settings.analytics.iv_window_days] * n  # rows, about
        jobs = [("chain", batch) for batch in _batches(changed["chains"], plan.contracts,
                                                       CHAIN_BATCH_ROWS)]  # fmt: skip
        jobs += [("history", batch) for batch in _batches(changed["histories"], days,
                                                          CHAIN_BATCH_ROWS)]  # fmt: skip
        jobs += [("features", batch) for batch in _batches(changed["feature_sets"], [1] * n,
                                                           FEATURE_BATCH)]  # fmt: skip
        documents = {
            "chain": ("chains", fmt.chain_key, self._chain_documents),
            "history": ("histories", fmt.history_key, self._history_documents),
            "features": ("feature_sets", fmt.feature_set_key, self._feature_documents),
        }

        def stored(name: str, i: int, rows: int) -> Callable[[str, str, int], None]:
            def record(key: str, sha: str, size: int) -> None:
                built.per_ticker[name][tickers[i]] = key  # type: ignore[index]
                # built here from a digest and counts: 15,000 of them need no validation
                built.entries[key] = DocumentEntry.model_construct(
                    sha256=sha, bytes=size, rows=rows, generation=pub.generation,
                    fingerprint=fingerprints[name][i])  # fmt: skip

            return record

        with (
            _Writer(self.storage, self.writers, pub) as writer,
            self.store.cursor() as reader,
            _Prefetch(jobs, lambda job: self._load(reader, plan, *job)) as loaded_jobs,
        ):
            for (what, batch), data in loaded_jobs.results():
                name, key_of, build = documents[what]
                for i, doc, rows in build(pub, plan, batch, data):
                    writer.put_addressed(partial(key_of, tickers[i]), doc, stored(name, i, rows))
        built.written = writer.written
        built.written_bytes = writer.bytes
        log_event(
            "export_chains",
            generation=pub.generation,
            chains=len(changed["chains"]),
            histories=len(changed["histories"]),
            feature_sets=len(changed["feature_sets"]),
            kept=built.skipped,
            load_ms=round(loaded_jobs.busy * 1000, 1),  # queries, on the loading thread
            waited_for_load_ms=round(loaded_jobs.waited * 1000, 1),
            waited_for_writes_ms=round(writer.waited * 1000, 1),
        )
        per_ticker = built.per_ticker
        columns = {
            "ticker": tickers,
            "as_of": plan.as_of,
            "underlying_price": _floats(snaps["underlying_price"][:n]),
            "atm_iv": _floats(snaps["atm_iv"][:n]),
            "expirations": [len(e) for e in plan.expirations],
            "contracts": plan.contracts,
            "key": [per_ticker["chains"][t] for t in tickers],
            "history_key": [per_ticker["histories"].get(t) for t in tickers],
            "features_key": [per_ticker["feature_sets"].get(t) for t in tickers],
        }
        header = self._header(pub, "chains", n, limit=limit)
        body = fmt.dumps(columns)
        built.data = fmt.dumps({**header, "columns": orjson.Fragment(body)})
        built.fingerprint = _digest(str(limit).encode(), body)
        return built

    def _load(self, reader: Store, plan: _Plan, what: str, batch: list[int]) -> dict[str, Any]:
        """The query results one batch's documents are built from (run on ``reader``, a
        second connection, while the previous batch is serialized and written)."""
        with reader.registered("wanted", plan.table(batch)):
            if what == "history":
                columns = reader.columns(q.HISTORY_ROWS)
                rank = np.ma.getdata(columns.pop("rank")).astype(np.int64)
                days = np.ma.getdata(columns.pop("day")).astype("datetime64[D]").astype(np.int64)
                days -= days.min() if days.size else 0
                order = np.argsort(rank << 32 | days, kind="stable")  # by ticker, then day
                rank = rank[order]
                filled = _filled(columns, order)
                cuts = np.searchsorted(rank, np.arange(len(batch) + 1))
                return {"cuts": cuts.tolist(), "history": filled, "runs": _Runs.of(filled, cuts)}
            if what == "features":
                oldest = np.min(plan.features_as_of_ts[batch]).item()
                rows = reader.rows(q.TICKER_FEATURES, [oldest])
                return {"features": {str(row[0]): row[1:] for row in rows}}
            contracts = contract_columns(reader, np.min(plan.as_of_ts[batch]).item(), len(batch))
            sessions = _rows_by_ticker(_filled(reader.columns(q.SESSION_ROWS)))
            return {**contracts, "sessions": sessions}

    def _chain_documents(
        self, pub: Publication, plan: _Plan, batch: list[int], data: dict[str, Any]
    ) -> Iterator[tuple[int, bytes, int]]:
        """The chain documents of the snapshots in ``batch``: built from one sorted result of
        numeric columns per batch (sliced per ticker) and the runs of expirations and rights."""
        cols, sessions = data["columns"], data["sessions"]
        cuts, runs = data["cuts"], data["runs"]
        header = self._header(pub, "chain", 0)
        for k, i in enumerate(batch):
            ticker = plan.tickers[i]
            start, stop = cuts[k], cuts[k + 1]
            header["count"] = stop - start
            doc = {
                **header,
                "ticker": ticker,
                "as_of": plan.as_of[i],
                "underlying_price": plan.price[i],
                "dividend_yield": plan.dividend[i],
                "expirations": plan.expirations[i],
                "columns": {
                    **runs[k],
                    **{name: _column(v[start:stop]) for name, v in cols.items()},
                },
                "session": sessions.get(ticker),
            }
            yield i, orjson.dumps(doc, option=_NUMPY), plan.contracts[i]

    def _feature_documents(
        self, pub: Publication, plan: _Plan, batch: list[int], data: dict[str, Any]
    ) -> Iterator[tuple[int, bytes, int]]:
        """Each ticker's latest features: the store's JSON embedded as it is."""
        rows = data["features"]
        header = self._header(pub, "feature_set", 1)
        for i in batch:
            row = rows.get(plan.tickers[i])
            if row is None:  # removed since the plan was made: the next export drops it
                continue
            as_of, features, missing, lenient = row
            doc = {
                **header,
                "ticker": plan.tickers[i],
                "as_of": as_of,
                "features": _fragment(features, lenient),
                "missing": _fragment(missing, lenient),
            }
            yield i, orjson.dumps(doc), 1

    def _history_documents(
        self, pub: Publication, plan: _Plan, batch: list[int], data: dict[str, Any]
    ) -> Iterator[tuple[int, bytes, int]]:
        cols, cuts, runs = data["history"], data["cuts"], data["runs"]
        header = self._header(pub, "history", 0)
        for k, i in enumerate(batch):
            a, b = cuts[k], cuts[k + 1]
            header["count"] = b - a
            columns = {name: runs.column(name, cols[name], k, a, b) for name in fmt.HISTORY_COLUMNS}
            doc = {**header, "ticker": plan.tickers[i], "since": plan.since[i], "columns": columns}
            yield i, orjson.dumps(doc, option=_NUMPY), b - a

    # ---- retention ------------------------------------------------------------------
    def _retain(self, manifest: Manifest, pub: Publication) -> int:
        """Delete archives past retention (keeping the newest per kind) and unreferenced
        per-ticker documents, from what the export began with plus what it wrote."""
        written = [(fmt.parse_archive_key(k), k) for k in pub.written]
        archives = pub.inventory.archives + [(a, k) for a, k in written if a is not None]
        docs = set(pub.inventory.ticker_docs) | {k for k in pub.written if _is_ticker_key(k)}
        return self._delete_unretained(manifest, archives, docs)

    def _retain_now(self) -> int:
        """Retention against what is published (to free space); 0 when nothing is."""
        manifest = fmt.load_manifest(self.storage)
        if manifest is None:
            return 0
        inventory = Inventory.of(self.storage)
        return self._delete_unretained(manifest, inventory.archives, set(inventory.ticker_docs))

    def _delete_unretained(
        self,
        manifest: Manifest,
        archives: list[tuple[fmt.ArchiveKey, str]],
        docs: Iterable[str],
    ) -> int:
        cutoff = manifest.generated_at - timedelta(days=self.settings.archive_retention_days)
        by_kind: dict[str, list[tuple[fmt.ArchiveKey, str]]] = {}
        for parsed, key in archives:
            by_kind.setdefault(parsed.kind, []).append((parsed, key))
        keep = set(manifest.archives.values())
        doomed = []
        for entries in by_kind.values():
            entries.sort(key=lambda e: e[0].order, reverse=True)
            keep.update(key for _, key in entries[:KEEP_ARCHIVES])
            doomed += [key for a, key in entries if a.when < cutoff and key not in keep]
        named = set(_ticker_keys(manifest))
        unnamed = [key for key in docs if key not in named]
        if unnamed:  # named by an older generation a reader may still hold, or by none
            referenced = fmt.archived_ticker_keys(self.storage, KEEP_GENERATIONS)
            doomed += sorted(key for key in unnamed if key not in referenced)
        deleted = self.storage.delete_many(doomed) if doomed else 0
        if deleted:
            log_event("retention", deleted=deleted, generation=manifest.generation)
        return deleted


@dataclass
class _Plan:
    """Per-ticker facts of the latest snapshots, positionally (index ``i`` = ticker ``i``)."""

    tickers: list[str]
    as_of: list[str]
    as_of_ts: NDArray  # of the snapshot, datetime64[us]
    session: list[date]
    since: list[str]
    price: list[float | None]
    dividend: list[float | None]
    contracts: list[int]
    expirations: list[list[str]]
    features_as_of: list[str]  # of the ticker's latest features ('' for none)
    features_as_of_ts: NDArray  # the same, datetime64[us] (NaT for none)

    @classmethod
    def of(cls, snaps: dict[str, NDArray], n: int, window: int) -> _Plan:
        sessions = [_day(v) for v in snaps["session"][:n]]
        starts = {d: history_start(d, window).isoformat() for d in set(sessions)}
        return cls(
            tickers=[str(t) for t in snaps["ticker"][:n]],
            as_of=[str(v) for v in snaps["as_of"][:n]],
            as_of_ts=np.asarray(np.ma.getdata(snaps["as_of_ts"][:n]), dtype="datetime64[us]"),
            session=sessions,
            since=[starts[d] for d in sessions],
            price=_floats(snaps["underlying_price"][:n]),
            dividend=_floats(snaps["dividend_yield"][:n]),
            contracts=[int(v) for v in snaps["contracts"][:n]],
            expirations=[[str(e) for e in exps] for exps in snaps["expirations"][:n]],
            features_as_of=[str(v) for v in snaps["features_as_of"][:n]],
            features_as_of_ts=np.ma.filled(
                np.ma.asarray(snaps["features_as_of_ts"][:n]).astype("datetime64[us]"),
                np.datetime64("NaT"),
            ),
        )

    def table(self, rows: Iterable[int]) -> dict[str, NDArray]:
        """The rows' per-ticker facts as columns DuckDB can join (``wanted``, ``tickers``)."""
        picked = list(rows)
        return {
            "rank": np.arange(len(picked), dtype=np.int64),  # the row's place in ``rows``
            "ticker": np.array([self.tickers[i] for i in picked], dtype=object),
            "as_of_ts": self.as_of_ts[picked],
            "session": np.array([self.session[i] for i in picked], "datetime64[D]").astype(
                "datetime64[s]"
            ),
            "since": np.array([self.since[i] for i in picked], "datetime64[D]").astype(
                "datetime64[s]"
            ),
            "features_as_of_ts": self.features_as_of_ts[picked],
        }


class _Kept:
    """Which previously published per-ticker documents may stand: same inputs (fingerprint),
    still stored with their size, and, when the hourly verification is due, their checksum."""

    def __init__(self, storage: Storage, pub: Publication) -> None:
        self.storage = storage
        self.pub = pub
        self.entries: dict[str, DocumentEntry] = {}
        self.damaged: list[str] = []
        self._pool = ThreadPoolExecutor(VERIFY_THREADS, "export-verify") if pub.verify else None
        self._checks: list[tuple[str, DocumentEntry, Future[bool]]] = []

    def consider(self, key: str | None, fingerprint: str | None) -> None:
        previous = self.pub.previous
        entry = previous.documents.get(key) if previous and key else None
        if key is None or entry is None or fingerprint is None or entry.fingerprint != fingerprint:
            return
        if self.pub.inventory.ticker_docs.get(key) != entry.bytes:
            self.damaged.append(key)  # deleted, truncated or grown since it was written
        elif self._pool is not None:
            self._checks.append((key, entry, self._pool.submit(self._intact, key, entry)))
        else:
            self.entries[key] = entry

    def _intact(self, key: str, entry: DocumentEntry) -> bool:
        try:
            return fmt.sha256(self.storage.get(key).data) == entry.sha256
        except ObjectNotFound:
            return False

    def settle(self) -> None:
        """Wait for the checksum checks: a document failing one is not kept (rebuilt)."""
        if self._pool is not None:
            try:
                for key, entry, check in self._checks:
                    if check.result():
                        self.entries[key] = entry
                    else:
                        self.damaged.append(key)
            finally:
                self._pool.shutdown()
        if self.damaged:
            log_event("export_repair", documents=len(self.damaged), keys=self.damaged[:10],
                      generation=self.pub.generation)  # fmt: skip


class _Runs:
    """The runs of equal values in each column of a batch's history rows (a ticker's first row
    always starts one, so no run crosses tickers), found once per batch: a ticker's column of
    few runs (a backfilled year's null volume, ``as_of`` and ``provisional``) is written as
    runs, the others as arrays."""

    FEW = 3  # runs are written when each covers this many rows or more, on average

    def __init__(self, firsts: dict[str, list[int]], values: dict[str, Any],
                 lengths: dict[str, list[int]]) -> None:  # fmt: skip
        self.firsts = firsts  # per column, ticker k's runs are firsts[k] to firsts[k + 1]
        self.values = values  # per column, each run's value
        self.lengths = lengths

    @classmethod
    def of(cls, cols: dict[str, Any], cuts: NDArray) -> _Runs:
        firsts, values, lengths = {}, {}, {}
        for name, column in cols.items():
            n = len(column)
            new = np.ones(n, dtype=bool)
            if n > 1:
                after, before = column[1:], column[:-1]
                same = np.asarray(after == before, dtype=bool)
                if column.dtype.kind == "f":
                    same |= np.isnan(after) & np.isnan(before)
                new[1:] = ~same
            new[cuts[:-1][cuts[:-1] < n]] = True
            heads = np.flatnonzero(new)
            firsts[name] = np.searchsorted(heads, cuts).tolist()
            values[name] = column[heads]
            lengths[name] = np.diff(heads, append=n).tolist()
        return cls(firsts, values, lengths)

    def column(self, name: str, values: Any, k: int, a: int, b: int) -> Any:
        """Rows ``a:b`` (ticker ``k``) of a column: as ``fmt.Runs`` when they are few."""
        r, s = self.firsts[name][k], self.firsts[name][k + 1]
        if b == a or (s - r) * self.FEW > b - a:
            return _column(values[a:b])
        runs = self.lengths[name][r:s]
        return {"values": _column(self.values[name][r:s]), "runs": list(enumerate(runs))}


def _rows_by_ticker(cols: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """History rows (one per ticker) of filled result columns."""
    tickers = [str(t) for t in cols["ticker"]]
    return {
        t: {name: _scalar(cols[name][k]) for name in fmt.HISTORY_COLUMNS}
        for k, t in enumerate(tickers)
    }


class _Prefetch:
    """Runs ``load(job)`` for each job on a thread, one job ahead of the consumer (so at most
    two batches are in memory); iterating yields ``(job, result)`` and re-raises a failure.
    Leaving the block early stops the thread after its current job."""

    def __init__(self, jobs: list[Any], load: Callable[[Any], Any]) -> None:
        self.jobs = jobs
        self.load = load
        self.queue: Queue[tuple[Any, Any, BaseException | None]] = Queue(maxsize=1)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="export-load", daemon=True)
        self.busy = 0.0  # seconds the thread spent loading
        self.waited = 0.0  # seconds the consumer waited for a result

    def _run(self) -> None:
        for job in self.jobs:
            if self.stop.is_set():
                return
            started = time.perf_counter()
            try:
                result, error = self.load(job), None
            except BaseException as exc:  # handed to the consumer, which raises it
                result, error = None, exc
            self.busy += time.perf_counter() - started
            while not self.stop.is_set():
                try:
                    self.queue.put((job, result, error), timeout=0.1)
                    break
                except Full:
                    continue
            if error is not None:
                return

    def __enter__(self) -> _Prefetch:
        self.thread.start()
        return self

    def results(self) -> Iterator[tuple[Any, Any]]:
        for _ in self.jobs:
            started = time.perf_counter()
            job, result, error = self.queue.get()
            self.waited += time.perf_counter() - started
            if error is not None:
                raise error
            yield job, result

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def _runs(cuts: list[int], expiration: NDArray, is_call: NDArray) -> list[dict[str, fmt.Runs]]:
    """The expiration and right columns of each ticker's contracts (rows ``cuts[k]`` to
    ``cuts[k + 1]`` of the batch, in document order) as runs; a run of right never crosses an
    expiration. The boundaries are found once for the whole batch, then cut per ticker."""
    n = expiration.size
    firsts = np.asarray(cuts[:-1], dtype=np.int64)  # each ticker's first row
    new_expiry = np.zeros(n, dtype=bool)
    new_expiry[firsts[firsts < n]] = True
    new_expiry[1:] |= expiration[1:] != expiration[:-1]
    new_run = new_expiry.copy()
    new_run[1:] |= is_call[1:] != is_call[:-1]
    expiry_at = np.flatnonzero(new_expiry)
    run_at = np.flatnonzero(new_run)
    values = np.datetime_as_string(expiration[expiry_at], unit="D").tolist()
    sides = np.where(is_call[run_at], 0, 1).tolist()
    # Every ticker's first row starts a run, so each run ends where the next one (or the batch)
    # starts, the last run of a ticker included.
    expiry_lengths = np.diff(expiry_at, append=n).tolist()
    run_lengths = np.diff(run_at, append=n).tolist()
    expiry_cut = np.searchsorted(expiry_at, cuts).tolist()
    run_cut = np.searchsorted(run_at, cuts).tolist()
    out = []
    for k in range(len(cuts) - 1):
        a, b, c, d = expiry_cut[k], expiry_cut[k + 1], run_cut[k], run_cut[k + 1]
        out.append({
            "expiration": {"values": values[a:b], "runs": list(enumerate(expiry_lengths[a:b]))},
            "right": {"values": ["C", "P"],
                      "runs": list(zip(sides[c:d], run_lengths[c:d], strict=True))},
        })  # fmt: skip
    return out


def _batches(indices: list[int], sizes: list[int], limit: int) -> Iterator[list[int]]:
    """``indices`` in runs whose ``sizes`` add up to about ``limit`` (at least one each)."""
    batch: list[int] = []
    total = 0
    for i in indices:
        if batch and total + sizes[i] > limit:
            yield batch
            batch, total = [], 0
        batch.append(i)
        total += sizes[i]
    if batch:
        yield batch


def contract_columns(reader: Store, oldest: datetime, tickers: int) -> dict[str, Any]:
    """The contracts of the snapshots registered as ``wanted`` (``tickers`` of them, none
    older than ``oldest``), in document order and rounded: ``columns`` (filled), ``cuts``
    (where each ticker's rows start, by ``rank``), and ``runs`` (each ticker's expiration and
    right columns)."""
    columns = reader.columns(q.CHAIN_COLUMNS, [oldest])
    rank = np.ma.getdata(columns.pop("rank"))
    expiration = np.ma.getdata(columns.pop("expiration")).astype("datetime64[D]")
    is_call = np.ma.getdata(columns.pop("is_call")).astype(bool)
    order = _document_order(rank, expiration, is_call, np.ma.getdata(columns["strike"]))
    rank, expiration, is_call = rank[order], expiration[order], is_call[order]
    cuts = np.searchsorted(rank, np.arange(tickers + 1)).tolist()
    filled = _filled(columns, order)
    for name, precision in CONTRACT_PRECISION.items():
        filled[name] = _round(np.asarray(filled[name]), precision)
    return {"cuts": cuts, "runs": _runs(cuts, expiration, is_call), "columns": filled}


def _document_order(
    rank: NDArray, expiration: NDArray, is_call: NDArray, strike: NDArray
) -> NDArray[np.intp]:
    """The permutation that puts a batch's contracts in document order: ticker (``rank``),
    expiration, right (calls first), strike. The store holds a chain mostly by right, then
    expiration and strike, so a stable sort on the first three keys (one integer) leaves the
    strikes in order; the rare (ticker, expiration, right) whose strikes it leaves out of order
    is sorted again by strike."""
    if not rank.size:
        return np.arange(0, dtype=np.intp)
    days = expiration.astype(np.int64)
    key = ((rank.astype(np.int64) << 20 | (days - days.min())) << 1) | ~is_call
    order = np.argsort(key, kind="stable")
    keys, strikes = key[order], strike[order]
    disordered = np.flatnonzero((keys[1:] == keys[:-1]) & (strikes[1:] < strikes[:-1]))
    for group in np.unique(keys[disordered]).tolist():
        a, b = np.searchsorted(keys, group), np.searchsorted(keys, group, side="right")
        order[a:b] = order[a:b][np.argsort(strikes[a:b], kind="stable")]
    return order


def _round(values: NDArray, precision: catalogue.Precision) -> NDArray:
    """``values`` rounded exactly as ``Precision.apply`` rounds each (to ``decimals`` places or
    ``significant`` digits, from the double's exact value, ties to even), a column at a time:
    scaled by a power of ten, ``rint``, scaled back (the double nearest the rounded decimal).
    Where the scaling's own rounding could decide (within 1e-6 of a tie, a digit too many or
    too few, no fraction left) the value is rounded by ``apply``. NaN and infinities stay
    (orjson writes null)."""
    if values.dtype.kind != "f":
        return values
    if precision.decimals:
        places: Any = precision.decimals
    elif precision.significant:
        with np.errstate(divide="ignore", invalid="ignore"):
            magnitude = np.floor(np.log10(np.abs(values)))
        magnitude[~np.isfinite(magnitude)] = precision.significant - 1  # 0, NaN, infinities
        places = np.clip(precision.significant - 1 - magnitude, -22, 22).astype(np.int64)
    else:
        return values
    with np.errstate(over="ignore", invalid="ignore"):
        if np.min(places) >= 0:  # the usual case: multiply by an exact power of ten
            scale = _POW10[places]
            scaled = values * scale
            out = np.rint(scaled)
            out /= scale
        else:
            scale = _POW10[np.abs(places)]
            up = places >= 0
            scaled = np.where(up, values * scale, values / scale)
            whole = np.rint(scaled)
            out = np.where(up, whole / scale, whole * scale)
        size = np.abs(scaled)
        doubtful = np.abs(size - np.floor(size) - 0.5) < 1e-6
        doubtful |= ~(size < 2.0**52) & np.isfinite(values)  # no fraction left to round
        if precision.significant:  # a digit too many or too few: log10 was off by one
            low, high = 10.0 ** (precision.significant - 1), 10.0**precision.significant
            doubtful |= ((size < low) & (values != 0)) | (size >= high)
    for i in np.flatnonzero(doubtful).tolist():
        exact = precision.apply(float(values[i]))
        out[i] = np.nan if exact is None else exact
    return out


_POW10 = 10.0 ** np.arange(23)  # exact: every power of ten up to 10 ** 22 is a double


def _filled(
    cols: dict[str, NDArray], order: NDArray[np.intp] | None = None
) -> dict[str, NDArray | list[Any]]:
    """Result columns (rows taken in ``order``, if given) ready for orjson: floats with NaN for
    NULL (orjson writes null), whole numbers as int64, or as lists with None where a value is
    NULL."""
    out: dict[str, NDArray | list[Any]] = {}
    for name, values in cols.items():
        mask = np.ma.getmaskarray(values) if np.ma.isMaskedArray(values) else None
        data = np.ma.getdata(values)
        if order is not None:
            data, mask = data[order], None if mask is None else mask[order]
        if data.dtype.kind == "f":
            out[name] = np.where(mask, np.nan, data) if mask is not None and mask.any() else data
        elif mask is not None and mask.any():
            out[name] = np.where(mask, None, data.astype(object))
        else:
            out[name] = data
    return out


def _column(values: Any) -> Any:
    """A slice of a filled column as orjson takes it: numeric and datetime64 arrays as they
    are, object arrays (strings, values with NULLs) as lists."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiubM":
        return values
    return values.tolist() if isinstance(values, np.ndarray) else list(values)


def _scalar(value: Any) -> Any:
    if isinstance(value, np.floating):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _fragment(raw: bytes | None, lenient: bool) -> Any:
    """A value of a JSON column of the store, embedded as it is. The column's type makes it
    valid JSON, so only text that may hold a NaN or infinity token (which DuckDB keeps there)
    is parsed, and rewritten strict if it does."""
    if raw is None:
        return None
    return orjson.Fragment(fmt.strict_json(raw) if lenient else raw)


def _day(value: Any) -> date:
    return value if isinstance(value, date) else np.datetime64(value, "D").astype(date)


def _floats(values: NDArray) -> list[float | None]:
    """A numeric column (possibly masked, for NULLs) as floats, with None for NULL and NaN."""
    filled = np.ma.filled(np.ma.asarray(values, dtype=np.float64), np.nan)
    out = filled.astype(object)
    out[~np.isfinite(filled)] = None
    return out.tolist()


def _disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is the storage running out of space."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno == errno.ENOSPC:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _digest(*parts: bytes) -> str:
    """A fingerprint of content (a document without its header) and its parameters."""
    return fmt.sha256(b"\x00".join([str(fmt.SCHEMA_VERSION).encode(), *parts]))[:32]


def _content_type(key: str) -> str:
    return CONTENT_TYPES.get(key.rpartition(".")[2], "application/json")


# The manifest this process published last, per storage location, with its bytes' sha256: the
# next export in the process (the local runner's, a warm Lambda's) reads the stored bytes and,
# when they are still these, skips parsing them again (15,000 entries at full size: ~70 ms).
_PUBLISHED: dict[str, tuple[str, Manifest]] = {}


def _published_manifest(storage: Storage) -> Manifest | None:
    """``fmt.load_manifest(storage)``, without a parse when the stored manifest is the one this
    process published last there."""
    known = _PUBLISHED.get(storage.location)
    if known is not None:
        try:
            if fmt.sha256(storage.get(fmt.MANIFEST_KEY).data) == known[0]:
                return known[1]
        except (ObjectNotFound, OSError, InvalidKey):
            pass  # load_manifest says what happened, and falls back
    return fmt.load_manifest(storage)


def _ticker_keys(manifest: Manifest) -> list[str]:
    return [key for name in PER_TICKER for key in getattr(manifest, name).values()]


def _is_ticker_key(key: str) -> bool:
    return key.startswith(fmt.TICKER_PREFIXES)


def _naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)


class _Writer:
    """Writes immutable documents on a few threads; leaving the block waits for every write
    and raises the first failure, so nothing is still being written once the kind is done."""

    MAX_PENDING = 64  # documents built but not yet stored: bounds memory

    def __init__(self, storage: Storage, threads: int, pub: Publication) -> None:
        self.storage = storage
        self.pub = pub
        self.pool = ThreadPoolExecutor(threads, "export-put") if threads > 1 else None
        self.pending: deque[tuple[Future[tuple[str, str]], Callable[..., None], int]] = deque()
        self.written = 0
        self.bytes = 0
        self.waited = 0.0  # seconds the builder waited for writes to finish

    def put_addressed(
        self, key_of: Callable[[str], str], data: bytes, done: Callable[[str, str, int], None]
    ) -> None:
        """Store ``data`` under ``key_of(its digest)`` (hashed on the writer thread too);
        ``done(key, sha256, size)`` is called on this thread once it is stored."""
        if self.pool is None:
            done(*self._write(key_of, data), len(data))
            self._count(len(data))
            return
        while self.pending and (len(self.pending) >= self.MAX_PENDING or self.pending[0][0].done()):
            self._settle()
        self.pending.append((self.pool.submit(self._write, key_of, data), done, len(data)))

    def _write(self, key_of: Callable[[str], str], data: bytes) -> tuple[str, str]:
        sha = fmt.sha256(data)
        key = key_of(sha[:20])  # content-addressed: never overwritten with other bytes
        self.pub.written.append(key)
        self.storage.put_deferred(key, data)  # made durable in one sync when the kind is done
        return key, sha

    def _settle(self) -> None:
        future, done, size = self.pending.popleft()
        started = time.perf_counter()
        key, sha = future.result()  # raises what the write raised
        self.waited += time.perf_counter() - started
        done(key, sha, size)
        self._count(size)

    def _count(self, size: int) -> None:
        self.written += 1
        self.bytes += size
        self.pub.writes += 1

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            try:
                error: BaseException | None = None
                while self.pending:
                    try:
                        self._settle()
                    except BaseException as failed:  # keep waiting: no write may outlive it
                        error = error or failed
                if error is not None and exc[0] is None:
                    raise error
            finally:
                self.pool.shutdown(wait=True)
        if exc[0] is None:
            started = time.perf_counter()
            self.storage.sync_deferred()  # durable before any manifest can name them
            self.waited += time.perf_counter() - started
