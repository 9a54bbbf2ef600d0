"""The catalogue of meaning is complete and exact: every feature ``compute_features`` emits and
every contract column has exactly one entry, no entry is orphaned, and structured features have
the fields the catalogue lists. It is pure Python (the read side imports it)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest
from analyticskit import AS_OF, build_chain

from chalicelib import catalogue
from chalicelib.analytics.features import (
    ContractHistory,
    DailyInputs,
    PreviousOpenInterest,
    compute_features,
)
from chalicelib.domain import calendar as cal
from chalicelib.domain.chain import CHAIN_COLUMNS, ChainBatch
from chalicelib.domain.models import FeatureSet
from chalicelib.write.export_queries import CONTRACT_FIELDS

ROOT = Path(__file__).resolve().parents[2]
STRIKES = np.arange(70.0, 131.0, 2.5)


def rich_features() -> FeatureSet:
    """A chain and history on which every feature has a value (and records carry reasons)."""
    midday = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    expiries = [date(2026, 3, 2), date(2026, 3, 20), date(2026, 4, 17), date(2026, 6, 18)]
    call_oi = np.where(STRIKES >= 102.5, 5000.0, 100.0)
    put_oi = np.where(STRIKES <= 97.5, 5000.0, 100.0)
    call_volume = np.where(STRIKES == 110.0, 20_000, 50)
    chain = build_chain(
        as_of=midday,
        expiries=expiries,
        strikes=STRIKES,
        sigma=lambda k, t: 0.22 - 0.12 * np.log(k / 100.0) + 0.03 * np.sqrt(t),
        call_oi=call_oi,
        put_oi=put_oi,
        call_volume=call_volume,
    )
    n = 260
    rng = np.random.default_rng(2)
    days = np.array(cal.last_trading_days(date(2026, 2, 27), n), dtype="datetime64[D]")
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    history = DailyInputs(days, closes, rng.uniform(0.15, 0.3, n), rng.normal(-0.05, 0.01, n))
    hit = (chain["strike"] == 110.0) & (chain["right"] == "C")
    exp = chain["expiration"][hit].astype("datetime64[D]")[:-1]  # the last: too little history
    contracts = ContractHistory(
        np.repeat(exp, 6), np.full(exp.size * 6, 110.0), np.ones(exp.size * 6, bool),
        np.tile([40.0, 55, 61, 38, 47, 52], exp.size),
    )  # fmt: skip
    previous = PreviousOpenInterest(
        datetime(2026, 2, 27, 21, 0, tzinfo=UTC),
        chain["expiration"].astype("datetime64[D]"),
        chain["strike"],
        chain["right"] == "C",
        chain["open_interest"] - 25.0,
    )
    return compute_features(
        chain,
        100.0,
        midday,
        history,
        contracts,
        previous_oi=previous,
        next_earnings=date(2026, 4, 30),
        rate=0.0,
    )


def sparse_features() -> list[FeatureSet]:
    """Chains on which much is unsupported: the names must still all be there."""
    no_oi = build_chain(strikes=STRIKES, call_oi=np.nan, put_oi=np.nan)
    narrow = build_chain(strikes=[99.0, 100.0, 101.0], call_oi=0.0, put_oi=0.0)
    expired = build_chain(expiries=[date(2026, 2, 27)])
    return [
        compute_features(ChainBatch.empty(), 100.0, AS_OF, DailyInputs.empty(), ticker="X"),
        compute_features(no_oi, 100.0, AS_OF, DailyInputs.empty(), rate=0.0),
        compute_features(narrow, 100.0, AS_OF, DailyInputs.empty(), rate=0.0),
        compute_features(expired, 100.0, AS_OF, DailyInputs.empty(), rate=0.0),
        compute_features(build_chain(), float("nan"), AS_OF, DailyInputs.empty(), rate=0.0),
    ]


NAMES = {f.name for f in catalogue.FEATURES}


def test_names_are_unique() -> None:
    for entries in (catalogue.FEATURES, catalogue.CONTRACT_FIELDS):
        counts = Counter(e.name for e in entries)
        assert [n for n, c in counts.items() if c > 1] == []
    for f in catalogue.FEATURES:
        assert len({x.name for x in f.fields}) == len(f.fields), f.name


def test_every_emitted_feature_has_one_entry_and_none_is_orphaned() -> None:
    rich = rich_features()
    assert set(rich.values) == NAMES
    # every entry is really computed on the rich chain: no name only ever null
    assert {n for n, v in rich.values.items() if v is None} == set()
    for fs in sparse_features():
        assert set(fs.values) == NAMES
        nulls = {n for n, v in fs.values.items() if v is None}
        assert nulls == set(fs.missing), "a null needs a reason and only nulls have one"
        assert all(isinstance(r, str) and r for r in fs.missing.values())


def test_structured_features_have_the_catalogued_fields() -> None:
    values = rich_features().values
    seen_optional: set[tuple[str, str]] = set()
    for entry in catalogue.FEATURES:
        value = values[entry.name]
        required = {f.name for f in entry.fields if not f.optional}
        allowed = {f.name for f in entry.fields}
        if entry.kind in ("record", "series"):
            assert isinstance(value, dict), entry.name
            rows = [value]
        elif entry.kind == "records":
            assert isinstance(value, list) and value, entry.name
            rows = value
        else:
            assert not entry.fields, entry.name
            assert not isinstance(value, dict | list), entry.name
            continue
        for row in rows:
            assert required <= set(row) <= allowed, (entry.name, set(row) ^ allowed)
            seen_optional |= {(entry.name, k) for k in set(row) - required}
    optional = {(e.name, f.name) for e in catalogue.FEATURES for f in e.fields if f.optional}
    assert seen_optional == optional  # the rich chain shows each optional field too


def test_kinds_match_the_values() -> None:
    values = rich_features().values
    python_type = {"number": float, "integer": int, "string": str, "date": str, "timestamp": str}
    for entry in catalogue.FEATURES:
        if entry.kind in python_type:
            expected = python_type[entry.kind]
            value = values[entry.name]
            assert isinstance(value, expected) and not isinstance(value, bool), entry.name


def test_every_contract_column_has_one_entry() -> None:
    names = {c.name for c in catalogue.CONTRACT_FIELDS}
    assert names == set(CHAIN_COLUMNS)
    assert set(CONTRACT_FIELDS) | {"expiration", "right"} <= names  # what the export serves


def test_units_follow_the_conventions() -> None:
    field = catalogue.CONTRACT_FIELD_BY_NAME
    assert field["implied_volatility"].unit == "fraction"
    assert field["theta"].unit == "$ per calendar day"
    assert field["vega"].unit == "$ per vol point" and field["rho"].unit == "$ per rate point"
    assert catalogue.feature("gex_total").unit == "$ per 1 % move"
    assert "dealers long the calls and short the puts" in catalogue.CONVENTIONS["gex"]
    for entry in catalogue.FEATURES:
        assert entry.unit and entry.definition and entry.formula and entry.label, entry.name


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("bid", 1.23456, 1.23),
        ("ask", 0.005, 0.01),
        ("implied_volatility", 0.2345678, 0.23457),
        ("delta", 0.123456789, 0.123457),
        ("gamma", 0.000123456789, 0.000123457),
        ("theta", -12.3456789, -12.3457),
        ("volume", 12.0, 12.0),
        ("implied_volatility", float("nan"), None),
    ],
)
def test_export_precision(name: str, value: float, expected: float | None) -> None:
    assert catalogue.CONTRACT_FIELD_BY_NAME[name].precision.apply(value) == expected


def test_the_document_is_json_and_the_module_pure_python() -> None:
    document = catalogue.as_document()
    text = json.dumps(document, ensure_ascii=False)
    assert set(json.loads(text)["features"]) == NAMES
    assert document["contract_fields"]["gamma"]["precision"] == "6 significant digits"
    probe = (
        "import sys, chalicelib.catalogue; "
        "print(sorted({'numpy', 'duckdb', 'pydantic'} & set(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
