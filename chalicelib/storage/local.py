"""Local-disk adapter: objects are files under one root directory.

Every write goes to a temp file in the target's own directory (flushed and fsynced) and is then
published with ``os.replace``, which is atomic: a reader sees the old file or the new one, never
a partial one. Check-then-replace for conditional writes, and deletes, run under an exclusive
``flock`` on ``<root>/.lock``, so two processes (or threads) cannot both win a race.

The version is ``f"{mtime_ns}-{size}"``. Under the lock each write sets its file's mtime to
strictly after the file it replaces, so the version changes on every write even when two writes
land within one kernel clock tick with the same size (this relies on nanosecond timestamps, as on
ext4, xfs, btrfs, tmpfs and APFS).

``put_deferred`` is the bulk path for immutable, content-addressed documents: no lock, no fsync
per file (the directory of each key is resolved and created once per batch), a new key written
in place (``O_EXCL``: one metadata operation, where a temp file and a rename take two; an
existing key is still replaced through a temp file, so a reader never sees it partial), and
``sync_deferred`` makes the whole batch durable with one ``syncfs(2)`` of the filesystem (or,
where that call is missing, an fsync per file and directory). They are written before any
manifest names them, so a reader never opens one being written; a crash can leave one lost or
truncated, but never named (the manifest is written after the sync): the next export writing
the same bytes replaces it, and retention removes what no manifest names. The version rule
above does not hold for them: their bytes never change under one key.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, TypeVar

from chalicelib.errors import InvalidKey, ObjectNotFound, PreconditionFailed
from chalicelib.logs import timed
from chalicelib.storage.base import ObjectInfo, Storage, StoredObject
from chalicelib.storage.keys import LOCK_NAME, TEMP_PREFIX, is_valid_key, validate_key

_CHUNK = 1 << 20
_FILE_MODE = 0o644  # mkstemp creates 0600; published files are meant to be read by others
_MISSING = (FileNotFoundError, NotADirectoryError, IsADirectoryError)
_T = TypeVar("_T")


class LocalStorage(Storage):
    """Objects as files under ``root`` (created on first write)."""

    backend = "local"
    head_is_cheap = True
    deferred_writers = 1  # measured at full size: 4.6 s export on 1, 6.0 s on 3, 6.4-7.3 s on 8

    def __init__(self, root: Path) -> None:
        self._root = Path(root).resolve()
        self._deferred_lock = threading.Lock()
        self._deferred_dirs: dict[str, Path] = {}  # a key's directory: resolved and created
        self._deferred_files: builtins.list[str] = []

    @property
    def root(self) -> Path:
        return self._root

    @property
    def location(self) -> str:
        return str(self._root)

    def _get(self, key: str) -> StoredObject:
        try:
            with open(self._path(key), "rb") as f:
                # fstat and read the same open file: version and bytes belong together even if
                # a writer replaces the path meanwhile.
                st = os.fstat(f.fileno())
                if not stat.S_ISREG(st.st_mode):
                    raise ObjectNotFound(f"{key} not found in {self.location}")
                data = f.read()
        except _MISSING:
            raise ObjectNotFound(f"{key} not found in {self.location}") from None
        return StoredObject(key, data, _version(st), _encoding_for(key))

    def _head(self, key: str) -> ObjectInfo | None:
        st = _stat(self._path(key))
        return None if st is None else _info(key, st)

    def _put(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str,
        content_encoding: str | None,
        if_match: str | None,
        if_none_match: bool,
    ) -> ObjectInfo:
        # Files carry no metadata: the encoding is read back from the key, so it must agree.
        if content_encoding != _encoding_for(key):
            raise ValueError(
                f"local storage infers Content-Encoding from the key ('.gz' means gzip); "
                f"{key!r} cannot be stored with content_encoding={content_encoding!r}"
            )
        path = self._write_path(key)
        tmp = self._temp_for(key, path, lambda dst: dst.write(data))
        return self._publish(key, tmp, path, if_match=if_match, if_none_match=if_none_match)

    def sizes(self, keys: Iterable[str]) -> dict[str, int]:
        # An lstat per directory (cached) and per key, on plain strings: pathlib's resolve per
        # key costs ten times more. A symlink, to a file or on the way, is left out (as head
        # leaves a key that resolves outside the root).
        found: dict[str, int] = {}
        plain_dirs: dict[str, bool] = {"": True}  # relative directory: a real one, no link

        def plain(directory: str) -> bool:
            if directory not in plain_dirs:
                parent = directory.rpartition("/")[0]
                try:
                    st = os.lstat(f"{self._root}/{directory}")
                    plain_dirs[directory] = plain(parent) and stat.S_ISDIR(st.st_mode)
                except OSError:
                    plain_dirs[directory] = False
            return plain_dirs[directory]

        for key in keys:
            if not plain(validate_key(key).rpartition("/")[0]):
                continue
            try:
                st = os.lstat(f"{self._root}/{key}")
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                found[key] = st.st_size
        return found

    def put_deferred(self, key: str, data: bytes) -> None:
        key = validate_key(key)
        if _encoding_for(key) is not None:
            raise ValueError(f"{key!r}: deferred writes store plain documents, not '.gz' keys")
        head, _, name = key.rpartition("/")
        directory = self._deferred_dirs.get(head)
        if directory is None:
            directory = self._write_path(key).parent
            self._make_dir(key, directory)
            with self._deferred_lock:
                self._deferred_dirs[head] = directory
        target = f"{directory}/{name}"  # a string: thousands of these, pathlib costs per call
        try:
            created = _create_with(target, data)
        except FileNotFoundError:  # pruned since it was made (a delete emptied it)
            created = self._in_directory(key, directory, lambda: _create_with(target, data))
        if not created:  # the key exists: replaced whole, never rewritten
            tmp = _write_temp(directory, lambda dst: dst.write(data), sync=False)
            try:
                os.replace(tmp, target)
            except BaseException as exc:
                tmp.unlink(missing_ok=True)
                if isinstance(exc, IsADirectoryError):
                    raise InvalidKey(f"storage key {key!r} names a directory") from None
                raise
        with self._deferred_lock:
            self._deferred_files.append(target)

    def sync_deferred(self) -> None:
        with self._deferred_lock:
            files, self._deferred_files = self._deferred_files, []
            dirs, self._deferred_dirs = set(self._deferred_dirs.values()), {}
        if not files:
            return
        with timed("storage.sync_deferred", backend=self.backend, files=len(files)):
            if _syncfs(self._root):
                return
            for path in files:
                with contextlib.suppress(*_MISSING):
                    fd = os.open(path, os.O_RDONLY)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
            for directory in dirs:
                _fsync_dir(directory)

    def _list(self, prefix: str) -> Iterable[ObjectInfo]:
        base = prefix.rpartition("/")[0]
        start = self._path(base) if base else self._root
        rel = start.relative_to(self._root).as_posix()
        yield from _scan(str(start), "" if rel == "." else f"{rel}/", prefix)

    def _delete(self, key: str) -> None:
        self._delete_many([key])

    def _delete_many(self, keys: builtins.list[str]) -> int:
        paths = [self._path(key) for key in keys]
        with self._locked():
            for path in paths:
                with contextlib.suppress(*_MISSING):
                    path.unlink()
            self._prune({path.parent for path in paths})
        return len(paths)

    def _prune(self, directories: Iterable[Path]) -> None:
        """Remove the directories a delete left empty, and their parents left empty by that
        (up to the root), as a prefix with no object in it does not exist on S3 either. A
        write that finds its directory gone this way makes it again (``_in_directory``)."""
        for directory in sorted(directories, key=lambda d: len(d.parts), reverse=True):
            while directory != self._root and directory.is_relative_to(self._root):
                try:
                    directory.rmdir()
                except OSError:  # not empty (or already gone, or not ours to remove): stop
                    break
                directory = directory.parent

    def _put_file(
        self, key: str, path: Path, *, if_match: str | None, if_none_match: bool
    ) -> ObjectInfo:
        import shutil  # here and below: the writer's, not imported with the API

        target = self._write_path(key)
        with open(path, "rb") as src:
            tmp = self._temp_for(key, target, lambda dst: shutil.copyfileobj(src, dst, _CHUNK))
        return self._publish(key, tmp, target, if_match=if_match, if_none_match=if_none_match)

    def _get_file(self, key: str, path: Path) -> ObjectInfo:
        import shutil

        try:
            src = open(self._path(key), "rb")  # noqa: SIM115 - closed by the with below
        except _MISSING:
            raise ObjectNotFound(f"{key} not found in {self.location}") from None
        with src:
            st = os.fstat(src.fileno())
            write_file_atomically(path, lambda dst: shutil.copyfileobj(src, dst, _CHUNK))
        return _info(key, st)

    def remove_stale_temporaries(self, older_than_seconds: float) -> int:
        """``.tmp-*`` files under the root older than the cutoff: a killed writer's, since a
        live one renames or removes its temp file within the write."""
        if not self._root.is_dir():
            return 0
        cutoff = time.time() - older_than_seconds
        removed = 0
        for dirpath, _dirnames, filenames in os.walk(self._root):
            for name in filenames:
                if not name.startswith(TEMP_PREFIX):
                    continue
                path = Path(dirpath, name)
                with contextlib.suppress(OSError):
                    if path.lstat().st_mtime < cutoff:
                        path.unlink()
                        removed += 1
        return removed

    def _path(self, key: str) -> Path:
        """The file for ``key``; refuses anything that resolves outside the root (symlinks)."""
        path = (self._root / key).resolve()
        if path == self._root or not path.is_relative_to(self._root):
            raise InvalidKey(f"storage key {key!r} resolves outside {self._root}")
        return path

    def _write_path(self, key: str) -> Path:
        """Where a write of ``key`` lands: its directory resolved (one outside the root is
        refused), its name not, so a symlink there is replaced by the file, never followed."""
        name = key.rpartition("/")[2]
        parent = (self._root / key).parent.resolve()
        if parent != self._root and not parent.is_relative_to(self._root):
            raise InvalidKey(f"storage key {key!r} resolves outside {self._root}")
        return parent / name

    def _temp_for(self, key: str, target: Path, fill: Callable[[BinaryIO], object]) -> Path:
        return self._in_directory(key, target.parent, lambda: _write_temp(target.parent, fill))

    def _in_directory(self, key: str, directory: Path, create: Callable[[], _T]) -> _T:
        """``create()`` a file in ``directory``, made first; once more if a delete pruned the
        directory between the two (``_prune``: it was empty)."""
        self._make_dir(key, directory)
        try:
            return create()
        except FileNotFoundError:
            self._make_dir(key, directory)
            return create()

    def _make_dir(self, key: str, directory: Path) -> None:
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise InvalidKey(
                f"storage key {key!r} needs a directory where {self.location} holds a file"
            ) from None

    def _publish(
        self, key: str, tmp: Path, target: Path, *, if_match: str | None, if_none_match: bool
    ) -> ObjectInfo:
        """Check the precondition and replace ``target`` with ``tmp``, under the root lock."""
        try:
            with self._locked():
                current = _stat(target)
                if if_none_match and current is not None:
                    raise PreconditionFailed(f"{key} already exists (version {_version(current)})")
                if if_match is not None:
                    if current is None:
                        raise PreconditionFailed(f"{key} does not exist; expected {if_match}")
                    if _version(current) != if_match:
                        raise PreconditionFailed(
                            f"{key} is at version {_version(current)}, not {if_match}"
                        )
                now = time.time_ns()
                mtime = now if current is None else max(now, current.st_mtime_ns + 1)
                os.utime(tmp, ns=(mtime, mtime))
                st = os.stat(tmp)
                try:
                    os.replace(tmp, target)
                except IsADirectoryError:
                    raise InvalidKey(f"storage key {key!r} names a directory") from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(target.parent)
        return _info(key, st)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self._root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._root / LOCK_NAME, os.O_RDWR | os.O_CREAT, _FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # flock per open file: threads exclude each other too
            yield
        finally:
            os.close(fd)


def write_file_atomically(path: Path, fill: Callable[[BinaryIO], object]) -> None:
    """Write ``path`` through a temp file + ``os.replace``: never seen partial by a reader."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _write_temp(path.parent, fill)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _write_temp(directory: Path, fill: Callable[[BinaryIO], object], sync: bool = True) -> Path:
    """A fully written (and, if ``sync``, fsynced) temp file in ``directory`` (same filesystem
    as the target)."""
    import tempfile

    fd, name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=directory)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as dst:
            os.fchmod(dst.fileno(), _FILE_MODE)
            fill(dst)
            if sync:
                dst.flush()
                os.fsync(dst.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable. Best effort: some filesystems refuse fsync on a directory.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _create_with(path: str, data: bytes) -> bool:
    """Create ``path`` holding ``data`` (in place: one metadata operation, no temp file and
    rename); False if it exists. A failed write removes what it created."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, _FILE_MODE)
    except FileExistsError:
        return False
    try:
        view = memoryview(data)
        while view:  # os.write may write less than asked (a signal, a full pipe)
            view = view[os.write(fd, view) :]
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    os.close(fd)
    return True


def _syncfs(path: Path) -> bool:
    """Write back the whole filesystem holding ``path`` (Linux ``syncfs(2)``: every dirty file
    and directory of it, then one journal commit); False where the call does not exist."""
    import ctypes  # here, not at import: the read side never syncs

    libc = ctypes.CDLL(None, use_errno=True)  # the process's own symbols, libc's among them
    if not hasattr(libc, "syncfs"):
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.syncfs(fd) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"syncfs {path}: {os.strerror(errno)}")
    finally:
        os.close(fd)
    return True


def _scan(directory: str, rel: str, prefix: str) -> Iterator[ObjectInfo]:
    """Regular files under ``directory`` (key prefix ``rel``) whose keys start with
    ``prefix``, walking only directories that can hold such keys; symlinks are not followed
    (os.scandir: one system call per file, no path objects — a listing of thousands of
    documents is part of every export)."""
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        key = rel + entry.name
        try:
            if entry.is_dir(follow_symlinks=False):
                if _may_match(f"{key}/", prefix):
                    yield from _scan(entry.path, f"{key}/", prefix)
                continue
            # Invalid names include the lock file, temp files and anything not written here.
            if not key.startswith(prefix) or not is_valid_key(key):
                continue
            st = entry.stat(follow_symlinks=False)
        except _MISSING:
            continue
        if stat.S_ISREG(st.st_mode):
            yield _info(key, st)


def _stat(path: Path) -> os.stat_result | None:
    """stat of a regular file, or None (missing, a directory, a symlink, ...)."""
    try:
        st = path.stat(follow_symlinks=False)
    except _MISSING:
        return None
    return st if stat.S_ISREG(st.st_mode) else None


def _info(key: str, st: os.stat_result) -> ObjectInfo:
    modified = datetime.fromtimestamp(st.st_mtime_ns / 1e9, UTC)
    return ObjectInfo(key=key, size=st.st_size, version=_version(st), last_modified=modified)


def _version(st: os.stat_result) -> str:
    return f"{st.st_mtime_ns}-{st.st_size}"


def _encoding_for(key: str) -> str | None:
    return "gzip" if key.endswith(".gz") else None


def _may_match(directory: str, prefix: str) -> bool:
    return directory.startswith(prefix) or prefix.startswith(directory)
