"""The export reader: the read side's one way to the data. It never touches DuckDB.

It follows the manifest. A document is served only after its bytes match a manifest's sha256;
a missing, truncated, unparsable or mismatching latest object falls back to the same
generation's archive, then to the newest archive that an older (archived) manifest vouches for,
then to the newest archive that at least parses as that kind, then to an empty result — and says
which (``latest`` | ``archive`` | ``none``).

Parsed documents are cached under their checksum, and how a damaged document was resolved is
cached under the manifest version, so a warm request parses nothing and reads no document bytes:
it only checks whether the manifest changed (a stat locally, a HEAD on S3 at most once per
``manifest_ttl`` seconds). The cache is bounded by the bytes of the documents it holds, so memory
grows with what is read, up to ``max_cached_bytes``.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import orjson

from chalicelib import exportformat as fmt
from chalicelib.errors import ObjectNotFound
from chalicelib.exportformat import Manifest
from chalicelib.logs import log_event
from chalicelib.storage.base import Storage

Source = Literal["latest", "archive", "none"]
FALLBACK_MANIFESTS = 3  # older generations searched for a damaged document
DEFAULT_CACHE_BYTES = 64 << 20  # of source JSON; parsed objects take roughly 3-4x that


@dataclass(frozen=True)
class Loaded:
    """A verified document (or none), where it came from, and what identifies its bytes."""

    doc: dict[str, Any] | None
    source: Source
    generation: str | None
    generated_at: datetime | None
    version: str  # changes whenever the served bytes may differ; the basis of ETags

    @classmethod
    def empty(cls) -> Loaded:
        return cls(None, "none", None, None, "none")


class LruCache:
    """A thread-safe LRU bounded by item count and by total weight (e.g. bytes)."""

    def __init__(self, max_items: int, max_weight: int | None = None) -> None:
        self.max_items = max_items
        self.max_weight = max_weight
        self.weight = 0
        self._items: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Any:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def put(self, key: str, value: Any, weight: int = 1) -> None:
        """Remember ``value``; one heavier than the whole budget is not kept at all."""
        if self.max_weight is not None and weight > self.max_weight:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.weight -= old[1]
            self._items[key] = (value, weight)
            self.weight += weight
            while len(self._items) > self.max_items or (
                self.max_weight is not None and self.weight > self.max_weight
            ):
                _, (_, dropped) = self._items.popitem(last=False)
                self.weight -= dropped

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.weight = 0

    def __len__(self) -> int:
        return len(self._items)


@dataclass(frozen=True)
class _Doc:
    """A parsed document and where its bytes were first read from."""

    doc: dict[str, Any]
    source: Source


class ExportReader:
    """Verified, cached access to the published export."""

    def __init__(
        self,
        storage: Storage,
        manifest_ttl: float = 0.0,
        max_cached: int = 256,
        max_cached_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        self.storage = storage
        self.manifest_ttl = manifest_ttl
        self.cache = LruCache(max_cached, max_cached_bytes)
        self._manifest: tuple[str, Manifest | None] = ("", None)
        self.manifest_source: Source = "none"  # where the current manifest was read from
        self._checked_at = 0.0
        self._lock = threading.Lock()
        self.parses = 0  # documents parsed so far: lets tests and benchmarks see warm hits

    # ---- manifest ---------------------------------------------------------------------
    def manifest(self) -> Manifest | None:
        """The current manifest (re-read only when its version changed)."""
        return self._current()[1]

    def _current(self) -> tuple[str, Manifest | None]:
        """(storage version of manifest.json, the manifest served for it)."""
        now = time.monotonic()
        current = self._manifest
        if current[0] and now - self._checked_at < self.manifest_ttl:
            return current
        with self._lock:
            info = self.storage.head(fmt.MANIFEST_KEY)
            version = info.version if info else "missing"
            if version != self._manifest[0]:
                self._manifest = (version, self._load_manifest())
            self._checked_at = now
            return self._manifest

    def _load_manifest(self) -> Manifest | None:
        self.manifest_source = "none"
        try:
            manifest = Manifest.model_validate_json(self.storage.get(fmt.MANIFEST_KEY).data)
            self.parses += 1
            self.manifest_source = "latest"
            return manifest
        except ObjectNotFound:
            pass
        except ValueError:
            log_event("read_fallback", key=fmt.MANIFEST_KEY, reason="manifest unreadable")
        manifest = next(fmt.archived_manifests(self.storage), None)
        if manifest is not None:
            self.parses += 1
            self.manifest_source = "archive"
            log_event("read_fallback", key=fmt.MANIFEST_KEY, generation=manifest.generation,
                      reason="served the newest archived manifest")  # fmt: skip
        return manifest

    def tickers(self) -> frozenset[str]:
        """Tickers the current generation publishes a chain document for (no document read)."""
        manifest = self.manifest()
        return frozenset(manifest.chains) if manifest else frozenset()

    # ---- documents --------------------------------------------------------------------
    def document(self, kind: fmt.Kind) -> Loaded:
        """The latest document of ``kind``, verified, with archive fallback."""
        version, manifest = self._current()
        resolved_key = f"resolved:{kind}:{version}"
        resolved = self.cache.get(resolved_key)  # a damaged latest is not read again
        if resolved is not None:
            return resolved
        key = fmt.latest_key(kind)
        entry = manifest.documents.get(key) if manifest else None
        if manifest and entry:
            hit = self._verified(key, entry.sha256, gzipped=False, source="latest")
            if hit is not None:
                return self._loaded(hit.doc, hit.source, entry.sha256, manifest)
        resolved = self._fallback(kind, manifest)
        self.cache.put(resolved_key, resolved, 1)
        return resolved

    def _fallback(self, kind: fmt.Kind, manifest: Manifest | None) -> Loaded:
        """The newest trustworthy copy of ``kind`` when its latest document is not."""
        key = fmt.latest_key(kind)
        tried: set[str] = set()
        # Archives vouched for by a manifest: the current one's first, then older generations.
        candidates = [manifest] if manifest else []
        candidates += fmt.archived_manifests(self.storage, FALLBACK_MANIFESTS + 1)
        for m in candidates:
            archive = m.archives.get(kind)
            entry = m.documents.get(key)
            if not archive or entry is None or archive in tried:
                continue
            tried.add(archive)
            hit = self._verified(archive, entry.sha256, gzipped=True, source="archive")
            if hit is not None:
                same = manifest is not None and m.generation == manifest.generation
                log_event("read_fallback", key=key, archive=archive,
                          reason="same generation" if same else "older generation")  # fmt: skip
                return self._loaded(hit.doc, "archive", entry.sha256, m)
        # No manifest vouches for any archive: the newest one that parses as this kind.
        for archive in fmt.archives_newest_first(self.storage, kind):
            if archive in tried:
                continue
            doc = self._parsed_archive(archive, kind)
            if doc is not None:
                log_event("read_fallback", key=key, archive=archive, reason="unverified archive")
                return self._loaded(doc, "archive", f"archive:{archive}")
        log_event("read_empty", key=key, reason="no valid copy")
        return Loaded.empty()

    def chain(self, ticker: str) -> Loaded | None:
        """The ticker's chain document; None when the current generation does not know it."""
        version, manifest = self._current()
        if manifest is None:
            return None
        key = manifest.chains.get(ticker)
        if key is None:
            return None
        resolved_key = f"resolved:chain:{ticker}:{version}"
        resolved = self.cache.get(resolved_key)
        if resolved is not None:
            return resolved
        entry = manifest.documents.get(key)
        if entry is not None:
            hit = self._verified(key, entry.sha256, gzipped=False, source="latest")
            if hit is not None:
                return self._loaded(hit.doc, "latest", entry.sha256, manifest)
        resolved = self._chain_fallback(ticker, key)
        self.cache.put(resolved_key, resolved, 1)
        return resolved

    def _chain_fallback(self, ticker: str, key: str) -> Loaded:
        for older in fmt.archived_manifests(self.storage, FALLBACK_MANIFESTS + 1):
            old_key = older.chains.get(ticker)
            old_entry = older.documents.get(old_key) if old_key else None
            if old_key is None or old_entry is None or old_key == key:
                continue
            hit = self._verified(old_key, old_entry.sha256, gzipped=False, source="archive")
            if hit is not None:
                log_event("read_fallback", key=key, archive=old_key, reason="older generation")
                return self._loaded(hit.doc, "archive", old_entry.sha256, older)
        log_event("read_empty", key=key, reason="no valid copy")
        return Loaded.empty()

    def _loaded(
        self, doc: dict[str, Any], source: Source, version: str, manifest: Manifest | None = None
    ) -> Loaded:
        """Documents served under a manifest carry its generation (a delta-skipped document
        belongs to every generation that lists it); a stray archive carries its own."""
        if manifest is not None:
            generation, when = manifest.generation, manifest.generated_at
        else:
            generation = doc.get("generation")
            raw = doc.get("generated_at")
            try:
                when = datetime.fromisoformat(raw) if isinstance(raw, str) else None
            except ValueError:
                when = None
        return Loaded(doc, source, generation, when, f"{source}:{generation}:{version}")

    def _verified(self, key: str, sha: str, *, gzipped: bool, source: Source) -> _Doc | None:
        """The parsed object stored at ``key`` if its (decompressed) bytes have ``sha``.

        The cache remembers where the bytes were first read from, so a document that reached
        the cache through its archive keeps being reported as ``archive``.
        """
        cached = self.cache.get(sha)
        if cached is not None:
            return cached
        try:
            data = self.storage.get(key).data
            if gzipped:
                data = gzip.decompress(data)
        except (ObjectNotFound, OSError, EOFError) as exc:
            log_event("read_damaged", key=key, reason=type(exc).__name__)
            return None
        if fmt.sha256(data) != sha:
            log_event("read_damaged", key=key, reason="sha256 mismatch", bytes=len(data))
            return None
        doc = self._parse(key, data)
        if doc is None:
            return None
        hit = _Doc(doc, source)
        self.cache.put(sha, hit, len(data))
        return hit

    def _parsed_archive(self, key: str, kind: str) -> dict[str, Any] | None:
        cached = self.cache.get(f"archive:{key}")
        if cached is not None:
            return cached
        try:
            data = gzip.decompress(self.storage.get(key).data)
        except (ObjectNotFound, OSError, EOFError) as exc:
            log_event("read_damaged", key=key, reason=type(exc).__name__)
            return None
        doc = self._parse(key, data)
        if doc is None or doc.get("kind") != kind:
            return None
        self.cache.put(f"archive:{key}", doc, len(data))
        return doc

    def _parse(self, key: str, data: bytes) -> dict[str, Any] | None:
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError:
            log_event("read_damaged", key=key, reason="unparsable")
            return None
        self.parses += 1
        if not isinstance(doc, dict):
            log_event("read_damaged", key=key, reason="not a JSON object")
            return None
        return doc
