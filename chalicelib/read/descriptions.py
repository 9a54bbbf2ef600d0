"""What each response field means, with its unit: from the catalogue, for the OpenAPI document.

Features and contract fields are described by :mod:`chalicelib.catalogue` (their one home);
the few fields the read side names itself (generation metadata, alert and scan fields, the
watchlist's) are described here. ``describe(field, route)`` answers both, so every field the
document lists has a description that says its unit.
"""

from __future__ import annotations

from typing import Any

from chalicelib import catalogue

_NULLABLE: dict[str, list[str]] = {
    "number": ["number", "null"],
    "integer": ["integer", "null"],
    "string": ["string", "null"],
    "date": ["string", "null"],
    "timestamp": ["string", "null"],
    "record": ["object", "null"],
    "records": ["array", "null"],
    "series": ["object", "null"],
}

# Fields of the read side's own: (name → description, unit included).
READ_FIELDS: dict[str, str] = {
    "generation": "Export generation served (the manifest's id).",
    "generated_at": "When that generation was published (UTC, ISO 8601).",
    "age_seconds": "Seconds since generated_at, at the time of the answer.",
    "source": "Where the body came from: latest documents, an archived copy, or none.",
    "total_count": "Items matching before the limit (count).",
    "ticker": "Underlying symbol.",
    "as_of": "Time of the snapshot the data belongs to (UTC, ISO 8601).",
    "expiration": "Expiration served, YYYY-MM-DD (the contract expires at the 16:00 New York "
    "close).",
    "expirations": "Listed expirations, YYYY-MM-DD, nearest first.",
    "calls": "Call contracts of the expiration, by strike.",
    "puts": "Put contracts of the expiration, by strike.",
    "days": "Calendar days of history asked for (days).",
    "history": "One row per session, oldest first: the session's close (or, for the current "
    "session, its latest snapshot).",
    "features": "The ticker's features at as_of, by name; every one is defined, with its unit, "
    "in /catalogue.json.",
    "missing": "Feature name → why its value is null.",
    "alerts": "Alerts, newest first.",
    "id": "Alert id (deterministic: the same finding is never raised twice).",
    "scan_id": "Scan (one scheduled pass) that produced the row.",
    "detector_name": "Detector that raised the alert.",
    "score": "Alert score, 0–100 (higher: stronger and rarer).",
    "created_at": "When the alert was raised (UTC, ISO 8601).",
    "metrics": "The detector's numbers behind the alert (units as in /catalogue.json).",
    "explanation": "Summary, rationale, key metrics and risk factors, in words.",
    "strategies": "Option strategies the finding suggests (not advice).",
    "scans": "Scheduled passes, newest first.",
    "started_at": "When the scan started (UTC, ISO 8601).",
    "status": "completed, partial (some tickers failed) or failed.",
    "finished_at": "When the scan finished (UTC, ISO 8601); null while it runs or if it died.",
    "tickers_scanned": "Tickers the scan looked at (count).",
    "chains_collected": "Chains the scan stored (count).",
    "alerts_generated": "Alerts the scan raised (count).",
    "runtime_seconds": "How long the scan took (seconds).",
    "errors": "What went wrong, one message per failed ticker or step.",
    "tickers": "The watchlist, one row per ticker.",
    "last_price": "Price of the underlying at as_of ($ per share).",
    "alert_count": "Alerts of the ticker in the published alerts (count); null when the alerts "
    "could not be read from the same generation.",
    "fallbacks": "Parts of the answer that could not be read from the same generation, and why.",
}
# A name that means something else in one route's answer.
ROUTE_FIELDS: dict[tuple[str, str], str] = {
    ("tickers", "expirations"): "Listed expirations (count).",
    ("tickers", "as_of"): "Time of the ticker's latest snapshot (UTC, ISO 8601).",
}


def _entry(definition: str, unit: str) -> str:
    return f"{definition} Unit: {unit}."


def _rounded(precision: catalogue.Precision) -> str:
    exact = precision.describe() == "exact"
    return "" if exact else f" Rounded to {precision.describe()}."


def describe(field: str, route: str | None = None) -> str:
    """The description of response field ``field`` (of ``route``'s answer, if given)."""
    if route is not None and (route, field) in ROUTE_FIELDS:
        return ROUTE_FIELDS[(route, field)]
    if route == "history" and field in catalogue.HISTORY_FIELD_BY_NAME:
        h = catalogue.HISTORY_FIELD_BY_NAME[field]
        return _entry(h.definition, h.unit) + _rounded(h.precision)
    if field in READ_FIELDS:
        return READ_FIELDS[field]
    if field in catalogue.CONTRACT_FIELD_BY_NAME:
        c = catalogue.CONTRACT_FIELD_BY_NAME[field]
        return _entry(c.definition, c.unit) + _rounded(c.precision)
    if field in catalogue.FEATURE_BY_NAME:
        f = catalogue.FEATURE_BY_NAME[field]
        return _entry(f.definition, f.unit)
    raise KeyError(f"no description for response field {field!r}: add it to the catalogue")


def feature_properties() -> dict[str, Any]:
    """JSON Schema properties of the ``features`` object: every catalogued feature, its
    nullable type, and its description (a structured feature's fields described too)."""
    out: dict[str, Any] = {}
    for f in catalogue.FEATURES:
        schema: dict[str, Any] = {"type": _NULLABLE[f.kind], "description": describe(f.name)}
        if f.kind == "date":
            schema["description"] += " Format: YYYY-MM-DD."
        fields = {x.name: {"description": _entry(x.definition, x.unit)} for x in f.fields}
        if fields and f.kind == "records":
            schema["items"] = {"type": "object", "properties": fields}
        elif fields:
            schema["properties"] = fields
        out[f.name] = schema
    return out
