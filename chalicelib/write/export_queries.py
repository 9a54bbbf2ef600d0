"""SQL that turns the store into export documents, derived from the export contracts.

The select lists come from ``exportformat``'s contracts and the catalogue's precision entries
(``rounded``): DuckDB rounds history values and the exporter serializes the result columns with
orjson. A chain's contracts leave as stored and unordered: the exporter puts them in document
order and rounds them in numpy (DuckDB's sort and per-row ``round`` were three quarters of the
query's cost). Timestamps leave as ISO 8601 UTC with ``Z``; ratios
divide with NULLIF so an empty side gives null rather than infinity; ``nullif_nan`` turns a NaN
or an infinity that still reaches the store into NULL. The rows documents (alerts, scans) and
the feature columns are built as JSON by DuckDB itself, which is the faster way for them (JSON
columns pass through without a parse); they leave as BLOB (Python ``bytes``).
"""

from __future__ import annotations

from chalicelib import catalogue
from chalicelib import exportformat as fmt

ISO = "strftime({col}, '%Y-%m-%dT%H:%M:%SZ')"
CONTRACT_FIELDS = fmt.CONTRACT_COLUMNS  # the contract's numeric fields, in the API's order


def _iso(col: str) -> str:
    return ISO.format(col=col)


def rounded(expr: str, precision: catalogue.Precision) -> str:
    """``expr`` rounded as the catalogue says, non-finite values as NULL."""
    value = f"nullif_nan({expr})"
    if precision.decimals is not None:
        return f"round({value}, {precision.decimals})" if precision.decimals else value
    if precision.significant is not None:
        digits = precision.significant - 1
        return (
            f"CASE WHEN {value} = 0 THEN 0.0 ELSE "
            f"round({value}, ({digits} - floor(log10(abs({value}))))::INTEGER) END"
        )
    return value


# Per-ticker state the exporter registers as ``tickers`` (ticker, as_of_ts, session, since).
LATEST_SNAPSHOTS = f"""
    SELECT s.ticker, {_iso("s.as_of")} AS as_of, s.as_of AS as_of_ts,
           coalesce(s.session, timezone('America/New_York', s.as_of::TIMESTAMPTZ)::DATE)
               AS session,
           s.underlying_price, s.dividend_yield, s.contracts,
           list_transform(s.expirations, lambda e: strftime(e, '%Y-%m-%d')) AS expirations,
           s.atm_iv, coalesce({_iso("f.as_of")}, '') AS features_as_of,
           f.as_of AS features_as_of_ts,
           coalesce(hash(d.day, d.close, d.atm_iv, d.as_of, d.close_at, d.provisional,
                         d.call_volume, d.put_volume, d.call_open_interest,
                         d.put_open_interest)::VARCHAR, '') AS session_hash
    FROM (
        SELECT * FROM chain_snapshots
        QUALIFY row_number() OVER (PARTITION BY ticker ORDER BY as_of DESC) = 1
    ) s
    LEFT JOIN (SELECT ticker, max(as_of) AS as_of FROM features GROUP BY ticker) f USING (ticker)
    LEFT JOIN daily_history d
        ON d.ticker = s.ticker
       AND d.day = coalesce(s.session, timezone('America/New_York', s.as_of::TIMESTAMPTZ)::DATE)
    ORDER BY s.ticker
"""

# The contracts of the ``wanted`` snapshots, as stored (the exporter orders and rounds them):
# the ticker (its ``rank`` in ``wanted``), expiration and right give the document order and
# the runs of expiration and right, the others the values.
CHAIN_COLUMNS = f"""
    SELECT w.rank, q.expiration, q."right" = 'C' AS is_call, {
    ", ".join(f"q.{f.name}" for f in catalogue.CONTRACT_FIELDS if f.name in fmt.CONTRACT_COLUMNS)
}
    FROM option_quotes q
    JOIN wanted w ON q.ticker = w.ticker AND q.as_of = w.as_of_ts
    WHERE q.as_of >= ?
"""

# Each store column a history field comes from.
_HISTORY_SOURCES = {
    "as_of": "coalesce(h.as_of, h.close_at)",
    "close_at": "h.close_at",
    "provisional": "coalesce(h.provisional, false)",
    "underlying_price": "h.close",
    "atm_iv": "h.atm_iv",
    "total_volume": "h.call_volume + h.put_volume",
    "total_open_interest": "h.call_open_interest + h.put_open_interest",
    "put_call_volume_ratio": "h.put_volume / NULLIF(h.call_volume, 0)",
    "put_call_oi_ratio": "h.put_open_interest / NULLIF(h.call_open_interest, 0)",
}


def _history_field(field: catalogue.ContractField, document: bool) -> str:
    """A history field as the history document (``document``: times as epoch seconds, ``as_of``
    null at the close) or the chain document's session row (times as ISO 8601) holds it."""
    source = _HISTORY_SOURCES[field.name]
    if field.kind == "timestamp" and document:
        value = f"CAST(floor(epoch({source})) AS BIGINT)"  # whole seconds, as ISO 8601 has
        if field.name == "as_of":
            value = f"CASE WHEN {source} = h.close_at THEN NULL ELSE {value} END"
    elif field.kind == "timestamp":
        value = _iso(source)
    elif field.kind in ("number", "integer"):
        value = rounded(source, field.precision)
    else:
        value = source
    return f"{value} AS {field.name}"


# The sessions a ticker's history document holds: its window before the chain's session, as
# stored; the exporter orders them by ticker (its ``rank`` in ``wanted``: a number, cheaper to
# fetch than the name), then ``day`` (the sort was half the query). Times leave as epoch
# seconds (formatting 1M of them as text was the query's largest cost).
HISTORY_ROWS = f"""
    SELECT w.rank, h.day, {", ".join(_history_field(f, True) for f in catalogue.HISTORY_FIELDS)}
    FROM daily_history h JOIN wanted w ON h.ticker = w.ticker
    WHERE h.day >= w.since AND h.day < w.session
"""
# What a history document is built from: it is rebuilt when any of it changes (a re-backfill
# replaces rows, a session ends) or its window moves. Row hashes are summed, not xor-ed:
# DuckDB combines the columns of one hash with xor, so an xor over rows would cancel a column
# that changed the same way in every row.
HISTORY_FINGERPRINTS = """
    SELECT t.ticker, count(h.day) AS n,
           coalesce(sum(hash(h.day, h.close, h.atm_iv, h.as_of, h.close_at, h.provisional,
                             h.call_volume, h.put_volume, h.call_open_interest,
                             h.put_open_interest)), 0)::VARCHAR AS digest
    FROM tickers t LEFT JOIN daily_history h
        ON h.ticker = t.ticker AND h.day >= t.since AND h.day < t.session
    GROUP BY t.ticker
"""
# The daily row of each chain's own session (the chain document carries it).
SESSION_ROWS = f"""
    SELECT h.ticker, {", ".join(_history_field(f, False) for f in catalogue.HISTORY_FIELDS)}
    FROM daily_history h JOIN wanted w ON h.ticker = w.ticker AND h.day = w.session
"""


# The tokens are found with ``contains`` (a substring search: an alternation of them in one
# regular expression cost as much as the rest of the query), the exponents by a regex.
def _lenient(col: str) -> str:
    tokens = " OR ".join(f"contains({col}, '{token}')" for token in ("NaN", "nan", "nf", "NF"))
    return f"({tokens} OR regexp_matches({col}, '[eE]\\+?[0-9]{{3}}'))"


# Each wanted ticker's latest features (``wanted.features_as_of_ts``), its JSON as stored, and
# whether it may hold a token strict JSON refuses (JSON columns keep NaN, infinities and numbers
# that overflow a double; the type makes it valid JSON otherwise), found on DuckDB's threads.
# The lower bound on as_of (the oldest wanted) lets DuckDB skip older row groups by their zone
# maps: the table holds every computation's features, newest last.
TICKER_FEATURES = f"""
    SELECT ticker, as_of, encode(features) AS features, encode(missing) AS missing,
           coalesce({_lenient("features")}, false) OR {_lenient("missing")} AS lenient
    FROM (
        SELECT f.ticker, {_iso("f.as_of")} AS as_of, f.features::VARCHAR AS features,
               coalesce(f.missing, '{{}}'::JSON)::VARCHAR AS missing
        FROM features f JOIN wanted w ON f.ticker = w.ticker AND f.as_of = w.features_as_of_ts
        WHERE f.as_of >= ?
    )
"""

# What ``features.json`` is built from: the latest features row of each ticker, and the oldest
# of them (which bounds the next query's scan).
LATEST_FEATURES_DIGEST = """
    SELECT count(*), coalesce(sum(hash(ticker, as_of)), 0)::VARCHAR, min(as_of) FROM (
        SELECT ticker, as_of FROM features
        QUALIFY row_number() OVER (PARTITION BY ticker ORDER BY as_of DESC) = 1
        ORDER BY ticker LIMIT ?
    )
"""
# ``features.json``: every ticker's latest scalar features, each ticker's as one JSON array
# (the exporter turns the rows into columns), from the row's ``scalars`` (~1 KB; parsing the
# whole features JSON, ~20 KB a ticker, was most of the export's fixed cost) or, for a row
# written before that column, its features. The lower bound on as_of (the oldest latest) skips
# older row groups, as for ``TICKER_FEATURES``; the table keeps every computation's.
LATEST_FEATURE_ROWS = f"""
    SELECT ticker, {_iso("as_of")} AS as_of, coalesce(missing, '{{}}'::JSON)::VARCHAR AS missing,
           to_json(json_extract(coalesce(scalars, features),
                                [{", ".join(f"'$.{name}'" for name in catalogue.SCALAR_FEATURES)}]))
               ::VARCHAR AS scalars
    FROM features
    WHERE as_of >= ?
    QUALIFY row_number() OVER (PARTITION BY ticker ORDER BY as_of DESC) = 1
    ORDER BY ticker LIMIT ?
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
