"""An imported day, replayed, exported and served: the API returns the file's contract values."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from chalice.test import Client
from importkit import (
    CONTRACT_FIELDS,
    DAYS,
    NOW,
    assert_rows_match,
    chain,
    close_of,
    staged,
    vendor_csv,
    write,
)

from chalicelib import catalogue
from chalicelib.config import Settings
from chalicelib.exportformat import load_manifest
from chalicelib.storage.factory import make_storage
from chalicelib.write.exporter import JSONExporter
from chalicelib.write.importer import import_file, inspect
from chalicelib.write.scheduler import Scheduler
from chalicelib.write.store import Store

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def published(settings: Settings, store: Store, ocd_env: dict[str, str], tmp_path: Path):
    """One vendor-format day of SPY imported, replayed and exported; returns its quotes."""
    quotes = chain("SPY", DAYS[0], expiries=(16, 45, 80))
    import_file(store, inspect(store, write(tmp_path / "spy.csv", vendor_csv(quotes))))
    run = Scheduler(settings, store).collect(NOW)
    assert run["chains_collected"] == 1
    results = JSONExporter(store, make_storage(settings), settings, clock=lambda: NOW).export_all()
    assert all(r.ok for r in results.values())
    return quotes


def test_the_api_serves_the_files_contract_values(published: list, settings: Settings):
    client = Client(_app(), project_dir=str(ROOT))
    expirations = sorted({q.expiration.isoformat() for q in published})
    for expiration in expirations:
        response = client.http.get(f"/options/SPY/snapshot?expiration={expiration}")
        assert response.status_code == 200, response.body
        body = orjson.loads(response.body)
        assert body["as_of"] == "2026-03-02T21:00:00Z"  # the 16:00 New York close
        assert body["underlying_price"] == published[0].spot
        assert body["expirations"] == expirations
        for right, rows in (("C", body["calls"]), ("P", body["puts"])):
            listed = [q for q in published if q.expiration.isoformat() == expiration]
            want = sorted((q for q in listed if q.right == right), key=lambda q: q.strike)
            assert [r["strike"] for r in rows] == [q.strike for q in want]
            for got, q in zip(rows, want, strict=True):
                for name in CONTRACT_FIELDS:
                    value = _exported(name, getattr(q, name))
                    if name == "rho":  # not in the vendor layout: computed at the file's IV
                        assert got[name] == pytest.approx(value, rel=1e-3, abs=1e-5)
                    else:  # theta and vega converted from per year / per 1.00 of vol
                        assert got[name] == pytest.approx(value, rel=1e-12), (name, q)


def _exported(name: str, value: float | None) -> float | None:
    """A value as the export rounds it (the catalogue's precision)."""
    return catalogue.CONTRACT_FIELD_BY_NAME[name].precision.apply(value)


def test_an_exported_chain_document_reimports_as_exported(
    published: list, settings: Settings, store: Store, tmp_path: Path
):
    storage = make_storage(settings)
    manifest = load_manifest(storage)
    assert manifest is not None
    document = storage.get(manifest.chains["SPY"]).data
    path = write(tmp_path / "SPY.json", document.decode())
    with Store(tmp_path / "again" / "ocd.duckdb") as fresh:
        report = import_file(fresh, inspect(fresh, path))
        assert report.format == "ocd_chain" and report.accepted == len(published)
        assert report.missing == {}
        exported = [  # the store's rows at the export's precision: what the document holds
            {k: _exported(k, v) if k in CONTRACT_FIELDS and v is not None else v
             for k, v in row.items()}
            for row in staged(store, "option_quotes")
        ]  # fmt: skip
        assert_rows_match(staged(fresh), exported)
        snapshot = fresh.rows("SELECT as_of, underlying_price FROM import_snapshots")
        assert snapshot == [(close_of(DAYS[0]).replace(tzinfo=None), published[0].spot)]


def _app():
    from app import app

    return app
