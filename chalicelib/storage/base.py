"""The storage port: where export documents (and later the DuckDB file) live.

One abstract class, two adapters (``local.py``, ``s3.py``), chosen in ``factory.py``. The public
methods here validate keys and arguments, then call the adapter's ``_``-prefixed hooks, so an
adapter only ever sees keys that passed ``validate_key`` (the pattern of Cosmic Python's
``AbstractRepository``).

Semantics every adapter keeps (the contract suite in ``tests/storage`` checks them):

- a write is atomic per key: a reader sees the old bytes or the new bytes, never a mix;
- ``version`` is an opaque string that changes whenever the bytes change (locally on every
  write; S3's ETag is a content hash, so rewriting identical bytes keeps it); pass it back as
  ``if_match``;
- ``if_none_match=True`` creates only; ``if_match=v`` replaces only while the version is ``v``
  (a missing key fails too). A lost race raises PreconditionFailed.
"""

from __future__ import annotations

import abc
import builtins
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

from chalicelib.logs import timed
from chalicelib.storage.keys import validate_key, validate_prefix


# Records are NamedTuples, not frozen dataclasses: the API creates them at every cold start, where
# a dataclass costs several times more (it compiles each of its methods).
class ObjectInfo(NamedTuple):
    """Metadata of one stored object."""

    key: str
    size: int
    version: str
    last_modified: datetime  # timezone-aware, UTC


class StoredObject(NamedTuple):
    """An object's bytes, read together with the version they belong to."""

    key: str
    data: bytes
    version: str
    content_encoding: str | None = None


class Storage(abc.ABC):
    """A flat namespace of keys (``a/b/c.json``) holding bytes."""

    backend: str  # "local" or "s3"
    write_concurrency: int = 8  # parallel writes in put_many
    head_is_cheap: bool = False  # a stat, not a request: ``sizes`` of known keys beats a listing
    # Threads worth writing ``put_deferred`` documents on: each is a request on S3; on local
    # disk (no fsync per document) a write costs less than handing it to a thread.
    deferred_writers: int = 8

    @property
    @abc.abstractmethod
    def location(self) -> str:
        """Human-readable root, for logs and the status document."""

    def get(self, key: str) -> StoredObject:
        """The object's bytes and version; raises ObjectNotFound."""
        return self._get(validate_key(key))

    def head(self, key: str) -> ObjectInfo | None:
        """The object's metadata, or None if it does not exist."""
        return self._head(validate_key(key))

    def put(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str = "application/json",
        content_encoding: str | None = None,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> ObjectInfo:
        """Write ``data`` atomically; conditional when ``if_match`` or ``if_none_match`` is set."""
        _check_conditions(if_match, if_none_match)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"data must be bytes, not {type(data).__name__}")
        return self._put(
            validate_key(key),
            bytes(data),
            content_type=content_type,
            content_encoding=content_encoding,
            if_match=if_match,
            if_none_match=if_none_match,
        )

    def sizes(self, keys: Iterable[str]) -> dict[str, int]:
        """The size of each of ``keys`` that exists (missing ones are left out)."""
        found = {}
        for key in keys:
            info = self.head(key)
            if info is not None:
                found[info.key] = info.size
        return found

    def list(self, prefix: str = "") -> builtins.list[ObjectInfo]:
        """Every object whose key starts with ``prefix``, sorted by key."""
        return sorted(self._list(validate_prefix(prefix)), key=lambda info: info.key)

    def delete(self, key: str) -> None:
        """Remove the object; a missing key is not an error."""
        self._delete(validate_key(key))

    def delete_many(self, keys: Iterable[str]) -> int:
        """Remove many objects; returns how many keys are now gone.

        Missing keys count as deleted: S3 cannot tell the two apart, so neither backend does.
        Every key is validated before anything is deleted.
        """
        unique = builtins.list(dict.fromkeys(validate_key(key) for key in keys))
        if not unique:
            return 0
        with timed("storage.delete_many", backend=self.backend, keys=len(unique)) as fields:
            fields["deleted"] = self._delete_many(unique)
        return fields["deleted"]

    def put_many(
        self, items: Iterable[tuple[str, bytes]], *, content_type: str = "application/json"
    ) -> builtins.list[ObjectInfo]:
        """Write many objects concurrently (each atomically, as ``put``); all or an exception.

        Latency, not bandwidth, bounds one writer of many small objects (an S3 PUT is ~10-50 ms),
        so writes overlap in ``write_concurrency`` threads. The first failure is re-raised after
        the writes already started have finished; objects written before it stay written.
        """
        batch = [(validate_key(key), bytes(data)) for key, data in items]
        if not batch:
            return []
        with timed("storage.put_many", backend=self.backend, keys=len(batch)) as fields:
            fields["bytes"] = sum(len(data) for _, data in batch)
            workers = min(self.write_concurrency, len(batch))
            if workers <= 1:
                return [self.put(key, data, content_type=content_type) for key, data in batch]
            from concurrent.futures import ThreadPoolExecutor  # a writer's batch: not at import

            with ThreadPoolExecutor(workers, thread_name_prefix="put") as pool:
                futures = [
                    pool.submit(self.put, key, data, content_type=content_type)
                    for key, data in batch
                ]
                return [future.result() for future in futures]

    def put_deferred(self, key: str, data: bytes) -> None:
        """Write an object at once (atomically, as ``put``) whose durability may wait for
        ``sync_deferred``: for immutable documents that only become reachable through a later
        write (the manifest), so one sync before that write replaces a sync per document.
        Where every write is durable on return (S3), this is ``put``. Thread-safe."""
        self.put(key, data)

    def sync_deferred(self) -> None:  # noqa: B027 - a hook only some adapters need
        """Make every ``put_deferred`` write so far durable (nothing to do where each write
        already is)."""

    def put_file(
        self,
        key: str,
        path: Path,
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> ObjectInfo:
        """Upload a (large, binary) file, streaming it; same atomicity as ``put``."""
        _check_conditions(if_match, if_none_match)
        key = validate_key(key)
        path = Path(path)
        with timed("storage.put_file", backend=self.backend, key=key) as fields:
            info = self._put_file(key, path, if_match=if_match, if_none_match=if_none_match)
            fields["bytes"] = info.size
        return info

    def get_file(self, key: str, path: Path) -> ObjectInfo:
        """Download to ``path``, streaming; ``path`` is replaced atomically, never left partial.

        Raises ObjectNotFound. The returned version belongs to the bytes written.
        """
        key = validate_key(key)
        path = Path(path)
        with timed("storage.get_file", backend=self.backend, key=key) as fields:
            info = self._get_file(key, path)
            fields["bytes"] = info.size
        return info

    def remove_stale_temporaries(self, older_than_seconds: float) -> int:
        """Remove what killed writers left half-written (local temp files) and is older than
        ``older_than_seconds``; returns how many. Nothing to do on backends without temps."""
        return 0

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.location}>"

    # Adapter hooks: keys and prefixes have been validated by the public methods above.

    @abc.abstractmethod
    def _get(self, key: str) -> StoredObject: ...

    @abc.abstractmethod
    def _head(self, key: str) -> ObjectInfo | None: ...

    @abc.abstractmethod
    def _put(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str,
        content_encoding: str | None,
        if_match: str | None,
        if_none_match: bool,
    ) -> ObjectInfo: ...

    @abc.abstractmethod
    def _list(self, prefix: str) -> Iterable[ObjectInfo]: ...

    @abc.abstractmethod
    def _delete(self, key: str) -> None: ...

    @abc.abstractmethod
    def _delete_many(self, keys: builtins.list[str]) -> int: ...

    @abc.abstractmethod
    def _put_file(
        self, key: str, path: Path, *, if_match: str | None, if_none_match: bool
    ) -> ObjectInfo: ...

    @abc.abstractmethod
    def _get_file(self, key: str, path: Path) -> ObjectInfo: ...


def _check_conditions(if_match: str | None, if_none_match: bool) -> None:
    if if_match is not None and if_none_match:
        raise ValueError("pass if_match or if_none_match, not both")
    if if_match is not None and not if_match:
        raise ValueError("if_match must be a version returned by head/get/put")
