"""``ocd.py bench-import``: import throughput on a generated vendor-layout CSV, in a temp dir.

The file (``--rows`` contracts in the historicaloptiondata layout: a few tickers, business days,
weekly expiries, strikes around the spot) is written by DuckDB; nothing lands in the repository.
Each round imports it into a fresh database; a last round re-imports it (every snapshot already
staged). Figures are printed, never asserted.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from chalicelib.write.importer import import_file, inspect
from chalicelib.write.store import Store

TICKERS = ("SPY", 590.0), ("QQQ", 515.0), ("AAPL", 243.0), ("MSFT", 418.0)
CONTRACTS_PER_DAY = 50 * 125 * 2  # expiries × strikes × rights, per ticker

GENERATE = """
COPY (
    WITH tickers AS (SELECT * FROM (VALUES {tickers}) t(symbol, spot0)),
    days AS (SELECT range AS d, DATE '2024-01-02' + CAST(range AS INTEGER) AS day
             FROM range({days})),
    chain AS (
        SELECT symbol, round(spot0 * (1 + 0.002 * d), 2) AS spot, day,
               day + CAST(7 * (e + 1) AS INTEGER) AS expiry,
               round(spot0 * (0.5 + k * 0.008), 0) AS strike, side, e, k
        FROM tickers, days, range(50) x(e), range(125) y(k),
             (VALUES ('call'), ('put')) z(side)
    )
    SELECT symbol AS UnderlyingSymbol, spot AS UnderlyingPrice, '*' AS Exchange,
           symbol || strftime(expiry, '%y%m%d') || upper(side[1])
               || lpad(strike::INT::VARCHAR, 8, '0') AS OptionSymbol,
           '' AS OptionExt, side AS Type, strftime(expiry, '%m/%d/%Y') AS Expiration,
           strftime(day, '%m/%d/%Y') AS DataDate, strike AS Strike,
           round(1 + random() * 20, 2) AS Last, round(1 + k * 0.1, 2) AS Bid,
           round(1.1 + k * 0.1, 2) AS Ask, (random() * 1000)::INT AS Volume,
           (random() * 10000)::INT AS OpenInterest, round(0.15 + random() * 0.3, 4) AS IV,
           round(random(), 4) AS Delta, round(random() * 0.05, 4) AS Gamma,
           round(-random() * 20, 4) AS Theta, round(random() * 80, 4) AS Vega,
           symbol || k AS AKA
    FROM chain
    LIMIT {rows}
) TO '{path}' (HEADER, DELIMITER ',')
"""


def run(rows: int = 1_000_000, rounds: int = 3, keep: bool = False) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="ocd-import-bench-"))
    try:
        csv = root / "vendor.csv"
        days = -(-rows // (CONTRACTS_PER_DAY * len(TICKERS)))
        tickers = ", ".join(f"('{t}', {s})" for t, s in TICKERS)
        with Store(root / "generate.duckdb") as store:
            store.rows(GENERATE.format(tickers=tickers, days=days, rows=rows, path=csv))
        figures: dict[str, Any] = {"rows": rows, "file_mb": round(csv.stat().st_size / 1e6, 1)}
        seconds, cpu = [], []
        for n in range(rounds):
            with Store(root / f"round{n}" / "ocd.duckdb") as store:
                wall0, cpu0 = time.perf_counter(), time.process_time()
                report = import_file(store, inspect(store, csv))
                seconds.append(time.perf_counter() - wall0)
                cpu.append(time.process_time() - cpu0)
                assert report.accepted == rows, report.as_dict()
                if n == rounds - 1:
                    wall0 = time.perf_counter()
                    again = import_file(store, inspect(store, csv))
                    figures["reimport_seconds"] = round(time.perf_counter() - wall0, 3)
                    figures["reimport_accepted"] = again.accepted
        best = min(seconds)
        figures.update(
            seconds=[round(s, 3) for s in seconds],
            cpu_seconds=[round(c, 3) for c in cpu],
            best_rows_per_second=round(rows / best),
            median_rows_per_second=round(rows / statistics.median(seconds)),
        )
        if keep:
            figures["dir"] = str(root)
        return figures
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


def table(figures: dict[str, Any]) -> str:
    return "\n".join(f"{k:<24} {v}" for k, v in figures.items())
