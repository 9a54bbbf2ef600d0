"""JSONExporter: publishes the store as JSON documents, like a table format commits a snapshot.

Publication protocol (also in the README):
1. per-ticker chain documents go to new, content-addressed keys (immutable; unchanged ones are
   not rewritten);
2. each rebuilt kind gets an immutable gzip archive under a key no other export uses;
3. the latest documents (``alerts.json`` …) are replaced, each atomically;
4. ``manifest.json`` is replaced last: it names the generation and every document's sha256.
A reader follows the manifest. Before step 4 it still sees the previous generation: latest
documents that no longer match their checksum are read from that generation's archives. A crash
at any step therefore leaves the previous generation complete and served. Retention runs only
after a successful publish and never removes what the newest generations reference.
"""

from __future__ import annotations

import gzip
import re
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
from numpy.typing import NDArray

from chalicelib import exportformat as fmt
from chalicelib.config import TICKER_PATTERN, Settings
from chalicelib.domain import calendar as cal
from chalicelib.errors import PreconditionFailed
from chalicelib.exportformat import DocumentEntry, KindResult, Manifest, MarketClock
from chalicelib.logs import log_event
from chalicelib.storage.base import Storage
from chalicelib.write import export_queries as q
from chalicelib.write.delivery.feed import alerts_feed
from chalicelib.write.delivery.status import delivery_document
from chalicelib.write.store import Store

KEEP_GENERATIONS = 3  # per-ticker documents stay while one of this many manifests names them
KEEP_ARCHIVES = 3  # archives kept per kind regardless of age
# Contracts serialised per query: bounds the memory a large watchlist needs (~300 B a contract).
CHAIN_BATCH_CONTRACTS = 250_000
# Per-ticker documents are written on this many threads, so the storage's latency (an S3 PUT,
# an fsync) overlaps the next batch's query instead of adding to it.
CHAIN_WRITERS = 8
_TICKER = re.compile(TICKER_PATTERN)


def history_start(day: date, sessions: int) -> date:
    """First day of the daily history a chain document serves: the ``sessions`` trading days
    before ``day`` (the IV-rank window, 252 sessions ≈ 369 calendar days), so a chart of the
    history shows every day IV rank and percentile were computed over."""
    return cal.last_trading_days(cal.previous_trading_day(day), sessions)[0]


@dataclass
class Built:
    """One kind's output: its latest document, plus what it wrote besides (chain documents)."""

    data: bytes
    rows: int
    entries: dict[str, DocumentEntry] = field(default_factory=dict)
    chains: dict[str, str] | None = None
    written: int = 0
    written_bytes: int = 0
    skipped: int = 0


@dataclass
class Publication:
    generation: str
    generated_at: datetime
    previous: Manifest | None
    writes: int = 0

    @property
    def stamp(self) -> datetime:
        """What archive keys are stamped with: the generation's time, which never goes back."""
        return fmt.generation_time(self.generation) or self.generated_at


class JSONExporter:
    """The seed's interface; every ``export_*`` publishes one new generation."""

    def __init__(
        self,
        store: Store,
        storage: Storage,
        settings: Settings,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        writers: int = CHAIN_WRITERS,
    ) -> None:
        self.store = store
        self.storage = storage
        self.settings = settings
        self.clock = clock
        self.writers = writers

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
        return self._publish(
            {
                "alerts": {"min_score": 0.0},
                "chains": {"limit": None},
                "scans": {"days": 30},
                "features": {"limit": None},
                fmt.FEED_KIND: {},
                fmt.DELIVERY_KIND: {},
            }
        )

    # ---- publication ----------------------------------------------------------------
    def _publish(self, kinds: dict[str, dict[str, Any]]) -> dict[str, KindResult]:
        started = time.perf_counter()
        now = self.clock()
        previous = fmt.load_manifest(self.storage)
        pub = Publication(
            generation=fmt.next_generation(self._newest_generation(previous), now),
            generated_at=now,
            previous=previous,
        )
        documents = dict(previous.documents) if previous else {}
        archives = dict(previous.archives) if previous else {}
        chains = dict(previous.chains) if previous else {}
        results: dict[str, KindResult] = {}
        latest: list[tuple[str, bytes]] = []
        builders = {
            "alerts": self._alerts,
            "chains": self._chains,
            "scans": self._scans,
            "features": self._features,
            fmt.FEED_KIND: self._feed,
            fmt.DELIVERY_KIND: self._delivery,
        }
        for kind, params in kinds.items():
            kind_start = time.perf_counter()
            try:
                built = builders[kind](pub, **params)
                archive = self._put_archive(pub, kind, built.data)
            except Exception as exc:  # a failing kind keeps its previous documents
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
            key = fmt.document_key(kind)
            documents[key] = DocumentEntry(
                sha256=fmt.sha256(built.data),
                bytes=len(built.data),
                rows=built.rows,
                generation=pub.generation,
            )
            if built.chains is not None:  # the new set of chain documents replaces the old
                documents = {k: v for k, v in documents.items() if not _is_chain_key(k)}
                documents.update(built.entries)
                chains = built.chains
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
            self._put(pub, key, data)
        manifest = Manifest(
            generation=pub.generation,
            generated_at=pub.generated_at,
            previous_generation=previous.generation if previous else None,
            duration_ms=_ms(started),
            documents=documents,
            chains=chains,
            archives=archives,
            results={**(previous.results if previous else {}), **results},
            storage_writes=pub.writes + 2,
            provider=self.settings.provider,
            market=self._market_clock(),
        )
        body = fmt.dumps(manifest.model_dump(mode="json"))
        self._put_archive(pub, "manifest", body)
        self._put(pub, fmt.MANIFEST_KEY, body)
        for result in results.values():
            if result.ok:
                log_event("export_kind", generation=pub.generation, **result.model_dump())
        log_event(
            "export",
            generation=pub.generation,
            duration_ms=_ms(started),
            storage_writes=pub.writes,
            documents=len(documents),
            ok=all(r.ok for r in results.values()),
        )
        try:
            self._retain(manifest)
        except Exception as exc:  # published already: the next export retries the clean-up
            log_event("retention_failed", generation=pub.generation, error=f"{exc!r}")
        return results

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

    def _newest_generation(self, previous: Manifest | None) -> str | None:
        """The id to continue from: the published one, or a newer one an export that crashed
        between archiving its manifest and publishing it already used (ids are never reused)."""
        ids = [previous.generation] if previous else []
        archived = next(fmt.archived_manifests(self.storage, 1), None)
        if archived is not None:
            ids.append(archived.generation)
        return max(ids, key=fmt.generation_order, default=None)

    def _put(self, pub: Publication, key: str, data: bytes) -> None:
        self.storage.put(key, data)
        pub.writes += 1

    def _put_archive(self, pub: Publication, kind: str, data: bytes) -> str:
        """An immutable gzip copy under a key no other export has used (``_n`` on collision)."""
        packed = gzip.compress(data, compresslevel=6, mtime=0)
        for n in range(1000):
            key = fmt.archive_key(kind, pub.stamp, n)
            try:
                self.storage.put(key, packed, content_encoding="gzip", if_none_match=True)
            except PreconditionFailed:
                continue
            pub.writes += 1
            return key
        raise RuntimeError(f"no free archive key for {kind} at {pub.stamp}")

    # ---- kinds ----------------------------------------------------------------------
    def _header(self, pub: Publication, kind: str, count: int, **params: Any) -> dict[str, Any]:
        return {
            "generation": pub.generation,
            "generated_at": fmt.iso(pub.generated_at),
            "kind": kind,
            "count": count,
            **params,
        }

    def _document(self, header: dict[str, Any], rows_name: str, rows_json: bytes) -> bytes:
        return b"".join((fmt.dumps(header)[:-1], b',"', rows_name.encode(), b'":', rows_json, b"}"))

    def _alerts(self, pub: Publication, min_score: float) -> Built:
        n, rows = self.store.rows(q.ALERTS, [min_score])[0]
        header = self._header(pub, "alerts", int(n), min_score=min_score)
        return Built(self._document(header, "alerts", fmt.strict_json(rows)), int(n))

    def _scans(self, pub: Publication, days: int) -> Built:
        # the window ends at the newest scan when that is older than now (a replayed history)
        newest = self.store.rows("SELECT max(started_at) FROM scans")[0][0]
        end = min(_naive(pub.generated_at), newest) if newest else _naive(pub.generated_at)
        n, rows = self.store.rows(q.SCANS, [end - timedelta(days=days)])[0]
        header = self._header(pub, "scans", int(n), days=days)
        return Built(self._document(header, "scans", fmt.strict_json(rows)), int(n))

    def _features(self, pub: Publication, limit: int | None) -> Built:
        docs = list(self._latest_features().values())[:limit]
        header = self._header(pub, "features", len(docs), limit=limit)
        return Built(self._document(header, "features", b"[" + b",".join(docs) + b"]"), len(docs))

    def _latest_features(self) -> dict[str, bytes]:
        """ticker -> its latest features as strict JSON (JSON columns may hold NaN literals)."""
        return {str(t): fmt.strict_json(doc) for t, doc in self.store.rows(q.LATEST_FEATURES)}

    def _feed(self, pub: Publication) -> Built:
        """``alerts.atom``: the newest alerts as an Atom feed (``delivery/feed.py``)."""
        return Built(*alerts_feed(self.store, self.settings, pub.generated_at))

    def _delivery(self, pub: Publication) -> Built:
        """``delivery.json``: the outbox per sink, and the alerts this generation releases."""
        return Built(*delivery_document(self.store, self.settings, pub.generation,
                                        pub.generated_at))  # fmt: skip

    def _chains(self, pub: Publication, limit: int | None) -> Built:
        """The index document; per-ticker documents are written here, to new keys, as built.

        A ticker whose snapshot and features are what the previous generation published keeps
        its document (delta export). The others are built a batch of tickers at a time, so
        memory stays bounded however long the watchlist.
        """
        snaps = self.store.columns(q.LATEST_SNAPSHOTS)
        tickers = [str(t) for t in snaps["ticker"]][:limit]
        bad = [t for t in tickers if not _TICKER.fullmatch(t)]
        if bad:  # checked before anything is written: a ticker becomes part of a storage key
            raise ValueError(f"tickers not matching {TICKER_PATTERN}: {bad[:5]!r}")
        as_of = [str(v) for v in snaps["as_of"]]
        prices = _floats(snaps["underlying_price"])
        dividends = _floats(snaps["dividend_yield"])
        atm_iv = _floats(snaps["atm_iv"])
        counts = [int(v) for v in snaps["contracts"]]
        expirations = [[str(e) for e in exps] for exps in snaps["expirations"]]
        fingerprints = [
            f"{a}|{f}|{fmt.FORMAT_VERSION}"
            for a, f in zip(as_of, snaps["features_as_of"], strict=True)
        ]
        previous = pub.previous
        chain_keys: dict[str, str] = {}
        built = Built(b"", len(tickers), chains=chain_keys)
        changed: list[int] = []
        for i, ticker in enumerate(tickers):
            old_key = previous.chains.get(ticker) if previous else None
            old = previous.documents.get(old_key) if previous and old_key else None
            if old_key and old is not None and old.fingerprint == fingerprints[i]:
                chain_keys[ticker] = old_key
                built.entries[old_key] = old
                built.skipped += 1
            else:
                changed.append(i)
        features = self._latest_features() if changed else {}
        with _Writer(self.storage, self.writers) as writer:
            for batch in _batches(changed, counts, CHAIN_BATCH_CONTRACTS):
                contracts, history = self._chain_rows(snaps, batch)
                for i in batch:
                    ticker = tickers[i]
                    header = self._header(pub, "chain", counts[i])
                    meta = {
                        "ticker": ticker,
                        "as_of": as_of[i],
                        "underlying_price": prices[i],
                        "dividend_yield": dividends[i],
                        "expirations": expirations[i],
                    }
                    doc = b"".join(
                        (
                            fmt.dumps(header)[:-1],
                            b",",
                            fmt.dumps(meta)[1:-1],
                            b',"contracts":',
                            _finite(contracts.get(ticker, b"[]")),
                            b',"history":',
                            _finite(history.get(ticker, b"[]")),
                            b',"features":',
                            features.get(ticker, b"null"),
                            b"}",
                        )
                    )
                    sha = fmt.sha256(doc)
                    key = fmt.chain_key(ticker, sha[:20])  # content-addressed: never overwritten
                    writer.put(key, doc)
                    chain_keys[ticker] = key
                    built.entries[key] = DocumentEntry(
                        sha256=sha,
                        bytes=len(doc),
                        rows=counts[i],
                        generation=pub.generation,
                        fingerprint=fingerprints[i],
                    )
        pub.writes += writer.written
        built.written = writer.written
        built.written_bytes = writer.bytes
        index_rows = [
            {
                "ticker": ticker,
                "as_of": as_of[i],
                "underlying_price": prices[i],
                "atm_iv": atm_iv[i],
                "expirations": expirations[i],
                "contracts": counts[i],
                "key": chain_keys[ticker],
            }
            for i, ticker in enumerate(tickers)
        ]
        header = self._header(pub, "chains", len(index_rows), limit=limit)
        built.data = self._document(header, "chains", fmt.dumps(index_rows))
        return built

    def _chain_rows(
        self, snaps: dict[str, NDArray], batch: list[int]
    ) -> tuple[dict[str, bytes], dict[str, bytes]]:
        """Contracts and daily history, as JSON arrays, of the tickers in ``batch``."""
        wanted = {"ticker": snaps["ticker"][batch], "as_of_ts": snaps["as_of_ts"][batch]}
        oldest = wanted["as_of_ts"].min().astype("datetime64[us]").item()
        first = history_start(oldest.date(), self.settings.analytics.iv_window_days)
        history_from = datetime(first.year, first.month, first.day)
        with self.store.registered("wanted", wanted):
            contracts = dict(self.store.rows(q.CHAIN_CONTRACTS, [oldest]))
            history = dict(self.store.rows(q.CHAIN_HISTORY, [history_from.date()]))
        return contracts, history

    # ---- retention ------------------------------------------------------------------
    def _retain(self, manifest: Manifest) -> int:
        """Delete archives past retention (keeping the newest per kind) and unreferenced chains."""
        cutoff = manifest.generated_at - timedelta(days=self.settings.archive_retention_days)
        objects = self.storage.list(fmt.ARCHIVE_PREFIX)
        by_kind: dict[str, list[tuple[datetime, int, str]]] = {}
        for info in objects:
            parsed = fmt.parse_archive_key(info.key)
            if parsed:
                kind, when, n = parsed
                by_kind.setdefault(kind, []).append((when, n, info.key))
        keep = set(manifest.archives.values())
        doomed = []
        for entries in by_kind.values():
            entries.sort(reverse=True)
            keep.update(key for _, _, key in entries[:KEEP_ARCHIVES])
            doomed += [key for when, _, key in entries if when < cutoff and key not in keep]
        referenced = set(manifest.chains.values())
        for old in fmt.archived_manifests(self.storage, KEEP_GENERATIONS):
            referenced.update(old.chains.values())
        doomed += [
            info.key for info in self.storage.list(fmt.CHAINS_PREFIX) if info.key not in referenced
        ]
        deleted = self.storage.delete_many(doomed) if doomed else 0
        if deleted:
            log_event("retention", deleted=deleted, generation=manifest.generation)
        return deleted


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


def _finite(json_array: bytes) -> bytes:
    """DuckDB writes non-finite doubles as ``NaN`` / ``Infinity``. Their capitals appear
    nowhere else in contracts or history, and a one-byte search runs at memchr speed."""
    if (b"N" in json_array and b"NaN" in json_array) or (
        b"I" in json_array and b"Infinity" in json_array
    ):
        return fmt.strict_json(json_array)
    return json_array


class _Writer:
    """Writes immutable documents on a few threads; leaving the block waits for every write
    and raises the first failure, so nothing is still being written once the kind is done."""

    MAX_PENDING = 64  # documents built but not yet stored: bounds memory

    def __init__(self, storage: Storage, threads: int) -> None:
        self.storage = storage
        self.pool = ThreadPoolExecutor(threads, "export-put") if threads > 1 else None
        self.pending: deque[tuple[Future[Any], int]] = deque()
        self.written = 0
        self.bytes = 0

    def put(self, key: str, data: bytes) -> None:
        if self.pool is None:
            self.storage.put(key, data)
            self._count(len(data))
            return
        while self.pending and (len(self.pending) >= self.MAX_PENDING or self.pending[0][0].done()):
            self._settle()
        self.pending.append((self.pool.submit(self.storage.put, key, data), len(data)))

    def _settle(self) -> None:
        future, size = self.pending.popleft()
        future.result()  # raises what the write raised
        self._count(size)

    def _count(self, size: int) -> None:
        self.written += 1
        self.bytes += size

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is None:
            return
        try:
            error: BaseException | None = None
            while self.pending:
                try:
                    self._settle()
                except BaseException as failed:  # keep waiting: no write may outlive the kind
                    error = error or failed
            if error is not None and exc[0] is None:
                raise error
        finally:
            self.pool.shutdown(wait=True)


def _floats(values: NDArray) -> list[float | None]:
    """A numeric column (possibly masked, for NULLs) as floats, with None for NULL and NaN."""
    filled = np.ma.filled(np.ma.asarray(values, dtype=np.float64), np.nan)
    return [float(v) if np.isfinite(v) else None for v in filled]


def _is_chain_key(key: str) -> bool:
    return key.startswith(fmt.CHAINS_PREFIX)


def _naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)
