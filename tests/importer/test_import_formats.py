"""Importing each public format: detection, mapping and units, rejects, idempotence."""

from __future__ import annotations

import zipfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson
import pytest
from importkit import (
    DAYS,
    assert_rows_match,
    at_1545,
    cboe_csv,
    chain,
    chains,
    expected_row,
    optionsdx_txt,
    sort_quotes,
    staged,
    to_parquet,
    vendor_csv,
    without,
    write,
)

from chalicelib.domain.chain import REJECT_REASONS, ChainBatch, reject_reasons
from chalicelib.write.importer import (
    REASON,
    UnknownFormat,
    UnreadableFile,
    import_file,
    inspect,
)
from chalicelib.write.store import Store


def _import(store: Store, path: Path, ticker: str | None = None):
    return import_file(store, inspect(store, path, ticker))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("vendor.csv", "vendor"),
        ("vendor.csv.gz", "vendor"),
        ("vendor.parquet", "vendor"),
        ("cboe.csv", "cboe_datashop"),
        ("spy_eod_202603.txt", "optionsdx"),
        ("SPY.json", "ocd_chain"),
    ],
)
def test_the_format_is_told_from_the_header(store: Store, tmp_path: Path, name: str, expected: str):
    quotes = chain("SPY", DAYS[0])
    csv = write(tmp_path / "v.csv", vendor_csv(quotes))
    files = {
        "vendor.csv": lambda p: write(p, vendor_csv(quotes)),
        "vendor.csv.gz": lambda p: write(p, vendor_csv(quotes), gz=True),
        "vendor.parquet": lambda p: to_parquet(store, csv, p),
        "cboe.csv": lambda p: write(p, cboe_csv(chain("SPY", DAYS[0], as_of=at_1545(DAYS[0])))),
        "spy_eod_202603.txt": lambda p: write(p, optionsdx_txt(quotes)),
        "SPY.json": lambda p: write(p, _document(quotes)),
    }
    path = files[name](tmp_path / name)
    source = inspect(store, path)
    assert source.format.name == expected
    assert source.ticker == ("SPY" if expected == "optionsdx" else None)


def test_vendor_layout_maps_theta_per_year_and_vega_per_unit_to_ours(store: Store, tmp_path: Path):
    quotes = chains(("SPY", "AAPL"), DAYS[:2])
    report = _import(store, write(tmp_path / "vendor.csv", vendor_csv(quotes)))
    assert report.format == "vendor"
    assert report.rows == report.accepted == len(quotes)
    assert report.rejected == {}
    assert report.units == {"iv": 1.0, "theta": 365.0, "vega": 100.0, "rho": 1.0}
    assert report.snapshots == 4 and report.tickers == ["AAPL", "SPY"]
    assert report.dates == [d.isoformat() for d in DAYS[:2]]
    assert report.missing == {"rho": len(quotes)}  # the layout has none: computed when replayed
    expected = [expected_row(q, rho=False) for q in sort_quotes(quotes)]
    assert_rows_match(staged(store), expected)
    # a date alone is the 16:00 New York close
    snaps = store.rows("SELECT DISTINCT as_of FROM import_snapshots ORDER BY 1")
    assert [a for (a,) in snaps] == [datetime(2026, 3, 2, 21), datetime(2026, 3, 3, 21)]


def test_a_time_in_the_file_is_new_york_time(store: Store, tmp_path: Path):
    quotes = chain("SPY", DAYS[0])
    text = vendor_csv(quotes).replace(",03/02/2026,", ",03/02/2026 15:30,")
    report = _import(store, write(tmp_path / "vendor.csv", text))
    assert report.accepted == len(quotes)
    assert store.rows("SELECT as_of FROM import_snapshots") == [(datetime(2026, 3, 2, 20, 30),)]


def test_gzip_and_parquet_stage_what_the_plain_csv_does(tmp_path: Path):
    quotes = chains(("SPY",), DAYS[:2])
    text = vendor_csv(quotes)
    results = []
    for name in ("plain.csv", "packed.csv.gz", "typed.parquet"):
        with Store(tmp_path / name / "ocd.duckdb") as store:
            csv = write(tmp_path / "source.csv", text)
            if name.endswith(".gz"):
                path = write(tmp_path / name / name, text, gz=True)
            elif name.endswith(".parquet"):
                path = to_parquet(store, csv, tmp_path / name / name)
            else:
                path = csv
            report = _import(store, path)
            assert report.accepted == len(quotes), name
            results.append(staged(store))
    assert_rows_match(results[1], results[0])
    assert_rows_match(results[2], results[0])


def test_cboe_datashop_is_read_at_its_1545_calculation_snapshot(store: Store, tmp_path: Path):
    day = DAYS[1]
    quotes = chain("SPX", day, spot=5800.0, as_of=at_1545(day))
    untraded = [without(quotes[0], volume=0, last=None)]
    text = cboe_csv(untraded + quotes[1:], symbol="^SPX")
    report = _import(store, write(tmp_path / "cboe.csv", text))
    assert report.accepted == len(quotes) and report.tickers == ["SPX"]  # "^SPX" → "SPX"
    assert report.units == {"iv": 1.0, "theta": 1.0, "vega": 1.0, "rho": 1.0}
    assert report.missing == {}
    expected = [expected_row(q) for q in sort_quotes(untraded + quotes[1:])]
    assert_rows_match(staged(store), expected)  # close 0 without trades → last missing
    as_of, spot = store.rows("SELECT as_of, underlying_price FROM import_snapshots")[0]
    assert as_of == datetime(2026, 3, 3, 20, 45)  # 15:45 New York (EST)
    assert spot == 5800.0  # the active underlying price, not the EOD quotes


def test_optionsdx_wide_rows_are_melted_without_open_interest(store: Store, tmp_path: Path):
    quotes = chains(("QQQ",), DAYS[:2])
    path = write(tmp_path / "qqq_eod_202603.txt", optionsdx_txt(quotes))
    report = _import(store, path)
    assert report.format == "optionsdx" and report.tickers == ["QQQ"]  # from the file name
    assert report.accepted == len(quotes)
    expected = [expected_row(q, open_interest=False) for q in sort_quotes(quotes)]
    assert_rows_match(staged(store), expected)
    assert store.rows("SELECT count(open_interest) FROM import_quotes")[0][0] == 0  # null, not 0


def test_a_ticker_option_names_the_rows_of_a_format_without_one(store: Store, tmp_path: Path):
    quotes = chains(("IWM",), DAYS[:1])
    path = write(tmp_path / "2026-03.txt", optionsdx_txt(quotes))
    with pytest.raises(UnknownFormat, match="pass --ticker"):
        inspect(store, path)  # "2026" is no ticker
    report = import_file(store, inspect(store, path, ticker="iwm"))
    assert report.tickers == ["IWM"]


def test_our_own_export_documents_round_trip_exactly(store: Store, tmp_path: Path):
    quotes = chain("SPY", DAYS[2])
    quotes[3:5] = [without(q, implied_volatility=None, delta=None, open_interest=None)
                   for q in quotes[3:5]]  # fmt: skip
    report = _import(store, write(tmp_path / "SPY.json", _document(quotes, dividend_yield=0.013)))
    assert report.format == "ocd_chain" and report.accepted == len(quotes)
    assert report.units == {"iv": 1.0, "theta": 1.0, "vega": 1.0, "rho": 1.0}
    assert report.missing == {"delta": 2, "implied_volatility": 2}
    assert_rows_match(staged(store), [expected_row(q) for q in sort_quotes(quotes)])
    assert store.rows("SELECT dividend_yield, as_of FROM import_snapshots") == [
        (0.013, datetime(2026, 3, 4, 21))
    ]


def test_units_are_checked_against_the_pricing_core(store: Store, tmp_path: Path):
    """A vendor file with theta per day, vega per point and IV in percent is read right."""
    quotes = chains(("SPY",), DAYS[:1], expiries=(30, 60, 90))
    text = vendor_csv(quotes, theta_scale=1.0, vega_scale=1.0, iv_scale=100.0)
    report = _import(store, write(tmp_path / "odd_units.csv", text))
    assert report.units == {"iv": 100.0, "theta": 1.0, "vega": 1.0, "rho": 1.0}
    assert_rows_match(staged(store), [expected_row(q, rho=False) for q in sort_quotes(quotes)])


def test_bad_rows_are_rejected_and_counted_by_reason(store: Store, tmp_path: Path):
    good = chain("SPY", DAYS[0])
    base = vendor_csv(good[:1]).splitlines()[1].split(",")

    def row(**fields: str) -> str:
        index = {"ticker": 0, "spot": 1, "type": 5, "expiration": 6, "date": 7, "strike": 8,
                 "last": 9, "bid": 10, "ask": 11, "volume": 12, "oi": 13, "iv": 14}  # fmt: skip
        values = list(base)
        for name, value in fields.items():
            values[index[name]] = value
        return ",".join(values)

    bad = {
        "bad_right": [row(type="straddle")],
        "non_finite": [row(bid="abc"), row(iv="inf")],
        "non_positive_strike": [row(strike="0")],
        "negative_price": [row(bid="-0.10", ask="-0.05")],
        "negative_size": [row(volume="-3")],
        "bid_above_ask": [row(bid="9.00", ask="1.00")],
        "expired": [row(expiration="02/27/2026")],
        "bad_date": [row(expiration="someday")],
        "bad_ticker": [row(ticker="not a ticker")],
        "no_underlying_price": [row(ticker="NOPX", spot="")],
        "duplicate": [row()],  # the first good contract again
        "malformed_line": [",".join([*base, "one field too many"])],
    }
    extra = [line for lines in bad.values() for line in lines]
    report = _import(store, write(tmp_path / "bad.csv", vendor_csv(good, extra_rows=extra)))
    expected = {reason: len(lines) for reason, lines in bad.items()}
    assert report.rejected == expected
    assert report.accepted == len(good)
    assert report.rows == len(good) + len(extra) - 1  # the malformed line is no row
    assert_rows_match(staged(store), [expected_row(q, rho=False) for q in sort_quotes(good)])


def test_a_repeated_contract_keeps_its_most_traded_row(store: Store, tmp_path: Path):
    quotes = chain("SPX", DAYS[0], spot=5800.0)
    thin = without(quotes[4], volume=1, open_interest=5, bid=quotes[4].bid - 0.05)
    report = _import(
        store, write(tmp_path / "roots.csv", vendor_csv([*quotes[:4], thin, *quotes[4:]]))
    )
    assert report.rejected == {"duplicate": 1}
    assert_rows_match(staged(store), [expected_row(q, rho=False) for q in sort_quotes(quotes)])


def test_reimporting_a_file_adds_nothing(store: Store, tmp_path: Path):
    quotes = chains(("SPY", "AAPL"), DAYS[:3])
    path = write(tmp_path / "vendor.csv", vendor_csv(quotes))
    first = _import(store, path)
    rows = store.count("import_quotes")
    second = _import(store, path)
    assert first.accepted == rows == len(quotes)
    assert second.accepted == 0 and second.snapshots == 0
    assert second.skipped == len(quotes) and second.snapshots_skipped == 6
    assert store.count("import_quotes") == rows
    assert store.count("import_snapshots") == 6
    # a file overlapping the staged days adds only its new days
    more = chains(("SPY", "AAPL"), DAYS[2:])
    third = _import(store, write(tmp_path / "more.csv", vendor_csv(more)))
    assert third.snapshots == 2 and third.snapshots_skipped == 2
    assert store.count("import_quotes") == rows + third.accepted


def test_a_wrong_header_is_an_unknown_format(store: Store, tmp_path: Path):
    path = write(tmp_path / "prices.csv", "date,open,high,low,close\n2026-03-02,1,2,0.5,1.5\n")
    with pytest.raises(UnknownFormat) as info:
        inspect(store, path)
    message = str(info.value)
    assert "unknown format" in message and "date, open, high, low, close" in message
    assert "Cboe DataShop EOD" in message and "OptionsDX" in message
    with pytest.raises(UnknownFormat, match="empty file"):
        inspect(store, write(tmp_path / "empty.csv", ""))
    with pytest.raises(UnknownFormat, match="not an ocd chain document"):
        inspect(store, write(tmp_path / "other.json", '{"hello": "world"}'))
    with zipfile.ZipFile(tmp_path / "eod.zip", "w") as archive:
        archive.writestr("eod.csv", vendor_csv(chain("SPY", DAYS[0])))
    with pytest.raises(UnknownFormat, match="unzip it first"):
        inspect(store, tmp_path / "eod.zip")


def test_unreadable_files_raise_a_clear_error(store: Store, tmp_path: Path):
    with pytest.raises(UnreadableFile, match="No such file"):
        inspect(store, tmp_path / "missing.csv")
    broken = tmp_path / "broken.csv.gz"
    broken.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(UnreadableFile, match=r"broken\.csv\.gz"):
        inspect(store, broken)
    parquet = tmp_path / "broken.parquet"
    parquet.write_bytes(b"PAR1" + b"\x00" * 64)
    with pytest.raises(UnreadableFile, match="Parquet"):
        inspect(store, parquet)
    with pytest.raises(UnreadableFile, match="damaged JSON"):
        inspect(store, write(tmp_path / "cut.json", '{"ticker": "SPY", "contr'))


def test_the_sql_rules_are_the_collectors_rules(store: Store):
    """``REASON`` gives the reason ``reject_reasons`` gives, row by row (first rule wins)."""
    template = {
        "strike": 100.0, "bid": 1.0, "ask": 1.2, "last": 1.1, "volume": 5.0,
        "open_interest": 10.0, "implied_volatility": 0.2, "delta": 0.5, "gamma": 0.01,
        "theta": -0.02, "vega": 0.1, "rho": 0.05,
    }  # fmt: skip
    overrides = [
        {}, {"bid": np.nan}, {"ask": np.inf}, {"last": -np.inf}, {"rho": np.inf},
        {"strike": 0.0}, {"strike": -5.0}, {"bid": -0.1}, {"last": -1.0},
        {"implied_volatility": -0.1}, {"volume": -1.0}, {"open_interest": -2.0},
        {"bid": 2.0}, {"bid": 1.2}, {"last": np.nan, "delta": np.nan},
        {"strike": 0.0, "bid": 3.0}, {"bid": -1.0, "ask": -2.0},
    ]  # fmt: skip
    rights = ["C", "P", "X"]
    expirations = ["2026-03-02", "2026-03-01", "2026-04-17"]
    rows = [
        {**template, **o, "right": r, "expiration": e}
        for o in overrides
        for r in rights
        for e in expirations
    ]
    n = len(rows)
    as_of = np.datetime64("2026-03-02T21:00:00", "us")
    floats = {k: np.array([r[k] for r in rows], dtype=np.float64) for k in template}
    cols = {
        "ticker": np.full(n, "SPY", dtype=object),
        "stamp": np.full(n, as_of),
        "expiration": np.array([np.datetime64(r["expiration"], "s") for r in rows]),
        "right": np.array([r["right"] for r in rows], dtype=object),
        "i": np.arange(n),
        **floats,
    }
    snaps = {"ticker": np.array(["SPY"], dtype=object), "stamp": np.array([as_of]),
             "as_of": np.array([as_of])}  # fmt: skip
    with store.registered("rule_rows", cols), store.registered("import_snaps", snaps):
        sql_reasons = [
            reason
            for (reason,) in store.rows(
                f"SELECT {REASON} FROM (SELECT * REPLACE (CAST(expiration AS DATE) AS expiration)"
                " FROM rule_rows) r JOIN import_snaps s USING (ticker, stamp) ORDER BY r.i"
            )
        ]
    batch = ChainBatch({
        **{k: v for k, v in floats.items() if k != "volume"},
        "volume": floats["volume"].astype(np.int64),
        "ticker": cols["ticker"], "as_of": np.full(n, as_of), "expiration": cols["expiration"],
        "right": cols["right"],
    })  # fmt: skip
    keep, _ = reject_reasons(batch)
    numpy_reasons = [None if k else _first_reason(batch, i) for i, k in enumerate(keep)]
    assert sql_reasons == numpy_reasons
    assert set(filter(None, sql_reasons)) == set(REJECT_REASONS)


def _first_reason(batch: ChainBatch, i: int) -> str:
    one = batch.filter(np.arange(len(batch)) == i)
    _, counts = reject_reasons(one)
    (reason,) = counts
    return reason


def _document(quotes: list, dividend_yield: float = 0.0) -> str:
    """The shape the exporter writes for one ticker (format 2, columnar; only the fields the
    importer reads): contracts by expiration, right and strike, the first two as runs."""
    q0 = quotes[0]
    ordered = sorted(quotes, key=lambda q: (q.expiration, q.right, q.strike))
    expirations = sorted({q.expiration.isoformat() for q in quotes})
    runs: dict[str, list] = {"expiration": [], "right": []}
    for q in ordered:
        for name, value in (("expiration", expirations.index(q.expiration.isoformat())),
                            ("right", "CP".index(q.right))):  # fmt: skip
            if (
                runs[name]
                and runs[name][-1][0] == value
                and (name == "expiration" or runs["expiration"][-1][1] > 0)
            ):
                runs[name][-1][1] += 1
            else:
                runs[name].append([value, 1])
    doc = {
        "schema_version": 2,
        "kind": "chain",
        "count": len(quotes),
        "ticker": q0.ticker,
        "as_of": q0.as_of.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "underlying_price": q0.spot,
        "dividend_yield": dividend_yield,
        "columns": {
            "expiration": {"values": expirations, "runs": runs["expiration"]},
            "right": {"values": ["C", "P"], "runs": runs["right"]},
            **{name: [getattr(q, name) for q in ordered] for name in (
                "strike", "bid", "ask", "last", "volume", "open_interest",
                "implied_volatility", "delta", "gamma", "theta", "vega", "rho")},
        },
    }  # fmt: skip
    return orjson.dumps(doc).decode()
