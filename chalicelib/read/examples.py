"""One example answer per operation, for the OpenAPI document (trimmed to a row or two).

``tests/read/test_openapi.py`` validates each against its operation's schema, so an example
cannot drift from what the route declares.
"""

from __future__ import annotations

from typing import Any

from chalicelib import catalogue

_GENERATION = "20261127T211000Z-000042"
_AT = "2026-11-27T21:10:00Z"
META: dict[str, Any] = {
    "generation": _GENERATION,
    "generated_at": _AT,
    "age_seconds": 12.5,
    "source": "latest",
}
_ALERT = {
    "id": "a2-spy-rich",
    "scan_id": "scan_20261127T180000_ea69f3",
    "ticker": "SPY",
    "detector_name": "rich_premium",
    "score": 72.5,
    "metrics": {"iv_rank": 0.91},
    "explanation": {"why": "ATM IV in the top decile of its year"},
    "strategies": [{"name": "short_put", "dte": 30}],
    "created_at": "2026-11-27T21:01:00Z",
}
_SUMMARY = {k: _ALERT[k] for k in ("id", "ticker", "detector_name", "score", "created_at")}
_CONTRACT = {
    "strike": 690.0, "bid": 85.75, "ask": 86.2, "last": 86.06, "volume": 28,
    "open_interest": 1146, "implied_volatility": 0.3823, "delta": 0.9866, "gamma": 0.00082,
    "theta": -0.1546, "vega": 0.0366, "rho": 0.1325,
}  # fmt: skip
_EXPIRATIONS = ["2026-12-04", "2026-12-11", "2026-12-18"]

EXAMPLES: dict[str, dict[str, Any]] = {
    "health": {
        "status": "ok", **META, "stale_after_seconds": 900,
        "storage": {"backend": "local", "location": "/srv/ocd/exports"},
        "exports": {"alerts": {"kind": "alerts", "ok": True, "rows": 7, "bytes": 4210}},
        "last_export": {"ok": True, "at": _AT, "error": None, "generation": _GENERATION},
    },
    "scans_latest": {
        **META,
        "scans": [{"scan_id": "scan_20261127T180000_ea69f3", "started_at": "2026-11-27T18:00:00Z",
                   "finished_at": "2026-11-27T18:00:04Z", "status": "completed",
                   "tickers_scanned": 12, "chains_collected": 12, "alerts_generated": 3,
                   "runtime_seconds": 4.2, "errors": []}],
        "total_count": 1,
    },
    "alerts_latest": {**META, "alerts": [_ALERT], "total_count": 1},
    "alerts_summary": {**META, "alerts": [_SUMMARY], "total_count": 1},
    "alerts_query": {**META, "alerts": [_ALERT], "total_count": 1},
    "alerts_ticker": {**META, "ticker": "SPY", "alerts": [_ALERT], "total_count": 1},
    "expirations": {**META, "ticker": "SPY", "as_of": "2026-11-27T18:00:00Z",
                    "expirations": _EXPIRATIONS},
    "snapshot": {
        **META, "ticker": "SPY", "as_of": "2026-11-27T18:00:00Z", "underlying_price": 775.37,
        "expiration": "2026-12-04", "expirations": _EXPIRATIONS,
        "calls": [_CONTRACT], "puts": [{**_CONTRACT, "delta": -0.0132, "bid": 0.15, "ask": 0.24}],
    },
    "history": {
        **META, "ticker": "SPY", "days": 30,
        "history": [
            {"as_of": "2026-11-25T21:00:00Z", "close_at": "2026-11-25T21:00:00Z",
             "provisional": False, "underlying_price": 780.65, "atm_iv": 0.1612,
             "total_volume": 1840211, "total_open_interest": 20117345,
             "put_call_volume_ratio": 1.21375, "put_call_oi_ratio": 1.48021},
            {"as_of": "2026-11-27T18:00:00Z", "close_at": "2026-11-27T18:00:00Z",
             "provisional": False, "underlying_price": 775.37, "atm_iv": 0.1738,
             "total_volume": 902117, "total_open_interest": 20244108,
             "put_call_volume_ratio": 1.10211, "put_call_oi_ratio": 1.47102},
        ],
    },
    "features": {
        **META, "ticker": "SPY", "as_of": "2026-11-27T18:00:00Z",
        "features": {"underlying_price": 775.37, "atm_iv": 0.1738, "iv_rank": 41.0},
        "missing": {"next_earnings": "no upcoming earnings date in the provider's calendar"},
    },
    "tickers": {
        **META,
        "tickers": [{"ticker": "SPY", "as_of": "2026-11-27T18:00:00Z", "last_price": 775.37,
                     "atm_iv": 0.1738, "iv_rank": 41.0, "change_pct": -0.42,
                     "next_earnings": None, "alert_count": 2, "contracts": 6494,
                     "expirations": 21}],
        "total_count": 1,
        "fallbacks": [],
    },
}  # fmt: skip


def _trimmed_catalogue() -> dict[str, Any]:
    """The catalogue document with one feature and one contract field."""
    doc = catalogue.as_document()
    return {
        "conventions": {"gex": doc["conventions"]["gex"]},
        "features": {"gex_total": doc["features"]["gex_total"]},
        "contract_fields": {"theta": doc["contract_fields"]["theta"]},
    }


CATALOGUE_EXAMPLE = _trimmed_catalogue()
