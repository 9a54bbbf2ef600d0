"""Fixtures for the read-side suite: real exports on both storage adapters, and the app.

- ``stores`` (session): two DuckDB files built by the real collector, see ``readkit``.
- ``published`` (module, local|s3): a site holding two exports (generations 1 and 2), shared
  by the tests that only read it.
- ``served``: ``published`` with the app pointed at it (OCD_* set) and empty read caches.
- ``fresh`` / ``damaged_site``: a private copy of ``published`` a test may damage.
- ``empty_site``: a site with nothing exported yet.

S3 runs in moto: one ``mock_aws`` per test module (never nested), one bucket per site.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from chalice.test import Client
from moto import mock_aws
from readkit import (
    GEN1_AT,
    GEN2_AT,
    Site,
    Snapshot,
    Stores,
    activate,
    build_stores,
    make_client,
    site_env,
)

from chalicelib.read import api, service
from chalicelib.read.reader import LruCache

BACKENDS = ("local", "s3")


@pytest.fixture(scope="session")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Stores:
    return build_stores(tmp_path_factory.mktemp("stores"))


@pytest.fixture(scope="module")
def aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Fake credentials and moto's S3 for the module; nothing of a real AWS setup leaks in.

    Module scope, because mock_aws must not nest (an inner one would not reset moto's state,
    and an outer one would leak into other suites); sites get a bucket each instead.
    """
    home = tmp_path_factory.mktemp("aws")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv("AWS_CONFIG_FILE", str(home / "config"))
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "credentials"))
        for name in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_PROFILE",
                     "AWS_SESSION_TOKEN", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"):  # fmt: skip
            mp.delenv(name, raising=False)
        with mock_aws():
            # One boto3 session for the module: each S3Storage still builds its own client
            # (as in production), but from cached service models: ~15 ms instead of ~300 ms.
            shared = boto3.session.Session()
            mp.setattr(boto3.session, "Session", lambda *args, **kwargs: shared)
            yield


def _new_site(request: pytest.FixtureRequest, backend: str, data_dir: Path, stores: Stores) -> Site:
    if backend == "s3":
        request.getfixturevalue("aws")
    site = Site(backend, site_env(backend, data_dir), stores)
    if backend == "s3":
        site.storage.client.create_bucket(Bucket=site.settings.bucket)  # type: ignore[attr-defined]
    return site


@pytest.fixture(scope="session")
def local_published(tmp_path_factory: pytest.TempPathFactory, stores: Stores) -> Site:
    """Two exports by the real writer to local disk: generation 1 from db1, 2 from db2."""
    site = Site("local", site_env("local", tmp_path_factory.mktemp("published")), stores)
    site.export(stores.db1, clock=lambda: GEN1_AT)
    site.export(stores.db2, clock=lambda: GEN2_AT)
    return site


@pytest.fixture(scope="session")
def template(local_published: Site) -> Snapshot:
    return local_published.snapshot()


@pytest.fixture(scope="module", params=BACKENDS)
def published(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    stores: Stores,
    local_published: Site,
    template: Snapshot,
) -> Site:
    """The two-generation site on each backend. The S3 copy (one per module, as moto's state
    is) gets the writer's objects byte for byte; tests that export again run the real writer
    against S3 too."""
    if request.param == "local":
        return local_published
    site = _new_site(request, "s3", tmp_path_factory.mktemp("published"), stores)
    site.restore(template)
    site.generations = list(local_published.generations)
    return site


@pytest.fixture(autouse=True)
def fresh_caches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no readers, bodies or derived views cached in this process."""
    monkeypatch.setattr(service, "_READERS", {})
    bodies = service._BODIES
    monkeypatch.setattr(service, "_BODIES", LruCache(bodies.max_items, bodies.max_weight))
    monkeypatch.setattr(api, "_DERIVED", LruCache(api._DERIVED.max_items))


@pytest.fixture
def served(published: Site, monkeypatch: pytest.MonkeyPatch) -> Site:
    activate(published, monkeypatch)
    return published


@pytest.fixture(scope="module")
def pristine(published: Site, template: Snapshot) -> Snapshot:
    return published.snapshot(template.data)


@pytest.fixture
def fresh(published: Site, pristine: Snapshot, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    """The two-generation site, served by the app, for a test to damage: whatever the test
    added, changed or deleted is put back afterwards (cheaper than a copy per test)."""
    site = published.copy()
    activate(site, monkeypatch)
    yield site
    site.restore(pristine)


@pytest.fixture(params=BACKENDS)
def empty_site(
    request: pytest.FixtureRequest, tmp_path: Path, stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> Site:
    site = _new_site(request, request.param, tmp_path / "data", stores)
    activate(site, monkeypatch)
    return site


@pytest.fixture(scope="session")
def client() -> Client:
    """Chalice's test client holds no per-test state (it applies the dev stage's variables,
    of which there are none, around each call), so one serves the whole session."""
    return make_client()
