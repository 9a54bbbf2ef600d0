"""``features.json`` is built from each features row's ``scalars`` (the scalar features, written
apart by the analysis), or from its whole features JSON for a row written before that column:
the document is the same either way."""

from __future__ import annotations

import orjson
import pytest
from exportkit import Clock, check_document

from chalicelib import catalogue
from chalicelib import exportformat as fmt
from chalicelib.storage.base import Storage
from chalicelib.write.store import Store


def _columns(storage: Storage) -> dict:
    doc = check_document(storage.get(fmt.latest_key("features")).data, "features")
    return {"tickers": doc["tickers"], "as_of": doc["as_of"], "columns": doc["columns"],
            "missing": doc["missing"]}  # fmt: skip


def test_the_analysis_writes_each_rows_scalar_features_apart(store: Store) -> None:
    rows = store.rows("SELECT ticker, features::VARCHAR, scalars::VARCHAR FROM features")
    assert rows
    for ticker, features, scalars in rows:
        values, apart = orjson.loads(features), orjson.loads(scalars)
        assert apart == {k: values[k] for k in catalogue.SCALAR_FEATURES if k in values}, ticker
        assert set(apart) == set(catalogue.SCALAR_FEATURES) & set(values)
        assert any(v is not None for v in apart.values())


@pytest.mark.parametrize("storage", ["local"], indirect=True)
def test_features_json_is_the_same_from_rows_without_scalars(
    storage: Storage, store: Store, make_exporter, clock: Clock
) -> None:
    make_exporter().export_all()
    from_scalars = _columns(storage)
    assert from_scalars["tickers"] and any(
        v is not None for column in from_scalars["columns"].values() for v in column
    )
    store.rows("UPDATE features SET scalars = NULL")  # as rows written before the column
    store.rows("UPDATE features SET as_of = as_of + INTERVAL 1 SECOND")  # a new digest: rebuilt
    clock.advance(minutes=5)
    make_exporter().export_all()
    from_features = _columns(storage)
    assert from_features["columns"] == from_scalars["columns"]
    assert from_features["missing"] == from_scalars["missing"]
    assert from_features["tickers"] == from_scalars["tickers"]
    assert from_features["as_of"] != from_scalars["as_of"]  # rebuilt, from the features
