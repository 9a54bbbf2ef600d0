"""What each route answers, computed from verified export documents only.

Handlers are plain functions ``(reader, params) -> Result``: no Chalice, no HTTP. The read
service serializes a Result once per version of its documents; a handler whose body costs
something to build (a chain split into calls and puts) hands over a function instead, so a warm
request builds nothing. Errors (an unknown ticker or expiration) are raised before that.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.errors import NotFound
from chalicelib.read import params as p
from chalicelib.read.reader import ExportReader, Loaded, LruCache, Pinned

SUMMARY_FIELDS = ("id", "ticker", "detector_name", "score", "created_at")
CONTRACT_FIELDS = (
    "strike", "bid", "ask", "last", "volume", "open_interest", "implied_volatility",
    "delta", "gamma", "theta", "vega", "rho",
)  # fmt: skip


@dataclass(frozen=True)
class Result:
    data: dict[str, Any] | Callable[[], dict[str, Any]]
    loaded: Loaded
    extra_versions: tuple[str, ...] = field(default=())

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
    """Derived views of a document (e.g. a chain split by expiration), built once per version."""
    key = f"{name}|{loaded.version}"
    value = _DERIVED.get(key)
    if value is None:
        value = build()
        _DERIVED.put(key, value)
    return value


def _rows(loaded: Loaded, name: str) -> list[dict[str, Any]]:
    rows = (loaded.doc or {}).get(name)
    return rows if isinstance(rows, list) else []


def _chain(reader: ExportReader, ticker: str) -> Loaded:
    loaded = reader.chain(ticker)
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
        contracts = doc.get("contracts", [])
        index = memo(loaded, "by_expiration", lambda: _by_expiration(contracts))
        call_rows, put_rows = index.get(wanted, ((), ()))
        return {
            "ticker": q.ticker,
            "as_of": doc.get("as_of"),
            "underlying_price": doc.get("underlying_price"),
            "expiration": wanted,
            "expirations": listed,
            "calls": [{k: contracts[i].get(k) for k in CONTRACT_FIELDS} for i in call_rows],
            "puts": [{k: contracts[i].get(k) for k in CONTRACT_FIELDS} for i in put_rows],
        }

    return Result(build, loaded)


def _by_expiration(contracts: list[dict[str, Any]]) -> dict[str, tuple[list[int], list[int]]]:
    """Positions of each expiration's calls and puts: small, unlike a copy of the contracts."""
    out: dict[str, tuple[list[int], list[int]]] = {}
    for i, c in enumerate(contracts):
        calls, puts = out.setdefault(c.get("expiration"), ([], []))
        (calls if c.get("right") == "C" else puts).append(i)
    return out


def history(reader: ExportReader, q: p.HistoryParams) -> Result:
    loaded = _chain(reader, q.ticker)
    doc = loaded.doc or {}

    def build() -> dict[str, Any]:
        rows = doc.get("history", [])
        as_of = doc.get("as_of")
        if as_of and rows:
            since = (_parse_time(as_of) - timedelta(days=q.days)).strftime("%Y-%m-%dT%H:%M:%SZ")
            rows = [r for r in rows if r.get("as_of", "") > since]
        return {"ticker": q.ticker, "days": q.days, "history": rows}

    return Result(build, loaded)


def features(reader: ExportReader, q: p.TickerParams) -> Result:
    loaded = _chain(reader, q.ticker)
    doc = loaded.doc or {}
    feats = doc.get("features") or {}
    return Result(
        {
            "ticker": q.ticker,
            "as_of": feats.get("as_of", doc.get("as_of")),
            "features": feats.get("features"),
            "missing": feats.get("missing", {}),
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
        by_ticker = {} if "features" in mixed else {
            f.get("ticker"): f.get("features") or {} for f in _rows(feats, "features")
        }  # fmt: skip
        rows = []
        for row in _rows(index, "chains"):
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
                    "expirations": len(row.get("expirations") or []),
                }
            )
        return {"tickers": rows, "total_count": len(rows), "fallbacks": fallbacks}

    return Result(build, index, (feats.version, alerts_loaded.version))


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
