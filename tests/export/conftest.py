"""Fixtures for the export suite: a real DuckDB store, both storage adapters, a settable clock.

- ``store``: a private copy of a DuckDB file the real collector filled once per session
  (watchlist SPY, AAPL, JPM at ``T1``); ``collect_again`` adds a later snapshot to it.
- ``small_store``: the same with a two-ticker watchlist of small chains (``SMALL_WATCHLIST``).
- ``storage`` (local|s3): ``LocalStorage(tmp_path/"exports")`` or ``S3Storage`` in moto.
- ``clock``: a callable the test sets, so exports can share a second or go back in time.
- ``exporter``: ``JSONExporter`` over those, built again with other settings by ``make_exporter``
  (``make_small_exporter`` over ``small_store``).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from exportkit import BUCKET, PREFIX, SMALL_WATCHLIST, T1, Clock, env_for
from moto import mock_aws

from chalicelib.config import Settings, load_settings
from chalicelib.storage.base import Storage
from chalicelib.storage.local import LocalStorage
from chalicelib.storage.s3 import S3Storage
from chalicelib.write.exporter import JSONExporter
from chalicelib.write.scheduler import Scheduler
from chalicelib.write.store import Store


def _collected(base: Path, **overrides: str) -> Path:
    path = base / "ocd.duckdb"
    with Store(path) as store:
        Scheduler(load_settings(env_for(base, **overrides)), store).collect(T1)
        store.checkpoint()
    return path


@pytest.fixture(scope="session")
def collected_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DuckDB file the real collector filled once (at T1); tests get copies of it."""
    return _collected(tmp_path_factory.mktemp("collected"))


@pytest.fixture(scope="session")
def small_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same for a two-ticker watchlist with small chains, for tests that export a lot."""
    return _collected(tmp_path_factory.mktemp("small"), watchlist=",".join(SMALL_WATCHLIST))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(env_for(tmp_path))


@pytest.fixture
def store(collected_db: Path, tmp_path: Path) -> Iterator[Store]:
    path = tmp_path / "ocd.duckdb"
    shutil.copyfile(collected_db, path)
    with Store(path) as opened:
        yield opened


@pytest.fixture
def small_store(small_db: Path, tmp_path: Path) -> Iterator[Store]:
    path = tmp_path / "small.duckdb"
    shutil.copyfile(small_db, path)
    with Store(path) as opened:
        yield opened


@pytest.fixture
def collect_again(store: Store, settings: Settings) -> Callable[[datetime], dict]:
    """Run the real collector on the test's store again (a later ``as_of`` adds snapshots)."""
    return lambda when: Scheduler(settings, store).collect(when)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials; nothing from a developer's own AWS setup may leak in."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    if request.param == "local":
        yield LocalStorage(tmp_path / "exports")
        return
    request.getfixturevalue("aws_env")
    with mock_aws():
        s3 = S3Storage(BUCKET, PREFIX)
        s3.client.create_bucket(Bucket=BUCKET)
        yield s3


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 11, 27, 21, 5, tzinfo=T1.tzinfo))


@pytest.fixture
def make_exporter(
    store: Store, storage: Storage, clock: Clock, tmp_path: Path
) -> Callable[..., JSONExporter]:
    """``make_exporter(storage=…, **OCD settings)``: the exporter under test, configured."""

    def make(target: Storage | None = None, **overrides: str) -> JSONExporter:
        settings = load_settings(env_for(tmp_path, **overrides))
        return JSONExporter(store, target or storage, settings, clock=clock)

    return make


@pytest.fixture
def exporter(make_exporter: Callable[..., JSONExporter]) -> JSONExporter:
    return make_exporter()


@pytest.fixture
def small_settings(tmp_path: Path) -> Settings:
    return load_settings(env_for(tmp_path, watchlist=",".join(SMALL_WATCHLIST)))


@pytest.fixture
def make_small_exporter(
    small_store: Store, storage: Storage, clock: Clock, tmp_path: Path
) -> Callable[..., JSONExporter]:
    """``make_exporter`` over ``small_store``, for tests that export many times."""

    def make(target: Storage | None = None, **overrides: str) -> JSONExporter:
        env = env_for(tmp_path, watchlist=",".join(SMALL_WATCHLIST), **overrides)
        return JSONExporter(small_store, target or storage, load_settings(env), clock=clock)

    return make
