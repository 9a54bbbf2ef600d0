"""Fixtures for the import suite: settings and a store in ``tmp_path``, the app's environment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from importkit import settings_for

from chalicelib.config import Settings
from chalicelib.write.store import Store


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return settings_for(tmp_path / "data")


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    with Store(settings.database) as opened:
        yield opened


@pytest.fixture
def ocd_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The OCD_* variables of ``settings`` in the process environment (for handlers, the API
    and subprocesses), and nothing else of the kind."""
    for name in [k for k in os.environ if k.startswith("OCD_")]:
        monkeypatch.delenv(name)
    values = {
        "OCD_DATA_DIR": str(settings.data_dir),
        "OCD_WATCHLIST": ",".join(settings.watchlist),
        "OCD_BACKFILL_DAYS": str(settings.backfill_days),
        "OCD_PROVIDER": settings.provider,
        "OCD_LOG_LEVEL": "WARNING",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values
