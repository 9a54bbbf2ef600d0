"""What each route answers, computed from verified export documents only.

Handlers are plain functions ``(reader, params) -> Result``: no Chalice, no HTTP. The read
service serializes a Result once per version of its documents; a handler whose body costs
something to build (a chain split into calls and puts) hands over a function instead, so a warm
request builds nothing. Errors (an unknown ticker or expiration) are raised before that.

Documents are columnar (``exportformat``'s contracts); the rows a route answers are made from
their columns here, in pure Python, and cached per (document digest, what was asked), so one
expiration of a large chain costs its own rows only, and only once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from chalicelib import exportformat as fmt
from chalicelib.errors import NotFound
from chalicelib.read import params as p
from chalicelib.read.reader import ExportReader, Loaded, LruCache, Pinned

SUMMARY_FIELDS = ("id", "ticker", "detector_name", "score", "created_at")
CONTRACT_FIELDS = fmt.CONTRACT_COLUMNS  # the fields of a snapshot's calls and puts
HISTORY_FIELDS = fmt.HISTORY_COLUMNS  # the fields of a history row
_SOURCE_RANK = {"none": 0, "archive": 1, "latest": 2}


class Result(NamedTuple):  # not a dataclass: see ``reader.Loaded``
    data: dict[str, Any] | Callable[[], dict[str, Any]]
    loaded: Loaded
    extra_versions: tuple[str, ...] = ()

    def build(self) -> dict[str, Any]:
        return self.data() if callable(self.data) else self.data


Handler = Callable[[ExportReader, Any], Result]


class Unknown(NotFound):
    """A well-formed request for something the export does not hold; ``field`` names what."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.details = [{"field": field, "message": message}]
        super().__init__(message)


def _unknown_ticker(ticker: str) -> Unknown:
    return Unknown("ticker", f"unknown ticker {ticker}: it is not in the published export")


_DERIVED = LruCache(max_items=256)


def memo(loaded: Loaded, name: str, build: Callable[[], Any]) -> Any:
    """Derived views of a document (e.g. one expiration's rows), built once per document
    digest (a document a later generation kept is the same bytes: so are its views)."""
    key = f"{name}|{loaded.digest}"
    value = _DERIVED.get(key)
    if value is None:
        value = build()
        _DERIVED.put(key, value)
    return value


def _rows(loaded: Loaded, name: str) -> list[dict[str, Any]]:
    rows = (loaded.doc or {}).get(name)
    return rows if isinstance(rows, list) else []


def _columns(loaded: Loaded) -> dict[str, Any]:
    columns = (loaded.doc or {}).get("columns")
    return columns if isinstance(columns, dict) else {}


def _chain(reader: ExportReader, ticker: str, at: Pinned | None = None) -> Loaded:
    loaded = reader.chain(ticker, at)
    if loaded is None:
        raise _unknown_ticker(ticker)
    return loaded


def scans_latest(reader: ExportReader, q: p.ScansParams) -> Result:
    loaded = reader.document("scans")
    scans = _rows(loaded, "scans")
    return Result({"scans": scans[: q.limit], "total_count": len(scans)}, loaded)


def _alerts(reader: ExportReader, at: Pinned | None = None) -> tuple[Loaded, list[dict[str, Any]]]:
    loaded = reader.document("alerts", at)
    return loaded, _rows(loaded, "alerts")


def _scores_at_least(alert: dict[str, Any], min_score: float) -> bool:
    score = alert.get("score")
    return isinstance(score, int | float) and score >= min_score


def alerts_latest(reader: ExportReader, q: p.AlertsLatestParams) -> Result:
    loaded, alerts = _alerts(reader)
    hits = memo(loaded, f"alerts|{q.min_score!r}",
                lambda: [a for a in alerts if _scores_at_least(a, q.min_score)])  # fmt: skip
    return Result({"alerts": hits[: q.limit], "total_count": len(hits)}, loaded)


def alerts_summary(reader: ExportReader, q: p.AlertsSummaryParams) -> Result:
    result = alerts_latest(reader, q)
    full = result.build()
    slim = [{k: a.get(k) for k in SUMMARY_FIELDS} for a in full["alerts"]]
    return Result({**full, "alerts": slim}, result.loaded)


def alerts_query(reader: ExportReader, q: p.AlertsQueryParams) -> Result:
    loaded, alerts = _alerts(reader)
    hits = memo(
        loaded,
        f"alerts|{q.min_score!r}|{q.ticker}|{q.detector}",
        lambda: [
            a
            for a in alerts
            if _scores_at_least(a, q.min_score)
            and (q.ticker is None or a.get("ticker") == q.ticker)
            and (q.detector is None or a.get("detector_name") == q.detector)
        ],
    )
    return Result({"alerts": hits[: q.limit], "total_count": len(hits)}, loaded)


def alerts_for_ticker(reader: ExportReader, q: p.TickerAlertsParams) -> Result:
    at = reader.pin()  # the ticker check and the alerts from one manifest version
    if q.ticker not in reader.tickers(at):  # unknown: 404; known but quiet: an empty list
        raise _unknown_ticker(q.ticker)
    loaded, alerts = _alerts(reader, at)
    hits = [a for a in alerts if a.get("ticker") == q.ticker]
    return Result({"ticker": q.ticker, "alerts": hits[: q.limit], "total_count": len(hits)}, loaded)


def expirations(reader: ExportReader, q: p.TickerParams) -> Result:
    loaded = _chain(reader, q.ticker)
    doc = loaded.doc or {}
    return Result(
        {"ticker": q.ticker, "as_of": doc.get("as_of"), "expirations": doc.get("expirations", [])},
        loaded,
    )


def snapshot(reader: ExportReader, q: p.SnapshotParams) -> Result:
    loaded = _chain(reader, q.ticker)
    doc = loaded.doc or {}
    listed: list[str] = doc.get("expirations", [])
    wanted = q.expiration.isoformat() if q.expiration else (min(listed) if listed else None)
    if q.expiration and wanted not in listed:
        raise Unknown(
            "expiration",
            f"{q.ticker} has no expiration {wanted}; see /options/{q.ticker}/expirations",
        )

    def build() -> dict[str, Any]:
        layout = memo(loaded, "layout", lambda: fmt.chain_layout(_columns(loaded)))
        calls, puts = layout.get(wanted, (range(0), range(0)))
        return {
            "ticker": q.ticker,
            "as_of": doc.get("as_of"),
            "underlying_price": doc.get("underlying_price"),
            "expiration": wanted,
            "expirations": listed,
            "calls": memo(loaded, f"calls|{wanted}", lambda: _contracts(loaded, calls)),
            "puts": memo(loaded, f"puts|{wanted}", lambda: _contracts(loaded, puts)),
        }

    return Result(build, loaded)


def _contracts(loaded: Loaded, rows: range) -> list[dict[str, Any]]:
    columns = _columns(loaded)
    return fmt.table_rows(columns, CONTRACT_FIELDS, rows) if columns and rows else []


def history(reader: ExportReader, q: p.HistoryParams) -> Result:
    """The sessions of the history document, then the chain's own session (provisional
    until its close is collected), within ``days`` of the chain's snapshot. Both documents
    come from one manifest version; the answer says the source of the worse of the two."""
    at = reader.pin()
    chain = _chain(reader, q.ticker, at)
    daily = reader.history(q.ticker, at) or Loaded.empty()
    worse = _SOURCE_RANK[daily.source] < _SOURCE_RANK[chain.source]
    primary, other = (daily, chain) if worse else (chain, daily)

    def build() -> dict[str, Any]:
        doc = chain.doc
        if doc is None:
            return {"ticker": q.ticker, "days": q.days, "history": []}
        rows = list(memo(daily, "history", lambda: fmt.history_rows(_columns(daily))))
        session = doc.get("session")
        if isinstance(session, dict) and (not rows or rows[-1]["close_at"] < session["close_at"]):
            rows.append(session)
        as_of = doc.get("as_of")
        if as_of and rows:
            since = (_parse_time(as_of) - timedelta(days=q.days)).strftime("%Y-%m-%dT%H:%M:%SZ")
            rows = [r for r in rows if r.get("as_of", "") > since]
        return {"ticker": q.ticker, "days": q.days, "history": rows}

    return Result(build, primary, (other.version,))


def features(reader: ExportReader, q: p.TickerParams) -> Result:
    """The ticker's features document (a ticker known by its chain but not yet analysed has
    none: null features, the chain's time)."""
    at = reader.pin()
    chain = _chain(reader, q.ticker, at)
    loaded = reader.feature_set(q.ticker, at)
    doc = loaded.doc if loaded is not None else None
    if loaded is None or doc is None:
        return Result(
            {"ticker": q.ticker, "as_of": (chain.doc or {}).get("as_of"), "features": None,
             "missing": {}},
            loaded or chain,
        )  # fmt: skip
    return Result(
        {
            "ticker": q.ticker,
            "as_of": doc.get("as_of"),
            "features": memo(loaded, "features", lambda: fmt.expand_features(doc.get("features"))),
            "missing": doc.get("missing") or {},
        },
        loaded,
    )


def tickers(reader: ExportReader, q: p.NoParams) -> Result:
    """The watchlist, composed of three documents: the chain index (the rows, and the
    response's generation), features and alerts. A part that could only be read from another
    generation (its latest damaged, its archive gone) is not mixed in: its fields are null and
    ``fallbacks`` says which part, from which generation, and why. All three are read under
    one manifest version, even when the writer publishes meanwhile."""
    at = reader.pin()
    index = reader.document("chains", at)
    feats = reader.document("features", at)
    alerts_loaded, alerts = _alerts(reader, at)
    fallbacks = [
        _fallback(name, part, index)
        for name, part in (("features", feats), ("alerts", alerts_loaded))
        if part.generation != index.generation
    ]

    def build() -> dict[str, Any]:
        mixed = {f["part"] for f in fallbacks}
        counts: dict[str, int] = {}
        for a in alerts if "alerts" not in mixed else ():
            counts[a.get("ticker", "")] = counts.get(a.get("ticker", ""), 0) + 1
        by_ticker = {} if "features" in mixed else _scalar_features(feats)
        rows = []
        for row in memo(index, "index", lambda: _index_rows(index)):
            f = by_ticker.get(row.get("ticker"), {})
            rows.append(
                {
                    "ticker": row.get("ticker"),
                    "as_of": row.get("as_of"),
                    "last_price": row.get("underlying_price"),
                    "atm_iv": f.get("atm_iv", row.get("atm_iv")),
                    "iv_rank": f.get("iv_rank"),
                    "change_pct": f.get("change_pct"),
                    "next_earnings": f.get("next_earnings"),
                    "alert_count": None
                    if "alerts" in mixed
                    else counts.get(row.get("ticker", ""), 0),
                    "contracts": row.get("contracts"),
                    "expirations": row.get("expirations"),
                }
            )
        return {"tickers": rows, "total_count": len(rows), "fallbacks": fallbacks}

    return Result(build, index, (feats.version, alerts_loaded.version))


_INDEX_FIELDS = ("ticker", "as_of", "underlying_price", "atm_iv", "expirations", "contracts")
_TICKER_FEATURES = ("atm_iv", "iv_rank", "change_pct", "next_earnings")


def _index_rows(index: Loaded) -> list[dict[str, Any]]:
    columns = _columns(index)
    return fmt.table_rows(columns, _INDEX_FIELDS) if columns else []


def _scalar_features(feats: Loaded) -> dict[str, dict[str, Any]]:
    """ticker -> the features ``/tickers`` shows, from the columns of ``features.json``."""
    doc = feats.doc or {}
    tickers, columns = doc.get("tickers") or [], doc.get("columns") or {}
    shown = [name for name in _TICKER_FEATURES if name in columns]
    return {ticker: {name: columns[name][i] for name in shown} for i, ticker in enumerate(tickers)}


def _fallback(name: str, part: Loaded, primary: Loaded) -> dict[str, Any]:
    shown = (
        "iv_rank, change_pct and next_earnings are null and atm_iv comes from the chain index"
        if name == "features"
        else "alert_count is null"
    )
    found = f"only generation {part.generation}'s" if part.generation else "no copy"
    return {
        "part": name,
        "generation": part.generation,
        "source": part.source,
        "reason": f"{name}.json of generation {primary.generation} could not be read and "
        f"{found} could; not mixed in: {shown}",
    }


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
