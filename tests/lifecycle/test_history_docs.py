"""docs/history.md: the Athena DDL's columns and the DuckDB query match what the writer seals;
a sealed partition imports back without loss."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
from lifekit import SESSIONS, Life

from chalicelib import historyformat as hf
from chalicelib.config import load_settings
from chalicelib.write.importer import import_file, inspect
from chalicelib.write.store import Store

DOC = Path(__file__).resolve().parents[2] / "docs" / "history.md"
ATHENA = {"VARCHAR": "string", "TIMESTAMP WITH TIME ZONE": "timestamp", "DATE": "date",
          "DOUBLE": "double", "BIGINT": "bigint"}  # fmt: skip


def _ddl_columns() -> list[tuple[str, str]]:
    text = DOC.read_text()
    body = re.search(r"CREATE EXTERNAL TABLE ocd_chains \((.*?)\n\)\nPARTITIONED BY", text, re.S)
    assert body, "the DDL block moved"
    return [
        (name.strip("`"), kind)
        for name, kind in re.findall(r"^\s*(`?\w+`?) (\w+),?$", body.group(1), re.M)
    ]


def test_the_athena_columns_match_the_sealed_files(life: Life) -> None:
    life.session(SESSIONS[0])
    manifest = life.manifest()
    assert manifest is not None
    for f in manifest.files:
        local = life.root / f"{f.kind}.parquet"
        life.storage.get_file(f.key, local)
        con = duckdb.connect()
        try:
            described = con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(local)])
            actual = [(name, ATHENA[kind]) for name, kind, *_ in described.fetchall()]
        finally:
            con.close()
        assert _ddl_columns() == actual
        assert actual == [(n, a) for n, _, a in hf.COLUMNS]
    assert "PARTITIONED BY (`date` string)" in DOC.read_text()


def test_the_documented_duckdb_glob_reads_the_partitions(life: Life, storage) -> None:
    life.session(SESSIONS[0])
    life.session(SESSIONS[1])
    root = life.root / "copy"
    for f in life.manifest().files:
        (root / f.key).parent.mkdir(parents=True, exist_ok=True)
        storage.get_file(f.key, root / f.key)
    con = duckdb.connect()
    try:
        got = con.execute(
            f"SELECT date, count(DISTINCT ticker) FROM read_parquet('{root}/history/chains/*/"
            "*.parquet', hive_partitioning = true) GROUP BY ALL ORDER BY date"
        ).fetchall()
    finally:
        con.close()
    assert [(str(d), n) for d, n in got] == [(str(SESSIONS[0]), 2), (str(SESSIONS[1]), 2)]


def test_a_sealed_partition_imports_back_unchanged(life: Life, tmp_path: Path) -> None:
    life.session(SESSIONS[0])
    (intraday,) = [f for f in life.manifest().files if f.kind == "intraday"]
    local = tmp_path / "part.parquet"
    life.storage.get_file(intraday.key, local)
    settings = load_settings({"OCD_DATA_DIR": str(tmp_path / "replay")})
    with Store(settings.database) as store:
        report = import_file(store, inspect(store, local))
        assert report.accepted == intraday.rows and not report.rejected
        names = [c for c in hf.COLUMN_NAMES if c != "underlying_price"]
        stored = ", ".join(f'"{c}"' for c in names)
        sealed = stored.replace('"as_of"', "as_of::TIMESTAMP")  # the file's as_of: a UTC instant
        missing = store.rows(
            f"SELECT count(*) FROM (SELECT {sealed} FROM read_parquet(?) "
            f"EXCEPT SELECT {stored} FROM import_quotes)",
            [str(local)],
        )
        assert missing == [(0,)]
        spots = store.rows(
            "SELECT count(*) FROM (SELECT DISTINCT ticker, as_of::TIMESTAMP, underlying_price "
            "FROM read_parquet(?) EXCEPT SELECT ticker, as_of, underlying_price "
            "FROM import_snapshots)",
            [str(local)],
        )
        assert spots == [(0,)]
