"""SQL that turns the store into export documents. DuckDB builds the JSON (no per-row Python).

Timestamps leave as ISO 8601 UTC with ``Z``; ratios divide with NULLIF so an empty side gives
null rather than infinity. JSON leaves as BLOB (Python ``bytes``: no decode and re-encode). A
NaN or infinity that still reaches the store comes out as DuckDB's ``NaN`` / ``Infinity``; the
exporter turns those into null (``exportformat.strict_json``), so the common case costs no SQL.
"""

from __future__ import annotations

ISO = "strftime({col}, '%Y-%m-%dT%H:%M:%SZ')"


def _iso(col: str) -> str:
    return ISO.format(col=col)


LATEST_SNAPSHOTS = f"""
    SELECT s.ticker, {_iso("s.as_of")} AS as_of, s.as_of AS as_of_ts, s.underlying_price,
           s.dividend_yield, s.contracts,
           list_transform(s.expirations, lambda e: strftime(e, '%Y-%m-%d')) AS expirations,
           s.atm_iv, coalesce({_iso("f.as_of")}, '') AS features_as_of
    FROM (
        SELECT * FROM chain_snapshots
        QUALIFY row_number() OVER (PARTITION BY ticker ORDER BY as_of DESC) = 1
    ) s
    LEFT JOIN (SELECT ticker, max(as_of) AS as_of FROM features GROUP BY ticker) f USING (ticker)
    ORDER BY s.ticker
"""

CONTRACT_FIELDS = (
    "strike",
    "bid",
    "ask",
    "last",
    "volume",
    "open_interest",
    "implied_volatility",
    "delta",
    "gamma",
    "theta",
    "vega",
    "rho",
)

# Ordering the aggregate by one precomputed key is about twice as fast as by three columns.
CHAIN_CONTRACTS = f"""
    SELECT q.ticker, encode(to_json(list(struct_pack(
               expiration := strftime(q.expiration, '%Y-%m-%d'),
               "right" := q."right",
               {", ".join(f"{f} := q.{f}" for f in CONTRACT_FIELDS)}
           ) ORDER BY q.position))::VARCHAR) AS contracts
    FROM (
        SELECT q.*, row_number() OVER (ORDER BY q.ticker, q.expiration, q.strike, q."right")
               AS position
        FROM option_quotes q
        JOIN wanted w ON q.ticker = w.ticker AND q.as_of = w.as_of_ts
        WHERE q.as_of >= ?
    ) q
    GROUP BY q.ticker
"""

# One row per session from the daily aggregates (they outlive the hot store's chains): stamped
# with the snapshot it came from, or the session's real close (New York, DST-aware, early
# closes) for backfilled rows; ``provisional`` until the session's close has been collected.
CHAIN_HISTORY = f"""
    SELECT ticker, encode(to_json(list(struct_pack(
               as_of := {_iso("coalesce(as_of, close_at)")}, close_at := {_iso("close_at")},
               provisional := provisional, underlying_price := close, atm_iv := atm_iv,
               total_volume := call_volume + put_volume,
               total_open_interest := call_open_interest + put_open_interest,
               put_call_volume_ratio := put_volume / NULLIF(call_volume, 0),
               put_call_oi_ratio := put_open_interest / NULLIF(call_open_interest, 0)
           ) ORDER BY day))::VARCHAR) AS history
    FROM daily_history
    WHERE ticker IN (SELECT ticker FROM wanted) AND day >= ?::DATE
    GROUP BY ticker
"""

LATEST_FEATURES = f"""
    SELECT ticker, encode(to_json(struct_pack(
               ticker := ticker, as_of := {_iso("as_of")}, features := features,
               missing := coalesce(missing, '{{}}'::JSON)))::VARCHAR) AS doc
    FROM features
    QUALIFY row_number() OVER (PARTITION BY ticker ORDER BY as_of DESC) = 1
    ORDER BY ticker
"""

ALERTS = f"""
    SELECT count(*) AS n, encode(coalesce(to_json(list(struct_pack(
               id := id, scan_id := scan_id, ticker := ticker, detector_name := detector_name,
               score := score, metrics := metrics, explanation := explanation,
               strategies := strategies, created_at := {_iso("created_at")}
           ) ORDER BY created_at DESC, score DESC, id)), '[]')::VARCHAR) AS rows
    FROM alerts WHERE score >= ?
"""

SCANS = f"""
    SELECT count(*) AS n, encode(coalesce(to_json(list(struct_pack(
               scan_id := scan_id, started_at := {_iso("started_at")},
               finished_at := {_iso("finished_at")}, status := status,
               tickers_scanned := tickers_scanned, chains_collected := chains_collected,
               alerts_generated := alerts_generated, runtime_seconds := runtime_seconds,
               errors := coalesce(errors, [])
           ) ORDER BY started_at DESC, scan_id DESC)), '[]')::VARCHAR) AS rows
    FROM scans WHERE started_at >= ?
"""
