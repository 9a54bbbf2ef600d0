"""Storage faults on S3: throttling (503 SlowDown), errors (500 InternalError) and read
timeouts, injected on chosen operations and keys through botocore's ``before-send`` event on
each S3Storage's own client. S3 is moto's server on loopback, so an injected fault is a request
that never reached S3 — except ``lost``: the request reached S3 and only its answer was lost.

- transient faults on the first attempts are retried (standard mode, 5 attempts) with backoff,
  and the call succeeds;
- a persistent fault fails the export without raising: nothing new is published, every route
  still answers 200 with the last generation, and ``/health`` says ``degraded`` and why;
- a read the storage keeps failing falls back (archive, older generation, or an empty answer
  flagged ``source: none``) and is tried again on the next request; never a 500.

One site (two generations) serves the module; each test's writes are undone after it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import boto3
import botocore.endpoint
import jsonschema
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError
from botocore.httpsession import URLLib3Session
from chalice.test import Client
from exportkit import assert_complete
from moto.server import ThreadedMotoServer
from readkit import body, get
from reliakit import published_manifest, reset_read_caches, use_env

from chalicelib.exportstatus import STATUS_KEY, read_status
from chalicelib.read import service
from chalicelib.read.openapi import HEALTH
from chalicelib.storage import factory
from chalicelib.storage.base import Storage
from chalicelib.storage.s3 import S3Storage
from chalicelib.write import schedules

BUCKET = "ocd-faults"
PREFIX = "exports/"
T1, T2 = "2026-11-30T15:00:00Z", "2026-11-30T15:05:00Z"
ERRORS = {  # fault -> (HTTP status, S3 error code)
    "slowdown": (503, "SlowDown"),
    "internal": (500, "InternalError"),
}
FAULTS = (*ERRORS, "timeout")
MAX_ATTEMPTS = 6  # the adapter's botocore config: max_attempts=5 retries after the first


@dataclass
class Rule:
    operation: str  # S3 API name: PutObject, GetObject, HeadObject, ListObjectsV2 ...
    key: str | None  # an object key under the prefix (a key prefix if it ends in / or _)
    fault: str
    first: int | None = None  # fail only the first attempts of each call; None: every one
    limit: int | None = None  # inject at most this many times in all

    def matches(self, operation: str, key: str) -> bool:
        if operation != self.operation:
            return False
        if self.key is None:
            return True
        return key.startswith(self.key) if self.key.endswith(("/", "_")) else key == self.key


class _RawBody:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.data


@dataclass
class Faults:
    """Fault rules for every S3Storage the app makes, and a record of what they did."""

    rules: list[Rule] = field(default_factory=list)
    attempts: list[tuple[str, str, int]] = field(default_factory=list)  # (operation, key, n)
    injected: list[tuple[str, str, int]] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)
    _http: URLLib3Session = field(default_factory=URLLib3Session)

    def add(
        self,
        operation: str,
        key: str | None,
        fault: str,
        first: int | None = None,
        limit: int | None = None,
    ) -> None:
        self.rules.append(Rule(operation, key, fault, first, limit))

    def clear(self) -> None:
        self.rules.clear()
        self.attempts.clear()
        self.injected.clear()
        self.sleeps.clear()

    def attach(self, storage: Storage) -> Storage:
        if isinstance(storage, S3Storage):
            storage.client.meta.events.register("before-send.s3", self.before_send)
        return storage

    def before_send(self, request: Any, event_name: str, **_: Any) -> AWSResponse | None:
        operation = event_name.rsplit(".", 1)[-1]
        path = unquote(urlsplit(request.url).path)
        key = path.split(f"/{PREFIX}", 1)[1] if f"/{PREFIX}" in path else ""
        attempt = int(request.context.get("retries", {}).get("attempt", 1))
        self.attempts.append((operation, key, attempt))
        rule = next((r for r in self.rules if r.matches(operation, key)), None)
        if rule is None or (rule.first is not None and attempt > rule.first):
            return None  # sent to S3
        if rule.limit is not None:
            if rule.limit <= 0:
                return None
            rule.limit -= 1
        self.injected.append((operation, key, attempt))
        if rule.fault == "lost":  # S3 does it; the answer never arrives
            self._http.send(request)
            raise ReadTimeoutError(endpoint_url=request.url)
        if rule.fault == "timeout":
            raise ReadTimeoutError(endpoint_url=request.url)
        status, code = ERRORS[rule.fault]
        xml = f"<Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
        headers = {"Content-Type": "application/xml", "Content-Length": str(len(xml))}
        return AWSResponse(request.url, status, headers, _RawBody(xml))  # type: ignore[arg-type]

    def calls(self, operation: str, key: str) -> list[int]:
        """Attempt numbers of every request for ``operation`` on ``key``, in order."""
        return [n for op, k, n in self.attempts if (op, k) == (operation, key)]

    def sleep(self, seconds: float) -> None:  # botocore's backoff, recorded instead of slept
        self.sleeps.append(seconds)


class _Clock:
    """Stands in for the ``time`` module inside botocore.endpoint: sleeps are recorded."""

    def __init__(self, faults: Faults) -> None:
        self.sleep = faults.sleep

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@dataclass
class FaultySite:
    faults: Faults
    storage: Storage  # unfaulted, to look at (and restore) what is stored
    generations: list[str]
    pristine: dict[str, tuple[str, bytes]]  # key -> (version, bytes) after the two exports

    def restore(self) -> None:
        """Undo a test's writes: remove what it added, put back what it changed."""
        now = {info.key: info.version for info in self.storage.list()}
        self.storage.delete_many([key for key in now if key not in self.pristine])
        for key, (version, data) in self.pristine.items():
            if now.get(key) != version:
                encoding = "gzip" if key.endswith(".gz") else None
                self.storage.put(key, data, content_encoding=encoding)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultySite]:
    """Two generations on S3 (collected at T1, then T2); every storage the app makes is
    faulty, and botocore's backoff sleeps are recorded instead of slept."""
    home = tmp_path_factory.mktemp("faults")
    with pytest.MonkeyPatch.context() as mp:
        for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
            mp.delenv(name, raising=False)
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv("AWS_CONFIG_FILE", str(home / "no-aws-config"))
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "no-aws-credentials"))
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            mp.setenv("AWS_ENDPOINT_URL_S3", f"http://{host}:{port}")
            shared = boto3.session.Session()
            mp.setattr(boto3.session, "Session", lambda *args, **kwargs: shared)
            use_env(mp, {
                "OCD_DATA_DIR": str(home / "data"), "OCD_STORAGE": "s3", "OCD_BUCKET": BUCKET,
                "OCD_PERSIST_DB": "false", "OCD_WATCHLIST": "SPY,JPM",
                "OCD_BACKFILL_DAYS": "10", "OCD_MANIFEST_TTL_SECONDS": "0",
            })  # fmt: skip
            boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
            faults = Faults()
            original = factory.make_storage
            mp.setattr(factory, "make_storage", lambda s: faults.attach(original(s)))
            mp.setattr(service, "make_storage", factory.make_storage)
            mp.setattr(botocore.endpoint, "time", _Clock(faults))
            generations = []
            for as_of in (T1, T2):
                assert schedules.collect({"as_of": as_of})["status"] == "completed"
                exported = schedules.export({})
                assert exported["ok"], exported
                generations.append(exported["generation"])
            storage = S3Storage(BUCKET, PREFIX)
            pristine = {i.key: (i.version, storage.get(i.key).data) for i in storage.list()}
            yield FaultySite(faults, storage, generations, pristine)
        finally:
            server.stop()


@pytest.fixture
def site(world: FaultySite) -> Iterator[FaultySite]:
    world.faults.clear()
    yield world
    world.faults.clear()
    world.restore()


def collect_and_export(site: FaultySite) -> dict[str, Any]:
    assert schedules.collect({"as_of": "2026-11-30T15:10:00Z"})["status"] == "completed"
    return schedules.export({})


def served(client: Client, path: str) -> dict[str, Any]:
    response = get(client, path)
    assert response.status_code == 200, (path, response.status_code, response.body[:300])
    data = body(response)
    assert response.headers["X-Data-Source"] == data["source"]
    return data


def health(client: Client) -> dict[str, Any]:
    data = served(client, "/health")
    jsonschema.Draft202012Validator(HEALTH).validate(data)
    return data


def backoff_caps(fault: str) -> list[float]:
    """The most botocore may wait before retry i: ``rand * min(scale * 2**i, 20)``, where the
    scale is 1 s for throttling and 50 ms for other transient errors."""
    scale = 1.0 if fault == "slowdown" else 0.05
    return [min(scale * 2**i, 20.0) for i in range(MAX_ATTEMPTS)]


# ---- transient: retried, then fine ---------------------------------------------------------
@pytest.mark.parametrize("fault", FAULTS)
def test_a_transient_fault_on_a_write_is_retried_with_backoff(
    site: FaultySite, client: Client, fault: str
) -> None:
    site.faults.add("PutObject", "manifest.json", fault, first=2)
    result = collect_and_export(site)
    assert result["ok"], result
    assert site.faults.calls("PutObject", "manifest.json") == [1, 2, 3]
    caps = backoff_caps(fault)[:2]  # waited before each retry, within the exponential cap
    assert all(0 < s <= cap for s, cap in zip(site.faults.sleeps, caps, strict=True))
    manifest = published_manifest(site.storage)
    assert manifest.generation == result["generation"] != site.generations[-1]
    assert_complete(site.storage, manifest)
    assert health(client)["status"] == "ok"


@pytest.mark.parametrize("fault", FAULTS)
def test_a_transient_fault_on_every_write_of_an_export_is_retried(
    site: FaultySite, fault: str
) -> None:
    site.faults.add("PutObject", None, fault, first=1)
    result = collect_and_export(site)
    assert result["ok"], (result, site.faults.attempts, site.faults.injected)
    puts = [(key, n) for op, key, n in site.faults.attempts if op == "PutObject"]
    keys = {key for key, _ in puts}
    assert sorted(puts) == sorted((key, n) for key in keys for n in (1, 2))  # each once more
    assert_complete(site.storage, published_manifest(site.storage))


@pytest.mark.parametrize("fault", FAULTS)
def test_a_transient_fault_on_a_read_is_retried(
    site: FaultySite, client: Client, fault: str
) -> None:
    site.faults.add("GetObject", "alerts.json", fault, first=2)
    data = served(client, "/alerts/latest")
    assert (data["source"], data["generation"]) == ("latest", site.generations[-1])
    assert site.faults.calls("GetObject", "alerts.json") == [1, 2, 3]


# ---- persistent: the export fails, readers keep the last generation ------------------------
@pytest.mark.parametrize("fault", FAULTS)
def test_a_persistent_write_fault_fails_the_export_and_health_says_so(
    site: FaultySite, client: Client, fault: str
) -> None:
    before = site.storage.get("manifest.json").data
    site.faults.add("PutObject", "manifest.json", fault)
    result = collect_and_export(site)
    assert result["ok"] is False
    assert result["generation"] == site.generations[-1]  # the one still served
    assert "manifest.json" in result["error"]
    assert site.faults.calls("PutObject", "manifest.json") == list(range(1, MAX_ATTEMPTS + 1))
    assert site.storage.get("manifest.json").data == before

    for path in ("/alerts/latest", "/tickers", "/scans/latest", "/options/SPY/snapshot"):
        data = served(client, path)  # the new latest documents no longer match: archives
        assert data["generation"] == site.generations[-1], path
    report = health(client)
    assert report["status"] == "degraded"
    assert report["generation"] == site.generations[-1]
    last = report["last_export"]
    assert last["ok"] is False and last["generation"] == site.generations[-1]
    assert "manifest.json" in last["error"]

    site.faults.clear()  # the storage recovers: the next export publishes, health clears
    recovered = schedules.export({})
    assert recovered["ok"], recovered
    reset_read_caches()
    report = health(client)
    assert (report["status"], report["generation"]) == ("ok", recovered["generation"])
    assert report["last_export"] == {
        "ok": True,
        "at": report["generated_at"],
        "error": None,
        "generation": recovered["generation"],
    }
    status = read_status(site.storage)
    assert status is not None and status.ok


def test_a_failing_kind_is_published_partly_and_reported(site: FaultySite, client: Client) -> None:
    site.faults.add("PutObject", "archive/scans_", "internal")  # scans cannot be archived
    result = collect_and_export(site)
    assert result["ok"] is False and result["kinds"]["scans"]["ok"] is False
    assert result["error"].startswith("scans: StorageUnavailable")
    manifest = published_manifest(site.storage)  # the other kinds published a generation
    assert manifest.generation == result["generation"] != site.generations[-1]
    assert manifest.documents["scans.json"].generation == site.generations[-1]
    report = health(client)
    assert report["status"] == "degraded"
    assert report["last_export"]["generation"] == manifest.generation
    assert report["last_export"]["error"].startswith("scans:")
    assert served(client, "/scans/latest")["source"] == "latest"


def test_a_storage_refusing_every_write_loses_nothing(
    site: FaultySite, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """Not even the status can be written then: the failure is logged, and readers still
    get the last generation whole."""
    site.faults.add("PutObject", None, "slowdown")
    before = {info.key: info.version for info in site.storage.list()}
    logger = logging.getLogger("ocd")
    logger.addHandler(caplog.handler)
    try:
        result = collect_and_export(site)
    finally:
        logger.removeHandler(caplog.handler)
    assert result["ok"] is False and result["generation"] == site.generations[-1]
    assert {info.key: info.version for info in site.storage.list()} == before
    assert STATUS_KEY in before  # written by the first export, unchanged since
    assert {"export_failed", "export_status_failed"} <= set(caplog.messages)
    assert_complete(site.storage, published_manifest(site.storage))
    for path in ("/alerts/latest", "/tickers", "/options/JPM/history"):
        data = served(client, path)
        assert (data["source"], data["generation"]) == ("latest", site.generations[-1])


# ---- persistent read faults: fall back, flag, retry; never a 500 ---------------------------
def test_a_latest_document_the_storage_keeps_failing_is_served_from_its_archive(
    site: FaultySite, client: Client
) -> None:
    site.faults.add("GetObject", "alerts.json", "internal")
    data = served(client, "/alerts/latest")
    assert (data["source"], data["generation"]) == ("archive", site.generations[-1])
    assert data["total_count"] > 0


def test_an_answer_the_storage_outage_emptied_is_not_remembered(
    site: FaultySite, client: Client
) -> None:
    site.faults.add("GetObject", "scans.json", "slowdown")
    site.faults.add("GetObject", "archive/", "timeout")
    data = served(client, "/scans/latest")
    assert (data["source"], data["generation"], data["scans"]) == ("none", None, [])
    site.faults.clear()  # the storage answers again: so does the same reader
    data = served(client, "/scans/latest")
    assert (data["source"], data["generation"]) == ("latest", site.generations[-1])
    assert data["total_count"] > 0


def test_a_chain_document_the_storage_keeps_failing_falls_back_to_the_older_generation(
    site: FaultySite, client: Client
) -> None:
    key = published_manifest(site.storage).chains["SPY"]
    site.faults.add("GetObject", key, "timeout")
    data = served(client, "/options/SPY/snapshot")
    assert (data["source"], data["generation"]) == ("archive", site.generations[0])
    assert data["as_of"] == T1
    other = served(client, "/options/JPM/snapshot")
    assert (other["source"], other["as_of"]) == ("latest", T2)


def test_a_manifest_the_storage_keeps_failing_is_replaced_by_the_archived_one(
    site: FaultySite, client: Client
) -> None:
    site.faults.add("GetObject", "manifest.json", "slowdown")
    report = health(client)
    assert (report["source"], report["generation"]) == ("archive", site.generations[-1])
    data = served(client, "/options/SPY/expirations")
    assert (data["source"], data["generation"]) == ("latest", site.generations[-1])


def test_when_nothing_can_be_read_answers_are_empty_and_flagged_or_503(
    site: FaultySite, client: Client
) -> None:
    served(client, "/alerts/latest")  # a warm reader: it has read the manifest once
    site.faults.add("GetObject", None, "internal")
    site.faults.add("HeadObject", None, "timeout")
    data = served(client, "/alerts/latest")  # already parsed: served from memory
    assert (data["source"], data["generation"]) == ("latest", site.generations[-1])
    data = served(client, "/scans/latest")  # never read, and every copy unreadable
    assert (data["source"], data["scans"], data["total_count"]) == ("none", [], 0)
    assert health(client)["generation"] == site.generations[-1]

    for heads in (False, True):  # a cold reader, finding the manifest or not: 503, not 500
        if heads:
            site.faults.rules.pop()  # HEAD answers again (GET does not)
        reset_read_caches()
        for path in ("/health", "/tickers", "/options/SPY/snapshot"):
            response = get(client, path)
            assert response.status_code == 503, (path, response.body[:300])
            error = body(response)
            assert error["error"] == "storage_unavailable" and BUCKET not in error["message"]
            assert response.headers["Retry-After"]


def test_writes_that_landed_but_whose_answer_was_lost_are_retried_safely(
    site: FaultySite, client: Client
) -> None:
    """The retry of a create-only archive write finds its own first attempt there (412, with
    its own bytes): the archive stands, under its generation's key; a retried manifest write
    just writes it again."""
    site.faults.add("PutObject", "archive/chains_", "lost", limit=1)
    site.faults.add("PutObject", "manifest.json", "lost", limit=1)
    result = collect_and_export(site)
    assert result["ok"], result
    (landed,) = [key for op, key, _ in site.faults.injected if key.startswith("archive/")]
    manifest = published_manifest(site.storage)
    assert manifest.archives["chains"] == landed == (
        f"archive/chains_{manifest.generation}.json.gz")  # fmt: skip
    assert site.faults.calls("PutObject", "manifest.json") == [1, 2]
    assert_complete(site.storage, manifest)
    data = served(client, "/tickers")
    assert (data["source"], data["generation"]) == ("latest", manifest.generation)
