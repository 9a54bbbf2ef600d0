"""The export reader: the read side's one way to the data. It never touches DuckDB.

It follows the manifest. A document is served only after its bytes match a manifest's sha256;
a missing, truncated, unparsable or mismatching latest object falls back to the same
generation's archive, then to the newest archive that an older (archived) manifest vouches for,
then to the newest archive that at least parses as that kind, then to an empty result — and says
which (``latest`` | ``archive`` | ``none``). The other published documents (the Atom feed of
alerts, the delivery status) go the same way (``named``); the feed is served as its bytes.
A key that is not safe (a manifest naming one outside the root, a symlink leading out of it:
the storage refuses both with InvalidKey) counts as damage, and so does a JSON document of another
``schema_version`` (format 1's rows are not read: the next export in format 2 rebuilds everything).
A storage that fails to answer (StorageUnavailable, after the adapter's own retries) or refuses
to (an unreadable file or export root: PermissionError) makes a copy unreadable like damage
does, except that the answer is not remembered: the next request tries again. Only when not even
the manifest can be read and none was read before does the error reach the caller (HTTP 503).

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
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, Literal, NamedTuple

import orjson

from chalicelib import exportformat as fmt
from chalicelib.errors import InvalidKey, ObjectNotFound, StorageUnavailable
from chalicelib.exportformat import Manifest
from chalicelib.exportstatus import COLLECT_STATUS_KEY, STATUS_KEY, ExportStatus, read_status
from chalicelib.logs import log_event
from chalicelib.storage.base import Storage

Source = Literal["latest", "archive", "none"]
# the manifest's maps of per-ticker documents
TickerKind = Literal["chains", "histories", "feature_sets"]
Pinned = tuple[str, "Manifest | None"]  # (storage version of manifest.json, its manifest)
# What a document's bytes become, given its key and bytes; None rejects them (damaged).
Parse = Callable[[str, bytes], "dict[str, Any] | None"]
FALLBACK_MANIFESTS = 3  # older generations searched for a damaged document
DEFAULT_CACHE_BYTES = 64 << 20  # of source JSON; parsed objects take roughly 3-4x that
_UNREADABLE = (ObjectNotFound, StorageUnavailable, InvalidKey, OSError, EOFError)


def _temporary(exc: BaseException) -> bool:
    """Whether a failed read may succeed on its own later (an outage, a permission an operator
    fixes), so its answer must not be remembered; damage (bad bytes, a bad key) is permanent."""
    return isinstance(exc, StorageUnavailable | OSError) and not isinstance(exc, gzip.BadGzipFile)


# Records are NamedTuples, not frozen dataclasses: the API creates them at every cold start, where
# a dataclass costs several times more (it compiles each of its methods).
class Loaded(NamedTuple):
    """A verified document (or none), where it came from, and what identifies its bytes."""

    doc: dict[str, Any] | None
    source: Source
    generation: str | None
    generated_at: datetime | None
    version: str  # changes whenever the served bytes may differ; the basis of ETags
    digest: str = "none"  # what identifies the document's bytes (its sha256), for derived views

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


class _Doc(NamedTuple):
    """A parsed document and where its bytes were first read from."""

    doc: dict[str, Any]
    source: Source


class _Lookup:
    """What resolving one document ran into. An answer reached while the storage failed to
    answer is temporary, so it is not cached under the manifest version."""

    __slots__ = ("unavailable",)

    def __init__(self, unavailable: bool = False) -> None:
        self.unavailable = unavailable


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
        # status key -> (version, parsed status, when last looked up)
        self._statuses: dict[str, tuple[str, ExportStatus | None, float]] = {}
        self._outages = 0  # manifest reads the storage failed: each gets its own cache token
        self._lock = threading.Lock()
        self.parses = 0  # documents parsed so far: lets tests and benchmarks see warm hits

    # ---- manifest ---------------------------------------------------------------------
    def manifest(self) -> Manifest | None:
        """The current manifest (re-read only when its version changed)."""
        return self._current()[1]

    def served(self) -> Manifest | None:
        """The manifest the latest read was resolved under, without asking the storage."""
        return self._manifest[1]

    def pin(self) -> Pinned:
        """The current manifest, to resolve several documents under (``document(kind, at=)``):
        a response composed of several documents then comes from one manifest version, even
        when the writer publishes between the reads."""
        return self._current()

    def _current(self) -> tuple[str, Manifest | None]:
        """(storage version of manifest.json, the manifest served for it)."""
        now = time.monotonic()
        current = self._manifest
        if current[0] and now - self._checked_at < self.manifest_ttl:
            return current
        with self._lock:
            try:
                info = self.storage.head(fmt.MANIFEST_KEY)
                version = info.version if info else "missing"
            except (StorageUnavailable, InvalidKey, OSError) as exc:
                log_event("read_unavailable", key=fmt.MANIFEST_KEY, error=str(exc),
                          reason=type(exc).__name__)  # fmt: skip
                if self._manifest[1] is not None:  # serve the manifest read before
                    self._checked_at = now
                    return self._manifest
                version = ""  # nothing to compare with: read what can be read, not remembered
            if not version or version != self._manifest[0]:
                lookup, source = _Lookup(unavailable=not version), self.manifest_source
                manifest = self._load_manifest(lookup)
                if lookup.unavailable:
                    # Not remembered under the storage version, so the next check reads again;
                    # the token keeps what is cached meanwhile apart from any other manifest's.
                    if manifest is None and self._manifest[1] is not None:
                        manifest, self.manifest_source = self._manifest[1], source
                    if manifest is None:  # "no ticker, no data" would be a wrong answer
                        raise StorageUnavailable(
                            f"{fmt.MANIFEST_KEY}: no copy could be read from {self.storage!r}"
                        )
                    self._outages += 1
                    version = f"unavailable-{self._outages}"
                self._manifest = (version, manifest)
            self._checked_at = now
            return self._manifest

    def _load_manifest(self, lookup: _Lookup) -> Manifest | None:
        self.manifest_source = "none"
        try:
            manifest = Manifest.model_validate_json(self.storage.get(fmt.MANIFEST_KEY).data)
            self.parses += 1
            self.manifest_source = "latest"
            return manifest
        except ObjectNotFound:
            pass
        except _UNREADABLE as exc:
            lookup.unavailable |= _temporary(exc)
            log_event("read_unavailable", key=fmt.MANIFEST_KEY, error=str(exc),
                      reason=type(exc).__name__)  # fmt: skip
        except ValueError:
            log_event("read_fallback", key=fmt.MANIFEST_KEY, reason="manifest unreadable")
        manifest = self._newest_archived_manifest(lookup)
        if manifest is not None:
            self.parses += 1
            self.manifest_source = "archive"
            log_event("read_fallback", key=fmt.MANIFEST_KEY, generation=manifest.generation,
                      reason="served the newest archived manifest")  # fmt: skip
        return manifest

    def _newest_archived_manifest(self, lookup: _Lookup) -> Manifest | None:
        return next(self._archived_manifests(lookup), None)

    def _archived_manifests(self, lookup: _Lookup, limit: int | None = None) -> Iterator[Manifest]:
        """Valid archived manifests, newest first, of the newest ``limit`` archives: as
        ``fmt.archived_manifests``, except that an archive cut short (EOFError from gzip) or
        one the storage fails to answer is skipped too, instead of ending the search."""
        for key in self._archives_newest_first(lookup, "manifest")[:limit]:
            try:
                yield Manifest.model_validate_json(gzip.decompress(self.storage.get(key).data))
            except (*_UNREADABLE, ValueError) as exc:
                lookup.unavailable |= _temporary(exc)
                log_event("read_damaged", key=key, reason=type(exc).__name__)

    def _archives_newest_first(self, lookup: _Lookup, kind: str) -> list[str]:
        try:
            return fmt.archives_newest_first(self.storage, kind)
        except (StorageUnavailable, InvalidKey, OSError) as exc:
            lookup.unavailable |= _temporary(exc)
            log_event("read_unavailable", key=fmt.ARCHIVE_PREFIX, error=str(exc))
            return []

    # ---- export status ----------------------------------------------------------------
    def export_status(self) -> ExportStatus | None:
        """The writer's recorded export status; None when there is none or it is unreadable."""
        return self.status_document(STATUS_KEY)

    def collect_status(self) -> ExportStatus | None:
        """The writer's recorded collect status (a damaged database, collects that fail)."""
        return self.status_document(COLLECT_STATUS_KEY)

    def status_document(self, key: str) -> ExportStatus | None:
        """A status document, re-read only when its version changed and looked up at most once
        per ``manifest_ttl``; None when there is none or it is unreadable."""
        now = time.monotonic()
        version, status, checked_at = self._statuses.get(key, ("", None, 0.0))
        if version and now - checked_at < self.manifest_ttl:
            return status
        try:
            info = self.storage.head(key)
            current = info.version if info else "missing"
            if current != version:
                status = read_status(self.storage, key) if info else None
        except (StorageUnavailable, InvalidKey, OSError):
            return status
        self._statuses[key] = (current, status, now)
        return status

    def tickers(self, at: Pinned | None = None) -> frozenset[str]:
        """Tickers the current (or pinned) generation publishes a chain document for (no
        document read)."""
        manifest = (at or self._current())[1]
        return frozenset(manifest.chains) if manifest else frozenset()

    # ---- documents --------------------------------------------------------------------
    def document(self, kind: fmt.Kind, at: Pinned | None = None) -> Loaded:
        """The latest document of ``kind``, verified, with archive fallback (under the manifest
        ``at`` pins, else the current one)."""
        return self._resolve(fmt.latest_key(kind), kind, self._parse, at)

    def named(self, kind: str, *, raw: Callable[[bytes], bool] | None = None) -> Loaded:
        """A published document other than the data kinds (``exportformat.PUBLISHED_KINDS``), the
        same way: verified, with archive fallback. JSON unless ``raw`` is given; then
        ``doc`` is ``{"kind", "data"}`` with the verified bytes, and ``raw`` tells whether an
        archive no manifest vouches for holds bytes of this kind."""
        if raw is None:
            return self._resolve(fmt.latest_key(kind), kind, self._parse, None)

        def keep(key: str, data: bytes) -> dict[str, Any] | None:
            if not raw(data):
                log_event("read_damaged", key=key, reason=f"not a {kind} document")
                return None
            return {"kind": kind, "data": data}

        return self._resolve(fmt.latest_key(kind), kind, keep, None)

    def _resolve(self, key: str, kind: str, parse: Parse, at: Pinned | None) -> Loaded:
        version, manifest = at or self._current()
        resolved_key = f"resolved:{kind}:{version}"
        resolved = self.cache.get(resolved_key)  # a damaged latest is not read again
        if resolved is not None:
            return resolved
        entry = manifest.documents.get(key) if manifest else None
        lookup = _Lookup()
        if manifest and entry:
            hit = self._verified(key, entry.sha256, gzipped=False, source="latest",
                                 lookup=lookup, parse=parse)  # fmt: skip
            if hit is not None:
                return self._loaded(hit.doc, hit.source, entry.sha256, manifest)
        resolved = self._fallback(key, kind, parse, manifest, lookup)
        if not lookup.unavailable:
            self.cache.put(resolved_key, resolved, 1)
        return resolved

    def _fallback(
        self, key: str, kind: str, parse: Parse, manifest: Manifest | None, lookup: _Lookup
    ) -> Loaded:
        """The newest trustworthy copy of ``kind`` when its latest document is not."""
        tried: set[str] = set()
        # Archives vouched for by a manifest: the current one's first, then older generations.
        candidates = [manifest] if manifest else []
        candidates += self._archived_manifests(lookup, FALLBACK_MANIFESTS + 1)
        for m in candidates:
            archive = m.archives.get(kind)
            entry = m.documents.get(key)
            if not archive or entry is None or archive in tried:
                continue
            tried.add(archive)
            hit = self._verified(
                archive, entry.sha256, gzipped=True, source="archive", lookup=lookup, parse=parse
            )
            if hit is not None:
                same = manifest is not None and m.generation == manifest.generation
                log_event("read_fallback", key=key, archive=archive,
                          reason="same generation" if same else "older generation")  # fmt: skip
                return self._loaded(hit.doc, "archive", entry.sha256, m)
        # No manifest vouches for any archive: the newest one that parses as this kind.
        for archive in self._archives_newest_first(lookup, kind):
            if archive in tried:
                continue
            doc = self._parsed_archive(archive, kind, lookup, parse)
            if doc is not None:
                log_event("read_fallback", key=key, archive=archive, reason="unverified archive")
                return self._loaded(doc, "archive", f"archive:{archive}")
        log_event("read_empty", key=key, reason="no valid copy")
        return Loaded.empty()

    def chain(self, ticker: str, at: Pinned | None = None) -> Loaded | None:
        """The ticker's chain document; None when the generation does not know the ticker."""
        return self._ticker_document("chains", ticker, at)

    def history(self, ticker: str, at: Pinned | None = None) -> Loaded | None:
        """The ticker's daily history document (the sessions before its chain's); None when
        the generation does not know the ticker."""
        return self._ticker_document("histories", ticker, at)

    def feature_set(self, ticker: str, at: Pinned | None = None) -> Loaded | None:
        """The ticker's latest features document; None when the generation has none for it."""
        return self._ticker_document("feature_sets", ticker, at)

    def _ticker_document(self, name: TickerKind, ticker: str, at: Pinned | None) -> Loaded | None:
        """A per-ticker document the manifest names under ``name`` (``chains``, ``histories``,
        ``feature_sets``), verified; an older generation's copy when it is damaged; empty when
        none is left."""
        version, manifest = at or self._current()
        if manifest is None:
            return None
        key = getattr(manifest, name).get(ticker)
        if key is None:
            return None
        resolved_key = f"resolved:{name}:{ticker}:{version}"
        resolved = self.cache.get(resolved_key)
        if resolved is not None:
            return resolved
        entry = manifest.documents.get(key)
        lookup = _Lookup()
        if entry is not None:
            hit = self._verified(key, entry.sha256, gzipped=False, source="latest", lookup=lookup)
            if hit is not None:
                return self._loaded(hit.doc, "latest", entry.sha256, manifest)
        resolved = self._ticker_fallback(name, ticker, key, lookup)
        if not lookup.unavailable:
            self.cache.put(resolved_key, resolved, 1)
        return resolved

    def _ticker_fallback(self, name: TickerKind, ticker: str, key: str, lookup: _Lookup) -> Loaded:
        for older in self._archived_manifests(lookup, FALLBACK_MANIFESTS + 1):
            old_key = getattr(older, name).get(ticker)
            old_entry = older.documents.get(old_key) if old_key else None
            if old_key is None or old_entry is None or old_key == key:
                continue
            hit = self._verified(
                old_key, old_entry.sha256, gzipped=False, source="archive", lookup=lookup
            )
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
        return Loaded(doc, source, generation, when, f"{source}:{generation}:{version}", version)

    def _verified(
        self,
        key: str,
        sha: str,
        *,
        gzipped: bool,
        source: Source,
        lookup: _Lookup,
        parse: Parse | None = None,
    ) -> _Doc | None:
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
        except _UNREADABLE as exc:
            lookup.unavailable |= _temporary(exc)
            log_event("read_damaged", key=key, reason=type(exc).__name__)
            return None
        if fmt.sha256(data) != sha:
            log_event("read_damaged", key=key, reason="sha256 mismatch", bytes=len(data))
            return None
        doc = (parse or self._parse)(key, data)
        if doc is None:
            return None
        hit = _Doc(doc, source)
        self.cache.put(sha, hit, len(data))
        return hit

    def _parsed_archive(
        self, key: str, kind: str, lookup: _Lookup, parse: Parse
    ) -> dict[str, Any] | None:
        cached = self.cache.get(f"archive:{key}")
        if cached is not None:
            return cached
        try:
            data = gzip.decompress(self.storage.get(key).data)
        except _UNREADABLE as exc:
            lookup.unavailable |= _temporary(exc)
            log_event("read_damaged", key=key, reason=type(exc).__name__)
            return None
        doc = parse(key, data)
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
        if doc.get("schema_version") != fmt.SCHEMA_VERSION:  # format 1: rows; built anew
            log_event("read_damaged", key=key, reason="schema version",
                      schema_version=doc.get("schema_version"))  # fmt: skip
            return None
        return _with_tuple_columns(doc)


def _with_tuple_columns(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with each array of its columnar table (``columns``) as a tuple.

    A cached document is read by every request and written by none, and its columns hold most
    of its values. The garbage collector visits every item of a list at each collection that
    examines it, while a tuple of numbers and strings it stops tracking at its first: so
    cached chains cost the collector almost nothing, instead of full collections that took tens
    of milliseconds once a few hundred chains were cached.
    """
    columns = doc.get("columns")
    if isinstance(columns, dict):
        for name, column in columns.items():
            if type(column) is list:
                columns[name] = tuple(column)
    return doc
