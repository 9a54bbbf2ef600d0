"""The OpenAPI 3 document, generated from the route table and the parameter models."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from chalicelib.read.http import ROUTES

META = {
    "generation": {"type": ["string", "null"], "description": "export generation served"},
    "generated_at": {"type": ["string", "null"], "format": "date-time"},
    "age_seconds": {"type": ["number", "null"], "description": "seconds since generated_at"},
    "source": {"type": "string", "enum": ["latest", "archive", "none"]},
}
_ARRAY = {"type": "array", "items": {"type": "object"}}
_COUNT = {"type": "integer", "minimum": 0}
_STR = {"type": ["string", "null"]}
DATA: dict[str, dict[str, Any]] = {
    "scans_latest": {"scans": _ARRAY, "total_count": _COUNT},
    "alerts_latest": {"alerts": _ARRAY, "total_count": _COUNT},
    "alerts_summary": {"alerts": _ARRAY, "total_count": _COUNT},
    "alerts_query": {"alerts": _ARRAY, "total_count": _COUNT},
    "alerts_ticker": {"ticker": _STR, "alerts": _ARRAY, "total_count": _COUNT},
    "expirations": {"ticker": _STR, "as_of": _STR, "expirations": {"type": "array"}},
    "snapshot": {
        "ticker": _STR, "as_of": _STR, "underlying_price": {"type": ["number", "null"]},
        "expiration": _STR, "expirations": {"type": "array"}, "calls": _ARRAY, "puts": _ARRAY,
    },
    "history": {"ticker": _STR, "days": _COUNT, "history": _ARRAY},
    "features": {
        "ticker": _STR, "as_of": _STR, "features": {"type": ["object", "null"]},
        "missing": {"type": "object"},
    },
    "tickers": {"tickers": _ARRAY, "total_count": _COUNT},
}  # fmt: skip
ERROR = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string"},
        "message": {"type": "string"},
        "details": {"type": "array", "items": {"type": "object"}},
    },
}
HEALTH = {
    "type": "object",
    "required": ["status", "generation", "generated_at", "age_seconds", "stale_after_seconds"],
    "properties": {
        "status": {"type": "string", "enum": ["ok", "stale", "empty"]},
        **{k: v for k, v in META.items() if k != "source"},
        "source": META["source"],
        "stale_after_seconds": {"type": "integer"},
        "storage": {"type": "object"},
        "exports": {"type": "object"},
    },
}


def _parameters(path: str, model: Any) -> list[dict[str, Any]]:
    in_path = set(re.findall(r"{(\w+)}", path))
    schema = model.model_json_schema()
    out = []
    for name, prop in schema.get("properties", {}).items():
        prop = dict(prop)
        description = prop.pop("description", None)
        prop.pop("title", None)
        if "anyOf" in prop:  # optional values: describe the non-null branch
            prop = next(s for s in prop.pop("anyOf") if s.get("type") != "null") | prop
        param = {"name": name, "in": "path" if name in in_path else "query",
                 "required": name in in_path, "schema": prop}  # fmt: skip
        if description:
            param["description"] = description
        out.append(param)
    return out


def _ok(schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": "OK", "content": {"application/json": {"schema": schema}},
            "headers": {"ETag": {"schema": {"type": "string"}},
                        "X-Data-Source": {"schema": {"type": "string"}}}}  # fmt: skip


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "Bad parameter", 401: "Missing or wrong API key", 404: "Unknown ticker",
            304: "Not modified (If-None-Match)"}  # fmt: skip
    out: dict[str, Any] = {}
    for code in codes:
        out[str(code)] = {"description": text[code]}
        if code != 304:
            out[str(code)]["content"] = {"application/json": {"schema": ERROR}}
    return out


@lru_cache(maxsize=1)
def document() -> dict[str, Any]:
    paths: dict[str, Any] = {
        "/health": {"get": {"operationId": "health", "summary": "Data freshness and exports",
                            "responses": {"200": _ok(HEALTH), **_errors(304)}}},
    }  # fmt: skip
    for route in ROUTES.values():
        data = DATA[route.name]
        schema = {"type": "object", "required": [*META, *data], "properties": {**META, **data}}
        codes = (304, 400, 401, 404) if "{ticker}" in route.path else (304, 400, 401)
        paths[route.path] = {
            "get": {
                "operationId": route.name,
                "summary": route.summary,
                "parameters": _parameters(route.path, route.params),
                "responses": {"200": _ok(schema), **_errors(*codes)},
            }
        }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Option Chain Dashboard API", "version": "1.0.0",
                 "description": "Reads only published JSON exports; never the database."},
        "components": {"securitySchemes": {
            "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}}},
        "paths": paths,
    }  # fmt: skip
