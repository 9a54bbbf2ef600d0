"""The storage contract: the same tests against LocalStorage and S3Storage (moto)."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.config import load_settings
from chalicelib.errors import InvalidKey, ObjectNotFound, PreconditionFailed
from chalicelib.storage import (
    LocalStorage,
    S3Storage,
    Storage,
    make_storage,
    validate_key,
    validate_prefix,
)
from chalicelib.storage.keys import MAX_KEY_LENGTH

BAD_KEYS = [
    "../x",
    "/abs",
    "a/../b",
    "a//b",
    "a\\b",
    "a\x00b",
    "",
    "a b",
    "x" * (MAX_KEY_LENGTH + 1),
    "a/./b",
    "a/",
    "a\nb",
    "café.json",
    ".lock",
    "a/.tmp-123",
]
BAD_PREFIXES = [k for k in BAD_KEYS if k not in ("", "a/", ".lock")]  # fine as prefixes


def count_calls(storage: Storage, operation: str) -> list[int]:
    """A one-element counter of S3 API calls named ``operation``; stays at 0 when local."""
    calls = [0]
    if isinstance(storage, S3Storage):

        def hook(**_: object) -> None:
            calls[0] += 1

        storage.client.meta.events.register(f"before-call.s3.{operation}", hook)
    return calls


# --- round trip, head, get ---------------------------------------------------------------


def test_put_get_round_trip(storage: Storage) -> None:
    data = bytes(range(256)) * 3  # not UTF-8: bytes are bytes
    info = storage.put("chains/SPY.json", data)

    got = storage.get("chains/SPY.json")
    assert got.key == "chains/SPY.json"
    assert got.data == data
    assert got.version == info.version
    assert got.content_encoding is None
    assert info.size == len(data)
    assert abs(info.last_modified - datetime.now(UTC)) < timedelta(minutes=1)
    head = storage.head("chains/SPY.json")
    assert head is not None
    assert (head.size, head.version) == (len(data), info.version)
    assert [i.version for i in storage.list("chains/")] == [info.version]


def test_head_version_changes_on_overwrite(storage: Storage) -> None:
    first = storage.put("doc.json", b'{"v": 1}')
    second = storage.put("doc.json", b'{"v": 2}')  # same size, written at once

    head = storage.head("doc.json")
    assert head is not None
    assert head.size == 8
    assert head.version == second.version != first.version
    assert head.last_modified.tzinfo is not None


def test_missing_key(storage: Storage) -> None:
    with pytest.raises(ObjectNotFound):
        storage.get("nope.json")
    assert storage.head("nope.json") is None


def test_empty_object(storage: Storage) -> None:
    storage.put("empty.json", b"")
    assert storage.get("empty.json").data == b""
    assert [i.size for i in storage.list()] == [0]


# --- list ---------------------------------------------------------------------------------


def test_list_by_prefix_sorted(storage: Storage, raw_keys: Callable[[], set[str]]) -> None:
    for key in ["a/2.json", "b/y.json", "a/10.json", "ab/x.json", "a.json", "a/1.json"]:
        storage.put(key, key.encode())

    assert [i.key for i in storage.list("a/")] == ["a/1.json", "a/10.json", "a/2.json"]
    assert [i.key for i in storage.list("a")] == [
        "a.json",
        "a/1.json",
        "a/10.json",
        "a/2.json",
        "ab/x.json",
    ]
    assert [i.key for i in storage.list()][-1] == "b/y.json"
    assert len(storage.list("")) == 6
    assert storage.list("zzz/") == []
    assert {i.key: i.size for i in storage.list("b")} == {"b/y.json": 8}
    if isinstance(storage, S3Storage):  # keys live under the adapter's prefix in the bucket
        assert "exports/a/1.json" in raw_keys()


def test_list_ignores_objects_outside_its_root(storage: Storage, tmp_path: Path) -> None:
    storage.put("mine.json", b"{}")
    if isinstance(storage, S3Storage):
        bucket, prefix = storage.bucket, storage.prefix
        storage.client.put_object(Bucket=bucket, Key="other/theirs.json", Body=b"{}")
        storage.client.put_object(Bucket=bucket, Key=f"{prefix}bad name.json", Body=b"{}")
    else:
        (tmp_path / "theirs.json").write_bytes(b"{}")
        (tmp_path / "exports" / "bad name.json").write_bytes(b"{}")
        (tmp_path / "exports" / ".tmp-leftover").write_bytes(b"{")
    assert [i.key for i in storage.list()] == ["mine.json"]


def test_list_paginates(storage: Storage) -> None:
    keys = [f"p/{n:03d}.json" for n in range(10)]
    for key in reversed(keys):
        storage.put(key, b"{}")
    if isinstance(storage, S3Storage):
        storage = S3Storage(storage.bucket, storage.prefix, page_size=3)
    pages = count_calls(storage, "ListObjectsV2")

    assert [i.key for i in storage.list("p/")] == keys
    if isinstance(storage, S3Storage):
        assert pages[0] == 4  # 3 + 3 + 3 + 1


# --- delete -------------------------------------------------------------------------------


def test_delete(storage: Storage) -> None:
    storage.put("gone.json", b"{}")
    storage.put("kept.json", b"{}")

    storage.delete("gone.json")
    storage.delete("gone.json")  # missing is fine
    storage.delete("never/was.json")

    assert storage.head("gone.json") is None
    assert [i.key for i in storage.list()] == ["kept.json"]


def test_delete_many_in_batches_of_1000(storage: Storage) -> None:
    real = [f"archive/{n}.json" for n in range(5)]
    for key in real:
        storage.put(key, b"{}")
    storage.put("kept.json", b"{}")
    # Missing keys cost nothing to create and S3 deletes them happily.
    keys = real + [f"archive/missing-{n}.json" for n in range(2495)]
    requests = count_calls(storage, "DeleteObjects")

    assert storage.delete_many(keys) == 2500
    assert [i.key for i in storage.list()] == ["kept.json"]
    if isinstance(storage, S3Storage):
        assert requests[0] == 3
    assert storage.delete_many([]) == 0
    assert storage.delete_many(["kept.json", "kept.json"]) == 1


def test_delete_many_validates_every_key_first(storage: Storage) -> None:
    storage.put("a.json", b"{}")
    with pytest.raises(InvalidKey):
        storage.delete_many(["a.json", "../b.json"])
    assert storage.head("a.json") is not None


# --- conditional writes -------------------------------------------------------------------


def test_if_none_match_creates_only(storage: Storage) -> None:
    created = storage.put("lease.json", b'{"holder": 1}', if_none_match=True)
    with pytest.raises(PreconditionFailed):
        storage.put("lease.json", b'{"holder": 2}', if_none_match=True)
    got = storage.get("lease.json")
    assert (got.data, got.version) == (b'{"holder": 1}', created.version)


def test_if_match_stale_version_fails(storage: Storage) -> None:
    stale = storage.put("manifest.json", b'{"n": 1}').version
    storage.put("manifest.json", b'{"n": 2}')
    with pytest.raises(PreconditionFailed):
        storage.put("manifest.json", b'{"n": 3}', if_match=stale)
    assert storage.get("manifest.json").data == b'{"n": 2}'


def test_if_match_missing_key_fails(storage: Storage, raw_keys: Callable[[], set[str]]) -> None:
    with pytest.raises(PreconditionFailed):
        storage.put("manifest.json", b"{}", if_match="0-0")
    assert storage.head("manifest.json") is None
    assert not any(".tmp-" in key for key in raw_keys())


def test_if_match_current_version_succeeds(storage: Storage) -> None:
    storage.put("manifest.json", b'{"n": 1}')
    current = storage.head("manifest.json")
    assert current is not None

    updated = storage.put("manifest.json", b'{"n": 2}', if_match=current.version)

    assert updated.version != current.version
    got = storage.get("manifest.json")
    assert (got.data, got.version) == (b'{"n": 2}', updated.version)
    # The version returned by put is good for the next conditional write.
    storage.put("manifest.json", b'{"n": 3}', if_match=updated.version)


def test_conditions_are_exclusive(storage: Storage) -> None:
    with pytest.raises(ValueError, match="not both"):
        storage.put("x.json", b"{}", if_match="v", if_none_match=True)


# --- files --------------------------------------------------------------------------------


def test_put_file_get_file_round_trip(storage: Storage, tmp_path: Path) -> None:
    source = tmp_path / "in" / "ocd.duckdb"
    source.parent.mkdir()
    payload = os.urandom(3 * 1024 * 1024 + 17)
    source.write_bytes(payload)

    put = storage.put_file("db/ocd.duckdb", source)
    target = tmp_path / "out" / "restored.duckdb"
    got = storage.get_file("db/ocd.duckdb", target)

    assert target.read_bytes() == payload
    assert put.size == got.size == len(payload)
    assert put.version == got.version
    head = storage.head("db/ocd.duckdb")
    assert head is not None and head.version == put.version
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".tmp-")]

    with pytest.raises(PreconditionFailed):
        storage.put_file("db/ocd.duckdb", source, if_none_match=True)
    storage.put_file("db/ocd.duckdb", source, if_match=put.version)


def test_get_file_missing_leaves_target_alone(storage: Storage, tmp_path: Path) -> None:
    target = tmp_path / "keep.duckdb"
    target.write_bytes(b"old")
    with pytest.raises(ObjectNotFound):
        storage.get_file("db/none.duckdb", target)
    assert target.read_bytes() == b"old"


# --- content encoding ---------------------------------------------------------------------


def test_gzip_document(storage: Storage) -> None:
    raw = json.dumps({"rows": list(range(1000))}).encode()
    packed = gzip.compress(raw)

    storage.put("chains/SPY.json.gz", packed, content_encoding="gzip")
    got = storage.get("chains/SPY.json.gz")

    assert got.content_encoding == "gzip"
    assert got.data == packed  # stored and returned compressed; the reader decompresses
    assert json.loads(gzip.decompress(got.data)) == {"rows": list(range(1000))}
    if isinstance(storage, S3Storage):
        head = storage.client.head_object(
            Bucket=storage.bucket, Key=f"{storage.prefix}chains/SPY.json.gz"
        )
        assert head["ContentEncoding"] == "gzip"
        assert head["ContentType"] == "application/json"


def test_local_encoding_must_match_key(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    with pytest.raises(ValueError, match="infers Content-Encoding"):
        storage.put("doc.json", b"x", content_encoding="gzip")
    with pytest.raises(ValueError, match="infers Content-Encoding"):
        storage.put("doc.json.gz", b"x")


# --- key validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "key", BAD_KEYS, ids=lambda k: repr(k) if len(k) < 40 else f"<{len(k)} chars>"
)
def test_bad_keys_rejected_everywhere(
    storage: Storage, key: str, tmp_path: Path, raw_keys: Callable[[], set[str]]
) -> None:
    source = tmp_path / "src.bin"
    source.write_bytes(b"x")
    before = raw_keys()
    attempts: list[Callable[[], object]] = [
        lambda: storage.put(key, b"{}"),
        lambda: storage.put(key, b"{}", if_none_match=True),
        lambda: storage.get(key),
        lambda: storage.head(key),
        lambda: storage.delete(key),
        lambda: storage.delete_many([key]),
        lambda: storage.put_file(key, source),
        lambda: storage.put_deferred(key, b"{}"),
        lambda: storage.get_file(key, tmp_path / "dst.bin"),
    ]
    for attempt in attempts:
        with pytest.raises(InvalidKey):
            attempt()
    if key in BAD_PREFIXES:
        with pytest.raises(InvalidKey):
            storage.list(key)

    assert raw_keys() == before
    assert not (tmp_path / "x").exists() and not (tmp_path / "b").exists()
    assert not Path("/abs").exists()


def test_symlink_out_of_root_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "exports"
    root.mkdir()
    (root / "link").symlink_to(outside)
    storage = LocalStorage(root)

    with pytest.raises(InvalidKey, match="outside"):
        storage.put("link/x.json", b"{}")
    with pytest.raises(InvalidKey, match="outside"):
        storage.put_deferred("link/x.json", b"{}")
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize(
    "key",
    ["a", "chains/SPY/2026-05-01.json.gz", "date=2026-05-01/part-0.json", "a.b/.c_d-e", "k" * 512],
    ids=lambda k: k if len(k) < 40 else f"<{len(k)} chars>",
)
def test_good_keys(key: str) -> None:
    assert validate_key(key) == key


@pytest.mark.parametrize("prefix", ["", "chains/", "chains/SP", "date=2026-05-01/"])
def test_good_prefixes(prefix: str) -> None:
    assert validate_prefix(prefix) == prefix


@settings(database=None)  # no .hypothesis/ example database in the working tree
@given(st.text(alphabet=st.sampled_from("ab./=\\-_\x00 "), max_size=12))
def test_accepted_keys_stay_relative_and_normal(key: str) -> None:
    try:
        validate_key(key)
    except InvalidKey:
        return
    assert os.path.normpath(key) == key
    # Relative, and never climbing: no segment is "..", though one may begin with dots ("..=").
    assert not os.path.isabs(key) and ".." not in key.split("/")


# --- atomicity under concurrent readers ---------------------------------------------------


_ROWS = [f"[{i},{100 + i / 8},0.25,{i * 7}]" for i in range(8400)]


def _document(seq: int) -> bytes:
    """~200 KB of JSON that carries its own length and digest, so a torn read shows."""
    body = "[" + ",".join([f'{{"seq":{seq}}}', *_ROWS[: 8000 + seq]]) + "]"
    digest = hashlib.sha256(body.encode()).hexdigest()
    return json.dumps({"seq": seq, "length": len(body), "sha256": digest, "body": body}).encode()


def test_overwrite_is_atomic_for_concurrent_readers(storage: Storage) -> None:
    key = "chains/latest.json"
    if isinstance(storage, S3Storage):
        # moto frees an overwritten object's buffer even while a GET is still reading it (real
        # S3 keeps serving the old object); with versioning on, moto keeps old versions alive.
        storage.client.put_bucket_versioning(
            Bucket=storage.bucket, VersioningConfiguration={"Status": "Enabled"}
        )
    storage.put(key, _document(0))
    writing = threading.Event()
    writing.set()
    reads = [0, 0]
    seen: list[set[int]] = [set(), set()]
    failures: list[str] = []

    def reader(slot: int) -> None:
        while writing.is_set():
            try:
                envelope = json.loads(storage.get(key).data)
                body = envelope["body"]
                assert len(body) == envelope["length"]
                assert hashlib.sha256(body.encode()).hexdigest() == envelope["sha256"]
                assert body.startswith(f'[{{"seq":{envelope["seq"]}}}')
                seen[slot].add(envelope["seq"])
            except Exception as exc:  # any failure here is a torn or missing document
                failures.append(f"{type(exc).__name__}: {exc}"[:200])
            reads[slot] += 1

    threads = [threading.Thread(target=reader, args=(slot,)) for slot in range(2)]
    for thread in threads:
        thread.start()
    try:
        for seq in range(1, 301):
            storage.put(key, _document(seq))
            # Pace the writer so every overwrite races several reads, however fast the machine.
            while sum(reads) < 4 * seq and all(thread.is_alive() for thread in threads):
                time.sleep(0.0005)
    finally:
        writing.clear()
        for thread in threads:
            thread.join()

    assert failures == []
    assert sum(reads) >= 1000, reads
    assert len(seen[0] | seen[1]) > 50  # the readers really raced the writer
    assert json.loads(storage.get(key).data)["seq"] == 300


# --- factory and client laziness ----------------------------------------------------------


def test_make_storage_local(tmp_path: Path) -> None:
    settings = load_settings({"OCD_STORAGE": "local", "OCD_EXPORT_DIR": str(tmp_path / "ex")})
    storage = make_storage(settings)
    assert isinstance(storage, LocalStorage)
    assert storage.backend == "local"
    assert storage.root == (tmp_path / "ex").resolve()
    assert not (tmp_path / "ex").exists()  # nothing is created before the first write


def test_make_storage_s3(aws_env: None) -> None:
    settings = load_settings({"OCD_STORAGE": "s3", "OCD_BUCKET": "b1", "OCD_PREFIX": "/x/y"})
    storage = make_storage(settings)
    assert isinstance(storage, S3Storage)
    assert storage.backend == "s3"
    assert storage.location == "s3://b1/x/y/"
    assert storage._client is None


def test_s3_client_is_created_on_first_use(s3_bucket: str) -> None:
    storage = S3Storage(s3_bucket, "exports")
    assert storage._client is None
    assert storage.prefix == "exports/"
    storage.head("x.json")
    assert storage._client is not None
    assert storage.client is storage._client
    assert storage.client.meta.region_name == "us-east-1"


def test_s3_endpoint_from_environment(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # boto3 reads AWS_ENDPOINT_URL_S3 itself; the adapter needs no endpoint setting of its own.
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:5999")
    assert S3Storage("b1").client.meta.endpoint_url == "http://127.0.0.1:5999"


def _race(storage: Storage, key: str, base: str | None, contenders: int = 8) -> list[int]:
    """Contenders write ``key`` at once, conditionally on ``base`` (None: create-only)."""
    start = threading.Barrier(contenders)
    winners: list[int] = []

    def contend(n: int) -> None:
        document = f'{{"holder": {n}}}'.encode()
        start.wait()
        with contextlib.suppress(PreconditionFailed):
            if base is None:
                storage.put(key, document, if_none_match=True)
            else:
                storage.put(key, document, if_match=base)
            winners.append(n)

    threads = [threading.Thread(target=contend, args=(n,)) for n in range(1, contenders + 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return winners


@pytest.mark.parametrize("mode", ["if_match", "if_none_match"])
def test_racing_local_conditional_writers_have_one_winner(tmp_path: Path, mode: str) -> None:
    # Local only: moto checks a condition and stores the object without a lock, so racing
    # writers can both win against moto (real S3 serialises them: 412 or 409 for the losers).
    storage = LocalStorage(tmp_path)
    for round_ in range(5):  # without the lock, a lost update shows in about one round in three
        key = f"lease-{round_}.json"
        base = storage.put(key, b'{"holder": 0}').version if mode == "if_match" else None
        winners = _race(storage, key, base)
        assert len(winners) == 1, winners
        assert storage.get(key).data == f'{{"holder": {winners[0]}}}'.encode()


def test_put_many_writes_every_object(storage):
    items = [(f"many/{i:03d}.json", f'{{"i": {i}}}'.encode()) for i in range(40)]
    infos = storage.put_many(items)
    assert [info.key for info in infos] == [key for key, _ in items]
    assert [storage.get(key).data for key, _ in items] == [data for _, data in items]


def test_put_many_validates_every_key_before_writing(storage):
    from chalicelib.errors import InvalidKey

    with pytest.raises(InvalidKey):
        storage.put_many([("ok/a.json", b"{}"), ("../escape.json", b"{}")])
    assert storage.head("ok/a.json") is None


def test_put_deferred_from_threads_then_sync(
    storage: Storage, raw_keys: Callable[[], set[str]]
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    items = {f"chains/T{i % 7}/{i:03d}.json": f'{{"i": {i}}}'.encode() for i in range(60)}
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda kv: storage.put_deferred(*kv), items.items()))
    storage.sync_deferred()
    storage.sync_deferred()  # nothing pending: a no-op
    assert {key: storage.get(key).data for key in items} == items
    assert raw_keys() == {f"exports/{key}" for key in items}  # no temp file beside them


def test_put_deferred_refuses_gzip_keys_and_directories(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    with pytest.raises(ValueError, match=r"'\.gz'"):
        storage.put_deferred("doc.json.gz", b"x")
    storage.put("a/b/c.json", b"{}")
    with pytest.raises(InvalidKey, match="directory"):
        storage.put_deferred("a/b", b"{}")
    with pytest.raises(InvalidKey, match="holds a file"):
        storage.put_deferred("a/b/c.json/d.json", b"{}")
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".tmp-")]


def test_sync_deferred_without_syncfs_fsyncs_every_file_and_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from chalicelib.storage import local

    storage = LocalStorage(tmp_path)
    keys = ["d/A/1.json", "d/A/2.json", "d/B/3.json"]
    for key in keys:
        storage.put_deferred(key, b"{}")
    synced: list[str] = []
    real_fsync, real_open = os.fsync, os.open
    opened: dict[int, str] = {}

    def tracking_open(path: object, flags: int, *args: object) -> int:
        fd = real_open(path, flags, *args)  # type: ignore[arg-type]
        opened[fd] = os.fspath(path)  # type: ignore[arg-type]
        return fd

    def tracking_fsync(fd: int) -> None:
        synced.append(opened.get(fd, "?"))
        real_fsync(fd)

    monkeypatch.setattr(local, "_syncfs", lambda path: False)
    monkeypatch.setattr(os, "open", tracking_open)
    monkeypatch.setattr(os, "fsync", tracking_fsync)
    storage.sync_deferred()
    root = storage.root
    assert sorted(synced) == sorted(
        [str(root / k) for k in keys] + [str(root / "d/A"), str(root / "d/B")]
    )


def test_sizes_of_named_keys(storage: Storage) -> None:
    storage.put("chains/A/1.json", b"12345")
    storage.put("chains/B/2.json", b"")
    storage.put("top.json", b"xy")
    asked = ["chains/A/1.json", "chains/B/2.json", "chains/B/missing.json", "nodir/x.json",
             "top.json"]  # fmt: skip
    assert storage.sizes(asked) == {"chains/A/1.json": 5, "chains/B/2.json": 0, "top.json": 2}
    with pytest.raises(InvalidKey):
        storage.sizes(["../escape.json"])


def test_sizes_leave_out_symlinks_and_directories(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.json").write_bytes(b"{}")
    root = tmp_path / "exports"
    (root / "d").mkdir(parents=True)
    (root / "link").symlink_to(outside)
    (root / "d" / "file.json").symlink_to(outside / "x.json")
    (root / "d" / "sub").mkdir()
    storage = LocalStorage(root)
    assert storage.sizes(["link/x.json", "d/file.json", "d/sub"]) == {}


def test_a_delete_removes_the_directories_it_empties_and_nothing_else(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "exports")
    for key in ("chains/A/1.json", "chains/A/2.json", "chains/B/x/3.json", "chains/C/4.json"):
        storage.put(key, b"{}")
    storage.delete_many(["chains/A/1.json", "chains/B/x/3.json", "chains/gone/5.json"])
    root = storage.root
    assert not (root / "chains/B").exists()  # emptied, with its own parent left empty
    assert (root / "chains/A/2.json").is_file() and (root / "chains/C/4.json").is_file()
    storage.delete("chains/A/2.json")
    assert not (root / "chains/A").exists() and (root / "chains").is_dir()
    storage.delete_many(["chains/C/4.json"])
    assert not (root / "chains").exists() and root.is_dir()  # the root itself stays
    assert {info.key for info in storage.list("")} == set()


def test_writes_make_again_a_directory_a_delete_pruned(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.put_deferred("d/A/1.json", b"1")  # the directory is made once and remembered
    storage.delete("d/A/1.json")  # ...then pruned, empty, before the batch is synced
    storage.put_deferred("d/A/2.json", b"2")
    storage.sync_deferred()
    storage.delete("d/A/2.json")
    storage.put("d/A/3.json", b"3")
    assert {info.key: storage.get(info.key).data for info in storage.list("d/")} == {
        "d/A/3.json": b"3"
    }
