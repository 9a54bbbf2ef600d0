"""The export reader: the read side's one way to the data. It never touches DuckDB.

It follows the manifest. A document is served only after its bytes match the manifest's sha256;
a missing, truncated, unparsable or mismatching latest object falls back to the same
generation's archive, then to the newest valid archive, then to an empty result — and says which
(``latest`` | ``archive`` | ``none``). Parsed documents are cached under the manifest entry's
checksum, so a warm request parses nothing and reads no document bytes: it only checks whether
the manifest changed (a stat locally, a HEAD on S3 at most once per ``manifest_ttl`` seconds).
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
FALLBACK_MANIFESTS = 3  # older generations searched for a damaged per-ticker document


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
    """A small LRU of parsed documents keyed by checksum (documents are immutable by sha)."""

    def __init__(self, max_items: int) -> None:
        self.max_items = max_items
        self._items: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Any:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


class ExportReader:
    """Verified, cached access to the published export."""

    def __init__(self, storage: Storage, manifest_ttl: float = 0.0, max_cached: int = 256) -> None:
        self.storage = storage
        self.manifest_ttl = manifest_ttl
        self.cache = LruCache(max_cached)
        self._manifest: tuple[str, Manifest | None] = ("", None)
        self._checked_at = 0.0
        self._lock = threading.Lock()
        self.parses = 0  # documents parsed so far: lets tests and benchmarks see warm hits

    # ---- manifest ---------------------------------------------------------------------
    def manifest(self) -> Manifest | None:
        """The current manifest (re-read only when its version changed)."""
        now = time.monotonic()
        if self._manifest[0] and now - self._checked_at < self.manifest_ttl:
            return self._manifest[1]
        with self._lock:
            info = self.storage.head(fmt.MANIFEST_KEY)
            version = info.version if info else "missing"
            if version != self._manifest[0]:
                self._manifest = (version, self._load_manifest())
            self._checked_at = now
            return self._manifest[1]

    def _load_manifest(self) -> Manifest | None:
        try:
            manifest = Manifest.model_validate_json(self.storage.get(fmt.MANIFEST_KEY).data)
            self.parses += 1
            return manifest
        except ObjectNotFound:
            pass
        except ValueError:
            log_event("read_fallback", key=fmt.MANIFEST_KEY, reason="manifest unreadable")
        manifest = next(fmt.archived_manifests(self.storage), None)
        if manifest is not None:
            log_event("read_fallback", key=fmt.MANIFEST_KEY, generation=manifest.generation,
                      reason="served the newest archived manifest")  # fmt: skip
        return manifest

    # ---- documents --------------------------------------------------------------------
    def document(self, kind: fmt.Kind) -> Loaded:
        """The latest document of ``kind``, verified, with archive fallback."""
        manifest = self.manifest()
        key = fmt.latest_key(kind)
        entry = manifest.documents.get(key) if manifest else None
        if manifest and entry:
            doc = self._verified(key, entry.sha256, gzipped=False)
            if doc is not None:
                return self._loaded(doc, "latest", entry.sha256, manifest)
            archive = manifest.archives.get(kind)
            doc = self._verified(archive, entry.sha256, gzipped=True) if archive else None
            if doc is not None:
                log_event("read_fallback", key=key, archive=archive, reason="same generation")
                return self._loaded(doc, "archive", entry.sha256, manifest)
        for archive in fmt.archives_newest_first(self.storage, kind):
            doc = self._parsed_archive(archive, kind)
            if doc is not None:
                log_event("read_fallback", key=key, archive=archive, reason="newest valid archive")
                return self._loaded(doc, "archive", f"archive:{archive}")
        return Loaded.empty()

    def chain(self, ticker: str) -> Loaded | None:
        """The ticker's chain document; None when no generation knows the ticker."""
        manifest = self.manifest()
        if manifest is None:
            return None
        key = manifest.chains.get(ticker)
        if key is None:
            return None
        entry = manifest.documents.get(key)
        doc = self._verified(key, entry.sha256, gzipped=False) if entry else None
        if doc is not None:
            return self._loaded(doc, "latest", entry.sha256, manifest)
        for older in fmt.archived_manifests(self.storage, FALLBACK_MANIFESTS + 1):
            old_key = older.chains.get(ticker)
            old_entry = older.documents.get(old_key) if old_key else None
            if old_entry is None or old_key == key:
                continue
            doc = self._verified(old_key, old_entry.sha256, gzipped=False)
            if doc is not None:
                log_event("read_fallback", key=key, archive=old_key, reason="older generation")
                return self._loaded(doc, "archive", old_entry.sha256, older)
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
            when = datetime.fromisoformat(raw) if isinstance(raw, str) else None
        return Loaded(doc, source, generation, when, f"{source}:{generation}:{version}")

    def _verified(self, key: str, sha: str, *, gzipped: bool) -> dict[str, Any] | None:
        """The parsed object stored at ``key`` if its (decompressed) bytes have ``sha``."""
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
        if doc is not None:
            self.cache.put(sha, doc)
        return doc

    def _parsed_archive(self, key: str, kind: str) -> dict[str, Any] | None:
        cached = self.cache.get(f"archive:{key}")
        if cached is not None:
            return cached
        try:
            data = gzip.decompress(self.storage.get(key).data)
        except (ObjectNotFound, OSError, EOFError):
            return None
        doc = self._parse(key, data)
        if doc is None or doc.get("kind") != kind:
            return None
        self.cache.put(f"archive:{key}", doc)
        return doc

    def _parse(self, key: str, data: bytes) -> dict[str, Any] | None:
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError:
            log_event("read_damaged", key=key, reason="unparsable")
            return None
        self.parses += 1
        return doc if isinstance(doc, dict) else None
