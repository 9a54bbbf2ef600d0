"""Settings: one validated object from OCD_* variables; errors name the variable."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chalicelib.config import DEFAULT_WATCHLIST, PROJECT_ROOT, load_settings
from chalicelib.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_defaults_with_an_empty_environment():
    settings = load_settings({})
    assert settings.storage == "local"
    assert settings.watchlist == DEFAULT_WATCHLIST
    assert settings.export_interval_seconds == 300
    assert settings.stale_after_seconds == 900
    assert settings.manifest_ttl_seconds == 0.0


def test_values_are_read_from_the_mapping_not_the_process(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OCD_SEED", "99")
    assert load_settings({"OCD_SEED": "3"}).seed == 3
    assert load_settings({}).seed == 7


def test_process_environment_is_the_default_source(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OCD_SEED", "41")
    assert load_settings().seed == 41


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OCD_EXPORT_INTERVAL_SECONDS", "abc"),
        ("OCD_EXPORT_INTERVAL_SECONDS", "0"),
        ("OCD_COLLECT_INTERVAL_SECONDS", "-5"),
        ("OCD_STORAGE", "gcs"),
        ("OCD_WATCHLIST", "SPY,aapl,BAD TICKER"),
        ("OCD_WATCHLIST", "SPY,1ABC"),
        ("OCD_WATCHLIST", " , "),
        ("OCD_RISK_FREE_RATE", "nan"),
        ("OCD_FLUSH_ROWS", "0"),
        ("OCD_LOG_LEVEL", "LOUD"),
        ("OCD_PREFIX", "exports/../secrets"),
    ],
)
def test_invalid_value_names_the_variable(name: str, value: str):
    with pytest.raises(ConfigError) as info:
        load_settings({name: value})
    assert name in str(info.value)


def test_s3_without_bucket_names_the_bucket_variable():
    with pytest.raises(ConfigError, match="OCD_BUCKET"):
        load_settings({"OCD_STORAGE": "s3"})


def test_s3_with_bucket_is_valid_and_trusts_the_manifest_briefly():
    settings = load_settings({"OCD_STORAGE": "s3", "OCD_BUCKET": "b"})
    assert settings.bucket == "b"
    assert settings.manifest_ttl_seconds == 1.0


def test_several_problems_are_all_reported():
    with pytest.raises(ConfigError) as info:
        load_settings({"OCD_SEED": "x", "OCD_STORAGE": "ftp"})
    assert "OCD_SEED" in str(info.value)
    assert "OCD_STORAGE" in str(info.value)


def test_watchlist_is_split_upper_cased_and_deduplicated():
    settings = load_settings({"OCD_WATCHLIST": " spy, aapl ,SPY,,brk.b, Aapl "})
    assert settings.watchlist == ("SPY", "AAPL", "BRK.B")


def test_unknown_ocd_variables_are_ignored():
    assert load_settings({"OCD_NOT_A_SETTING": "1"}).seed == 7


def test_relative_defaults_resolve_against_project_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.chdir(tmp_path)
    assert Path.cwd() != REPO_ROOT
    settings = load_settings({})
    assert PROJECT_ROOT == REPO_ROOT
    assert settings.data_dir == REPO_ROOT / "local_data"
    assert settings.database == REPO_ROOT / "local_data" / "ocd.duckdb"
    assert settings.exports == REPO_ROOT / "local_data" / "exports"


def test_relative_overrides_resolve_against_project_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.chdir(tmp_path)
    settings = load_settings({"OCD_DATA_DIR": "elsewhere", "OCD_EXPORT_DIR": "out/json"})
    assert settings.data_dir == REPO_ROOT / "elsewhere"
    assert settings.database == REPO_ROOT / "elsewhere" / "ocd.duckdb"
    assert settings.exports == REPO_ROOT / "out" / "json"
    assert not (tmp_path / "elsewhere").exists()


def test_absolute_paths_are_kept(tmp_path: Path):
    db = tmp_path / "x" / "my.duckdb"
    settings = load_settings({"OCD_DATA_DIR": str(tmp_path), "OCD_DB_PATH": str(db)})
    assert settings.data_dir == tmp_path
    assert settings.database == db
    assert settings.exports == tmp_path / "exports"
    assert all(os.path.isabs(p) for p in (settings.data_dir, settings.database, settings.exports))


def test_settings_are_immutable():
    settings = load_settings({})
    with pytest.raises(ValueError):
        settings.seed = 8  # type: ignore[misc]
