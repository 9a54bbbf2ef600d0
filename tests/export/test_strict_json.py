"""Strict JSON: NaN and infinities in the store leave as null; times as ISO 8601 UTC with Z."""

from __future__ import annotations

import json
import math
from typing import Any
from xml.etree import ElementTree

import orjson
from exportkit import (
    ISO_Z,
    LATEST,
    Clock,
    assert_complete,
    check_document,
    contracts_of,
    gunzip,
    index_rows,
    keys,
    manifest_of,
    strict_loads,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib import exportformat as fmt
from chalicelib.storage.base import Storage
from chalicelib.write.store import Store

TIME_FIELDS = {"generated_at", "as_of", "created_at", "started_at", "finished_at"}


def _poison(store: Store) -> None:
    """Non-finite values everywhere DuckDB keeps them: doubles and JSON columns."""
    store.rows("""
        UPDATE option_quotes SET bid = 'nan'::DOUBLE, delta = 'inf'::DOUBLE,
               gamma = '-inf'::DOUBLE
        WHERE ticker = 'SPY' AND strike = (SELECT min(strike) FROM option_quotes
                                           WHERE ticker = 'SPY')
    """)
    store.rows("UPDATE chain_snapshots SET atm_iv = 'nan', dividend_yield = 'inf' "
               "WHERE ticker = 'AAPL'")  # fmt: skip
    store.rows("UPDATE chain_snapshots SET underlying_price = 'nan' WHERE ticker = 'JPM'")
    store.rows("UPDATE daily_history SET atm_iv = '-inf', close = 'nan' WHERE ticker = 'JPM'")
    store.rows("""
        INSERT INTO features (ticker, as_of, features, missing)
        SELECT 'SPY', max(as_of) + INTERVAL 1 MINUTE,
               '{"atm_iv": NaN, "skew": Infinity, "note": "NaN, Infinity and 1e999 in text",
                 "n": [1, -Infinity, 1e999, 2.5]}',
               '{"iv_rank": "missing"}'
        FROM features WHERE ticker = 'SPY'
    """)
    store.rows("""
        INSERT INTO features (ticker, as_of, features, missing)
        SELECT 'AAPL', max(as_of) + INTERVAL 1 MINUTE, '{"big": 1E+999, "small": 1e-300}', NULL
        FROM features WHERE ticker = 'AAPL'
    """)  # nothing but a number that overflows a double
    store.rows("""
        INSERT INTO alerts
        SELECT 'nan-alert', scan_id, 'SPY', 'iv_spike', 'nan'::DOUBLE,
               '{"z": NaN, "ratio": -Infinity}', '{"summary": "score is NaN, ratio -Infinity"}',
               '["Infinity"]', started_at
        FROM scans LIMIT 1
    """)
    store.rows("UPDATE scans SET runtime_seconds = 'inf'")


def _times(value: Any) -> list[str]:
    """Every value of a time field anywhere in a document."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key in TIME_FIELDS and isinstance(item, list):  # a column of times
                found += [when for when in item if when is not None]
            elif key in TIME_FIELDS and item is not None:
                found.append(item)
            else:
                found += _times(item)
    elif isinstance(value, list):
        for item in value:
            found += _times(item)
    return found


def test_non_finite_values_are_exported_as_null(
    storage: Storage, store: Store, exporter, clock: Clock
) -> None:
    _poison(store)
    results = exporter.export_all()
    assert all(result.ok for result in results.values()), results
    manifest = manifest_of(storage)
    documents = assert_complete(storage, manifest)

    # Everything stored parses strictly: latest and chain documents, archives, the manifest.
    everything = {key: storage.get(key).data for key in keys(storage)}
    parsed, feeds = {}, {}
    for key, data in everything.items():
        if key.endswith(".gz"):
            data = gunzip(storage, key)
        if key.endswith((".atom", ".atom.gz")):  # the Atom feed and its archive are XML
            feeds[key] = ElementTree.fromstring(data)
            continue
        parsed[key] = doc = strict_loads(data)
        if isinstance(doc, dict) and doc.get("kind") == "history":  # times as epoch seconds
            doc = {**doc, "columns": fmt.history_rows(doc["columns"])}
        for when in _times(doc):
            assert ISO_Z.match(when), (key, when)
    assert len(feeds) == 2
    # + archives, manifest (+ its)
    assert len(parsed) + len(feeds) == len(documents) + len(fmt.PUBLISHED_KINDS) + 2

    spy = check_document(documents[manifest.chains["SPY"]], "chain")
    contracts = contracts_of(spy)
    lowest = min(c["strike"] for c in contracts)
    poisoned = [c for c in contracts if c["strike"] == lowest]
    assert poisoned and all(
        (c["bid"], c["delta"], c["gamma"]) == (None, None, None) for c in poisoned
    )
    assert all(c["bid"] is not None for c in contracts if c not in poisoned)
    features = check_document(documents[manifest.feature_sets["SPY"]], "feature_set")["features"]
    assert (features["atm_iv"], features["skew"]) == (None, None)
    assert features["note"] == "NaN, Infinity and 1e999 in text"
    assert features["n"] == [1, None, None, 2.5]

    aapl_features = check_document(documents[manifest.feature_sets["AAPL"]], "feature_set")
    assert aapl_features["features"] == {"big": None, "small": 1e-300}
    assert aapl_features["missing"] == {}
    aapl = check_document(documents[manifest.chains["AAPL"]], "chain")
    assert aapl["dividend_yield"] is None
    jpm = check_document(documents[manifest.chains["JPM"]], "chain")
    assert jpm["underlying_price"] is None
    history = check_document(documents[manifest.histories["JPM"]], "history")
    days = [*fmt.history_rows(history["columns"]), jpm["session"]]
    assert all(day["atm_iv"] is None and day["underlying_price"] is None for day in days)
    index = check_document(documents[LATEST["chains"]], "chains")
    assert {row["ticker"]: row["atm_iv"] for row in index_rows(index)}["AAPL"] is None

    alerts = check_document(documents[LATEST["alerts"]], "alerts")
    alert = next(a for a in alerts["alerts"] if a["id"] == "nan-alert")
    assert alert["score"] is None
    assert alert["metrics"] == {"z": None, "ratio": None}
    assert alert["explanation"] == {"summary": "score is NaN, ratio -Infinity"}
    assert alert["strategies"] == ["Infinity"]
    scans = check_document(documents[LATEST["scans"]], "scans")
    assert [scan["runtime_seconds"] for scan in scans["scans"]] == [None]
    table = check_document(documents[LATEST["features"]], "features")
    assert table["columns"]["atm_iv"][table["tickers"].index("SPY")] is None


_finite_or_not = st.floats(allow_nan=True, allow_infinity=True)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**12), 10**12) | _finite_or_not | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def _nulled(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_nulled(item) for item in value]
    if isinstance(value, dict):
        return {key: _nulled(item) for key, item in value.items()}
    return value


@settings(max_examples=200, deadline=None)
@given(_json_values)
def test_strict_json_turns_exactly_the_non_finite_numbers_into_null(value: Any) -> None:
    lenient = json.dumps(value, allow_nan=True).encode()  # NaN / Infinity / -Infinity literals
    fixed = fmt.strict_json(lenient)
    assert orjson.loads(fixed) == _nulled(value)
    strict = orjson.dumps(_nulled(value))
    assert fmt.strict_json(strict) is strict  # strict input passes through untouched
