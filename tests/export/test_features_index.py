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


def test_the_analysis_stores_tables_and_each_rows_scalar_features_apart(store: Store) -> None:
    rows = store.rows("SELECT ticker, features::VARCHAR, scalars::VARCHAR FROM features")
    assert rows
    stored_bytes = expanded_bytes = 0
    for ticker, features, scalars in rows:
        values, apart = orjson.loads(features), orjson.loads(scalars)
        assert apart == {k: values[k] for k in catalogue.SCALAR_FEATURES if k in values}, ticker
        assert set(apart) == set(catalogue.SCALAR_FEATURES) & set(values)
        assert any(v is not None for v in apart.values())
        assert fmt.TABLE in values["by_expiry"], ticker  # lists of records stored as tables
        stored_bytes += len(features)
        expanded_bytes += len(orjson.dumps(fmt.expand_features(values)))
    assert stored_bytes < 0.85 * expanded_bytes


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


def test_lists_of_records_are_stored_as_tables_and_read_back_as_they_were() -> None:
    values = {
        "atm_iv": 0.2,
        "by_expiry": [
            {"expiration": "2026-12-04", "atm_iv": 0.25, "missing": {"oi_change": "none"},
             "gex_by_strike": [{"strike": 95.0, "net_gex": 1.5},
                               {"strike": 100.0, "net_gex": -2.0}]},
            {"expiration": "2026-12-11", "atm_iv": None, "gex_by_strike": []},  # no missing
        ],
        "term_structure": [{"expiration": "2026-12-04", "dte": 7}],  # one record: as it is
        "max_pain_by_expiry": [{"expiration": "2026-12-04", "strike": 95.0},
                               {"strike": 90.0, "expiration": "2026-12-11"}],  # another order
        "unusual_contracts": [],
        "sma_recent": {"close": [1.0, 2.0]},  # a series, not records
        "gex_by_strike": None,
    }  # fmt: skip
    stored = fmt.compact_features(values)
    assert stored["by_expiry"] == {
        fmt.TABLE: ["expiration", "atm_iv", "missing", "gex_by_strike"],
        "rows": [
            ["2026-12-04", 0.25, {"oi_change": "none"},
             {fmt.TABLE: ["strike", "net_gex"], "rows": [[95.0, 1.5], [100.0, -2.0]]}],
            ["2026-12-11", None, None, []],
        ],
        "absent": [[1, 2]],  # record 1 has no "missing"
    }  # fmt: skip
    mixed = {"by_expiry": [{"expiration": "2026-12-04"}, {"expiration": "2026-12-11"}, 3]}
    assert fmt.compact_features(mixed) == mixed  # a list that is not all records: as it is
    for name in ("term_structure", "max_pain_by_expiry", "unusual_contracts", "sma_recent"):
        assert stored[name] == values[name], name
    back = fmt.expand_features(orjson.loads(orjson.dumps(stored)))
    assert back == values
    assert [list(r) for r in back["by_expiry"]] == [list(r) for r in values["by_expiry"]]
    assert fmt.expand_features(values) == values  # stored before tables: unchanged
    assert fmt.expand_features(None) is None
