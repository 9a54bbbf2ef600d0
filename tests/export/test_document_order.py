"""Chain and history documents put the store's rows in document order, and chain documents round
them as the catalogue says, however the store happens to hold them (the exporter sorts and
rounds in numpy)."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest
from exportkit import contracts_of, manifest_of

from chalicelib import catalogue
from chalicelib import exportformat as fmt
from chalicelib.exportformat import Manifest
from chalicelib.storage.base import Storage
from chalicelib.write.exporter import CONTRACT_PRECISION, JSONExporter, _document_order, _round
from chalicelib.write.store import Store

PRECISIONS = sorted({f.precision for f in (*catalogue.CONTRACT_FIELDS, *catalogue.HISTORY_FIELDS)
                     if f.precision.decimals or f.precision.significant}, key=repr)  # fmt: skip


def _adversarial(rng: np.random.Generator, n: int) -> np.ndarray:
    """Values of every magnitude, exact decimal ties, near-ties and the edges of a double."""
    ties = (rng.integers(0, 10**6, n) + 0.5) / 10.0 ** rng.integers(0, 7, n)
    return np.concatenate([
        rng.normal(0, 1, n) * 10.0 ** rng.integers(-14, 12, n), ties, -ties,
        np.nextafter(ties, np.inf), rng.integers(0, 10**5, n) / 100.0,
        10.0 ** np.arange(-25, 25), [0.0, -0.0, np.nan, np.inf, -np.inf, 5e-324, 1e-310, 1.7e308,
                                     -1.7e308, 2.675, 0.125, 1.005, 999999.5, 9999995.0],
    ])  # fmt: skip


@pytest.mark.parametrize("precision", PRECISIONS, ids=repr)
def test_numpy_rounding_is_precision_apply_value_for_value(precision: catalogue.Precision):
    values = _adversarial(np.random.default_rng(7), 20_000)
    got = _round(values, precision).tolist()
    for value, rounded in zip(values.tolist(), got, strict=True):
        expected = precision.apply(value)
        if expected is None:
            assert not math.isfinite(rounded), value
        else:  # the same double, sign of zero included
            assert (rounded, math.copysign(1, rounded)) == (expected, math.copysign(1, expected)), (
                value
            )


def test_the_contract_precisions_are_rounded_in_numpy() -> None:
    numbers = {f.name for f in catalogue.CONTRACT_FIELDS if f.kind == "number"}
    assert set(CONTRACT_PRECISION) == numbers & set(fmt.CONTRACT_COLUMNS)
    assert set(PRECISIONS) >= set(CONTRACT_PRECISION.values())


def test_document_order_is_a_full_sort_whatever_the_input_order() -> None:
    rng = np.random.default_rng(3)
    n = 20_000
    rank = rng.integers(0, 40, n)
    expiration = (np.datetime64("2026-12-04") + rng.integers(0, 400, n)).astype("datetime64[D]")
    is_call = rng.random(n) < 0.5
    strike = rng.integers(1, 5000, n) / 2.0
    keys = np.unique(np.stack([rank, expiration.astype(np.int64), ~is_call, strike]), axis=1)
    rank, days, put, strike = keys  # one contract per (ticker, expiration, right, strike)
    expiration, is_call = days.astype("datetime64[D]"), put == 0
    for arrangement in ("shuffled", "by right first", "sorted"):
        if arrangement == "shuffled":
            at = rng.permutation(rank.size)
        elif arrangement == "by right first":  # how the store mostly holds a chain
            at = np.lexsort((strike, days, put, rank))
        else:
            at = np.arange(rank.size)
        order = _document_order(rank[at], expiration[at], is_call[at], strike[at])
        expected = np.lexsort((strike[at], ~is_call[at], days[at], rank[at]))
        assert np.array_equal(order, expected), arrangement
    assert _document_order(*(np.array([], dtype=t) for t in ("i8", "M8[D]", "?", "f8"))).size == 0


def _exported_shuffled(
    store: Store, table: str, exporter: JSONExporter, storage: Storage
) -> Manifest:
    """Export after rewriting ``table`` in a random order (the order a store happens to hold)."""
    store.rows(f"CREATE TABLE shuffled AS SELECT * FROM {table} ORDER BY random()")
    store.rows(f"DELETE FROM {table}")
    store.rows(f"INSERT INTO {table} SELECT * FROM shuffled")
    store.rows("DROP TABLE shuffled")
    assert all(result.ok for result in exporter.export_all().values())
    return manifest_of(storage)


@pytest.mark.parametrize("storage", ["local"], indirect=True)
def test_a_shuffled_store_exports_its_contracts_in_order_and_rounded(
    storage: Storage, small_store: Store, make_small_exporter
) -> None:
    manifest = _exported_shuffled(small_store, "option_quotes", make_small_exporter(), storage)
    fields = [*CONTRACT_PRECISION, "volume", "open_interest"]
    for ticker, key in manifest.chains.items():
        doc = orjson.loads(storage.get(key).data)
        stored = small_store.rows(
            f"SELECT strftime(expiration, '%Y-%m-%d'), \"right\", {', '.join(fields)} "
            "FROM option_quotes WHERE ticker = ? AND as_of = (SELECT max(as_of) FROM "
            'chain_snapshots WHERE ticker = ?) ORDER BY expiration, "right", strike',
            [ticker, ticker],
        )
        got = contracts_of(doc)
        assert len(got) == len(stored) == doc["count"] > 0
        for row, (expiration, right, *values) in zip(got, stored, strict=True):
            assert (row["expiration"], row["right"]) == (expiration, right)
            for name, value in zip(fields, values, strict=True):
                precision = CONTRACT_PRECISION.get(name)
                expected = precision.apply(value) if precision and value is not None else value
                assert row[name] == expected, (ticker, name, value)


@pytest.mark.parametrize("storage", ["local"], indirect=True)
def test_a_shuffled_store_exports_each_history_by_day(
    storage: Storage, small_store: Store, make_small_exporter
) -> None:
    manifest = _exported_shuffled(small_store, "daily_history", make_small_exporter(), storage)
    for ticker, key in manifest.histories.items():
        doc = orjson.loads(storage.get(key).data)
        stored = small_store.rows(
            "SELECT strftime(close_at, '%Y-%m-%dT%H:%M:%SZ') FROM daily_history "
            "WHERE ticker = ? AND day >= ? AND day < (SELECT max(day) FROM daily_history "
            "WHERE ticker = ?) ORDER BY day",
            [ticker, doc["since"], ticker],
        )
        closes = [row["close_at"] for row in fmt.history_rows(doc["columns"])]
        assert closes == [c for (c,) in stored] and doc["count"] > 1, ticker
