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
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib import exportformat as fmt
from chalicelib.config import Settings
from chalicelib.errors import PreconditionFailed
from chalicelib.exportformat import DocumentEntry, KindResult, Manifest
from chalicelib.logs import log_event
from chalicelib.storage.base import Storage
from chalicelib.write import export_queries as q
from chalicelib.write.store import Store

KEEP_GENERATIONS = 3  # per-ticker documents stay while one of this many manifests names them
KEEP_ARCHIVES = 3  # archives kept per kind regardless of age
HISTORY_DAYS = 365


@dataclass
class Built:
    """One kind's output: its latest document and any extra immutable documents."""

    data: bytes
    rows: int
    extra: dict[str, bytes] = field(default_factory=dict)
    entries: dict[str, DocumentEntry] = field(default_factory=dict)
    chains: dict[str, str] | None = None
    skipped: int = 0


@dataclass
class Publication:
    generation: str
    generated_at: datetime
    previous: Manifest | None
    writes: int = 0


class JSONExporter:
    """The seed's interface; every ``export_*`` publishes one new generation."""

    def __init__(
        self,
        store: Store,
        storage: Storage,
        settings: Settings,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.storage = storage
        self.settings = settings
        self.clock = clock

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
            }
        )

    # ---- publication ----------------------------------------------------------------
    def _publish(self, kinds: dict[str, dict[str, Any]]) -> dict[str, KindResult]:
        started = time.perf_counter()
        now = self.clock()
        previous = fmt.load_manifest(self.storage)
        pub = Publication(
            generation=fmt.next_generation(previous.generation if previous else None, now),
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
        }
        for kind, params in kinds.items():
            kind_start = time.perf_counter()
            try:
                built = builders[kind](pub, **params)
                for key, data in built.extra.items():
                    self._put(pub, key, data)
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
            key = fmt.latest_key(kind)  # type: ignore[arg-type]
            documents[key] = DocumentEntry(
                sha256=fmt.sha256(built.data),
                bytes=len(built.data),
                rows=built.rows,
                generation=pub.generation,
            )
            documents.update(built.entries)
            if built.chains is not None:
                for gone in set(chains) - set(built.chains):
                    documents.pop(chains[gone], None)
                chains = built.chains
            archives[kind] = archive
            latest.append((key, built.data))
            results[kind] = KindResult(
                kind=kind,
                ok=True,
                rows=built.rows,
                bytes=len(built.data) + sum(map(len, built.extra.values())),
                duration_ms=_ms(kind_start),
                keys_written=2 + len(built.extra),
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
        self._retain(manifest)
        return results

    def _put(self, pub: Publication, key: str, data: bytes) -> None:
        self.storage.put(key, data)
        pub.writes += 1

    def _put_archive(self, pub: Publication, kind: str, data: bytes) -> str:
        """An immutable gzip copy under a key no other export has used (``_n`` on collision)."""
        packed = gzip.compress(data, compresslevel=6, mtime=0)
        for n in range(1000):
            key = fmt.archive_key(kind, pub.generated_at, n)
            try:
                self.storage.put(key, packed, content_encoding="gzip", if_none_match=True)
            except PreconditionFailed:
                continue
            pub.writes += 1
            return key
        raise RuntimeError(f"no free archive key for {kind} at {pub.generated_at}")

    # ---- kinds ----------------------------------------------------------------------
    def _header(self, pub: Publication, kind: str, count: int, **params: Any) -> dict[str, Any]:
        return {
            "generation": pub.generation,
            "generated_at": fmt.iso(pub.generated_at),
            "kind": kind,
            "count": count,
            **params,
        }

    def _document(self, header: dict[str, Any], rows_name: str, rows_json: str | bytes) -> bytes:
        head = fmt.dumps(header)
        raw = rows_json.encode() if isinstance(rows_json, str) else rows_json
        return head[:-1] + b',"' + rows_name.encode() + b'":' + raw + b"}"

    def _alerts(self, pub: Publication, min_score: float) -> Built:
        n, rows = self.store.rows(q.ALERTS, [min_score])[0]
        header = self._header(pub, "alerts", int(n), min_score=min_score)
        return Built(self._document(header, "alerts", rows), int(n))

    def _scans(self, pub: Publication, days: int) -> Built:
        since = _naive(pub.generated_at - timedelta(days=days))
        n, rows = self.store.rows(q.SCANS, [since])[0]
        header = self._header(pub, "scans", int(n), days=days)
        return Built(self._document(header, "scans", rows), int(n))

    def _features(self, pub: Publication, limit: int | None) -> Built:
        docs = [row[1] for row in self.store.rows(q.LATEST_FEATURES)]
        if limit is not None:
            docs = docs[:limit]
        header = self._header(pub, "features", len(docs), limit=limit)
        return Built(self._document(header, "features", "[" + ",".join(docs) + "]"), len(docs))

    def _chains(self, pub: Publication, limit: int | None) -> Built:
        snaps = self.store.columns(q.LATEST_SNAPSHOTS)
        tickers = [str(t) for t in snaps["ticker"]][:limit]
        previous = pub.previous
        index_rows, entries, extra, chain_keys = [], {}, {}, {}
        changed: list[int] = []
        for i, ticker in enumerate(tickers):
            fingerprint = f"{snaps['as_of'][i]}|{snaps['features_as_of'][i]}|{fmt.FORMAT_VERSION}"
            old_key = previous.chains.get(ticker) if previous else None
            old = previous.documents.get(old_key) if previous and old_key else None
            if old is not None and old.fingerprint == fingerprint:
                chain_keys[ticker] = old_key
                entries[old_key] = old
            else:
                changed.append(i)
        bodies = self._chain_bodies(snaps, changed) if changed else {}
        skipped = len(tickers) - len(changed)
        for i in changed:
            ticker = tickers[i]
            contracts, history, features = bodies.get(ticker, ("[]", "[]", "null"))
            meta = {
                "ticker": ticker,
                "as_of": snaps["as_of"][i],
                "underlying_price": float(snaps["underlying_price"][i]),
                "dividend_yield": _float(snaps["dividend_yield"][i]),
                "expirations": list(snaps["expirations"][i]),
            }
            body = (
                fmt.dumps(meta)[:-1]
                + b',"contracts":'
                + contracts.encode()
                + b',"history":'
                + history.encode()
                + b',"features":'
                + features.encode()
                + b"}"
            )
            key = fmt.chain_key(ticker, fmt.sha256(body)[:20])
            fingerprint = f"{snaps['as_of'][i]}|{snaps['features_as_of'][i]}|{fmt.FORMAT_VERSION}"
            old_key = previous.chains.get(ticker) if previous else None
            if previous and old_key == key:  # same content, new fingerprint: nothing to write
                entries[key] = previous.documents[key].model_copy(
                    update={"fingerprint": fingerprint}
                )
                skipped += 1
            else:
                header = self._header(pub, "chain", int(snaps["contracts"][i]))
                doc = fmt.dumps(header)[:-1] + b"," + body[1:]
                extra[key] = doc
                entries[key] = DocumentEntry(
                    sha256=fmt.sha256(doc),
                    bytes=len(doc),
                    rows=int(snaps["contracts"][i]),
                    generation=pub.generation,
                    fingerprint=fingerprint,
                )
            chain_keys[ticker] = key
        for i, ticker in enumerate(tickers):
            index_rows.append(
                {
                    "ticker": ticker,
                    "as_of": snaps["as_of"][i],
                    "underlying_price": float(snaps["underlying_price"][i]),
                    "atm_iv": _float(snaps["atm_iv"][i]),
                    "expirations": list(snaps["expirations"][i]),
                    "contracts": int(snaps["contracts"][i]),
                    "key": chain_keys[ticker],
                }
            )
        header = self._header(pub, "chains", len(index_rows), limit=limit)
        data = self._document(header, "chains", fmt.dumps(index_rows))
        return Built(data, len(index_rows), extra, entries, chain_keys, skipped)

    def _chain_bodies(self, snaps: dict[str, Any], changed: list[int]) -> dict[str, tuple]:
        wanted = {
            "ticker": snaps["ticker"][changed],
            "as_of_ts": snaps["as_of_ts"][changed],
        }
        oldest = min(snaps["as_of_ts"][changed]).astype("datetime64[us]").item()
        history_from = oldest - timedelta(days=HISTORY_DAYS)
        with self.store.registered("wanted", wanted):
            contracts = dict(self.store.rows(q.CHAIN_CONTRACTS, [oldest]))
            history = dict(self.store.rows(q.CHAIN_HISTORY, [history_from, history_from.date()]))
            features = {t: d for t, d in self.store.rows(q.LATEST_FEATURES)}
        return {
            str(t): (contracts.get(t, "[]"), history.get(t, "[]"), _features_only(features.get(t)))
            for t in wanted["ticker"]
        }

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


def _features_only(doc: str | None) -> str:
    if not doc:
        return "null"
    return doc


def _float(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if out == out else None


def _naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)
