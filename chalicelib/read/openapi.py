"""The OpenAPI 3.1 document, generated from the route table, the parameter models and the
export contracts.

Every GET operation has its HEAD twin (same parameters and statuses, no body), and an example
of what it answers (``examples.py``). The API key is declared only when one is configured:
``document(secured=...)``. The rows a route answers are the contracts' row types
(``exportformat.ContractRow``, ``HistoryRow``, ``AlertRow``, ``ScanRow``), their JSON Schemas
derived by pydantic; each field carries a ``description`` with its unit, from the catalogue
(``descriptions.py``); the features object lists every catalogued feature. Built on the first
request for it, not at import.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import orjson

from chalicelib import exportformat as fmt
from chalicelib.read import dashboard
from chalicelib.read.api import SUMMARY_FIELDS
from chalicelib.read.descriptions import describe, feature_properties
from chalicelib.read.examples import CATALOGUE_EXAMPLE, EXAMPLES
from chalicelib.read.routes import DOCUMENT_ROUTES, ROUTES
from chalicelib.read.service import PUBLIC_HEALTH


def _row(contract: Any, only: tuple[str, ...] | None = None) -> dict[str, Any]:
    """An array of the contract's rows (closed: no other field), titles dropped; ``_described``
    gives each field its description."""
    schema = fmt.json_schema(contract)
    properties = {
        name: {k: v for k, v in prop.items() if k != "title"}
        for name, prop in schema["properties"].items()
        if only is None or name in only
    }
    item = {"type": "object", "required": list(properties), "properties": properties,
            "additionalProperties": False}  # fmt: skip
    return {"type": "array", "items": item}


def _described(properties: dict[str, Any], route: str | None = None) -> dict[str, Any]:
    """``properties`` with a description on each field (copies: schemas are shared)."""
    out = {}
    for name, schema in properties.items():
        schema = dict(schema)
        if schema.get("type") == "array" and "properties" in schema.get("items", {}):
            item = dict(schema["items"])
            item["properties"] = _described(item["properties"], route)
            schema["items"] = item
        if "description" not in schema:
            schema["description"] = describe(name, route)
        out[name] = schema
    return out


META = {
    "generation": {"type": ["string", "null"], "description": "export generation served"},
    "generated_at": {"type": ["string", "null"], "format": "date-time"},
    "age_seconds": {"type": ["number", "null"], "description": "seconds since generated_at"},
    "source": {"type": "string", "enum": ["latest", "archive", "none"]},
}
_COUNT = {"type": "integer", "minimum": 0}
_STR = {"type": ["string", "null"]}
_NUM = {"type": ["number", "null"]}
_INT = {"type": ["integer", "null"]}
_TIME = {"type": "string", "format": "date-time"}
_DATES = {"type": "array", "items": {"type": "string", "format": "date"}}


def _array(required: dict[str, Any], closed: bool = False) -> dict[str, Any]:
    """An array of objects that carry at least (or, ``closed``, exactly) ``required``."""
    item = {"type": "object", "required": list(required), "properties": required}
    if closed:
        item["additionalProperties"] = False
    return {"type": "array", "items": item}


TICKERS = _array(
    {
        "ticker": {"type": "string"},
        "as_of": _STR,
        "last_price": _NUM,
        "atm_iv": _NUM,
        "iv_rank": _NUM,
        "change_pct": _NUM,
        "next_earnings": {"type": ["string", "null"], "format": "date"},
        "alert_count": {"type": ["integer", "null"], "minimum": 0},
        "contracts": _INT,
        "expirations": _INT,
    }
)
FALLBACKS = _array(
    {
        "part": {
            "type": "string",
            "enum": ["features", "alerts"],
            "description": "The part not mixed in.",
        },
        "generation": {
            **_STR,
            "description": "The only generation that part could be read from, if any.",
        },
        "source": {
            "type": "string",
            "enum": ["latest", "archive", "none"],
            "description": "Where that copy was.",
        },
        "reason": {"type": "string", "description": "What could not be read, in words."},
    },
    closed=True,
)


@lru_cache(maxsize=1)
def _data() -> dict[str, dict[str, Any]]:
    """Each route's fields (beside the metadata), the row schemas from the contracts."""
    alerts, scans = _row(fmt.AlertRow), _row(fmt.ScanRow)
    contracts, history = _row(fmt.ContractRow), _row(fmt.HistoryRow)
    return {
        "scans_latest": {"scans": scans, "total_count": _COUNT},
        "alerts_latest": {"alerts": alerts, "total_count": _COUNT},
        "alerts_summary": {"alerts": _row(fmt.AlertRow, SUMMARY_FIELDS), "total_count": _COUNT},
        "alerts_query": {"alerts": alerts, "total_count": _COUNT},
        "alerts_ticker": {"ticker": _STR, "alerts": alerts, "total_count": _COUNT},
        "expirations": {"ticker": _STR, "as_of": _STR, "expirations": _DATES},
        "snapshot": {
            "ticker": _STR, "as_of": _STR, "underlying_price": _NUM, "expiration": _STR,
            "expirations": _DATES, "calls": contracts, "puts": contracts,
        },
        "history": {"ticker": _STR, "days": _COUNT, "history": history},
        "features": {
            "ticker": _STR, "as_of": _STR,
            "features": {"type": ["object", "null"], "properties": feature_properties()},
            "missing": {"type": ["object", "null"]},
        },
        "tickers": {"tickers": TICKERS, "total_count": _COUNT, "fallbacks": FALLBACKS},
}  # fmt: skip


ERROR = {
    "type": "object",
    "required": ["error", "message", "details"],
    "properties": {
        "error": {"type": "string"},
        "message": {"type": "string"},
        "details": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}
HEALTH = {
    "type": "object",
    "required": list(PUBLIC_HEALTH),
    "description": "When an API key is configured, a request without it gets only the required "
    "fields; with it (or when none is configured), the whole report.",
    "properties": {
        "status": {
            "type": "string",
            "enum": ["ok", "stale", "empty", "degraded"],
            "description": "stale: no recent export; degraded: data is fresh, but the last "
            "export or collect failed, or the documents are of a format this reader does not "
            "read (see status_reason; quotes that stopped moving while the market is open show "
            "in market.quotes_overdue)",
        },
        "status_reason": {
            "type": ["string", "null"],
            "description": "why the status is what it is ('market closed' between sessions)",
        },
        "provider": {
            "type": ["string", "null"],
            "enum": ["synthetic", "file", "yfinance", None],
            "description": "where the quotes come from (synthetic: invented prices)",
        },
        "market": {
            "type": ["object", "null"],
            "description": "the quotes' own time and the market's state, from the writer's "
            "NYSE calendar",
            "properties": {
                "state": {"type": "string", "enum": ["open", "closed", "unknown"]},
                "quotes_as_of": {"type": "string", "format": "date-time"},
                "quotes_age_seconds": {"type": "number", "description": "seconds"},
                "quotes_overdue": {"type": "boolean"},
            },
        },
        "last_collect": {"type": ["object", "null"]},
        **{k: v for k, v in META.items() if k != "source"},
        "source": META["source"],
        "stale_after_seconds": {"type": "integer"},
        "storage": {"type": "object"},
        "exports": {"type": "object"},
        "delivery": {
            "type": ["array", "null"],
            "description": "Alert delivery per configured sink, as of the generation's export "
            "(null: the generation has no delivery status)",
            "items": {
                "type": "object",
                "required": [
                    "sink",
                    "last_success",
                    "backlog",
                    "delivered",
                    "dead",
                    "last_error",
                    "last_error_at",
                ],
                "properties": {
                    "sink": {"type": "string", "enum": ["webhook", "slack", "sns"]},
                    "last_success": {
                        "type": ["string", "null"],
                        "format": "date-time",
                        "description": "newest acknowledgement (writer's clock)",
                    },
                    "backlog": {**_COUNT, "description": "alerts not delivered yet (count)"},
                    "delivered": {**_COUNT, "description": "alerts acknowledged (count)"},
                    "dead": {**_COUNT, "description": "alerts given up on (count)"},
                    "last_error": {**_STR, "description": "newest failure, e.g. HTTP 503"},
                    "last_error_at": {"type": ["string", "null"], "format": "date-time"},
                },
            },
        },
        "last_export": {
            "type": ["object", "null"],
            "required": ["ok", "at", "error", "generation"],
            "properties": {
                "ok": {"type": "boolean"},
                "at": _TIME,
                "error": _STR,
                "generation": _STR,
            },
        },
    },
}


_ENTRY = {"type": "object", "required": ["label", "unit", "definition", "formula"]}
CATALOGUE = {
    "type": "object",
    "required": ["conventions", "features", "contract_fields"],
    "description": "Public: it describes the numbers, it holds none.",
    "properties": {
        "conventions": {"type": "object", "description": "Units and conventions every entry "
                        "follows, by topic (volatility, time, greeks, gex, …)."},
        "features": {"type": "object", "additionalProperties": _ENTRY,
                     "description": "Feature name → its entry (with its fields when "
                     "structured)."},
        "contract_fields": {"type": "object", "additionalProperties": _ENTRY,
                            "description": "Contract column → its entry (with export "
                            "precision)."},
    },
}  # fmt: skip


def _parameters(path: str, model: Any) -> list[dict[str, Any]]:
    in_path = set(re.findall(r"{(\w+)}", path))
    schema = model.model_json_schema()
    out = []
    for name, prop in schema.get("properties", {}).items():
        prop = dict(prop)
        description = prop.pop("description", None)
        prop.pop("title", None)
        if "anyOf" in prop and "type" not in prop:  # optional values: the non-null branch
            prop = next(s for s in prop.pop("anyOf") if s.get("type") != "null") | prop
        if prop.get("default", 0) is None:  # "absent", not a value of the parameter's type
            del prop["default"]
        param = {"name": name, "in": "path" if name in in_path else "query",
                 "required": name in in_path, "schema": prop}  # fmt: skip
        if description:
            param["description"] = description
        out.append(param)
    return out


def _ok(schema: dict[str, Any], example: dict[str, Any] | None = None) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": schema}
    if example is not None:
        media["example"] = example
    return {"description": "OK", "content": {"application/json": media},
            "headers": {"ETag": {"schema": {"type": "string"}},
                        "X-Data-Source": {"schema": {"type": "string"}}}}  # fmt: skip


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "Bad or unknown parameter", 401: "Missing or wrong API key",
            404: "Unknown ticker or expiration", 304: "Not modified (If-None-Match)",
            503: "Export storage not answering, and nothing read before to serve; or "
                 "documents_upgrading: the published documents are of another format (an "
                 "upgrade before its first export), until the next export"}  # fmt: skip
    out: dict[str, Any] = {}
    for code in codes:
        out[str(code)] = {"description": text[code]}
        if code != 304:
            out[str(code)]["content"] = {"application/json": {"schema": ERROR}}
    return out


def _dashboard() -> dict[str, Any]:
    """The web page and its files: public, not JSON (see ``dashboard.py``)."""
    names = sorted(name for name in dashboard.FILES if name != dashboard.INDEX)
    missing = {"description": "No such file", "content": {"application/json": {"schema": ERROR}}}

    def page(types: list[str]) -> dict[str, Any]:
        return {
            "description": "OK",
            "content": {t: {"schema": {"type": "string"}} for t in types},
            "headers": {"ETag": {"schema": {"type": "string"}}},
        }

    return {
        "/": {"get": {"operationId": "dashboard_index", "summary": "The web dashboard",
                      "responses": {"200": page(["text/html"]), **_errors(304)}}},
        "/static/{name}": {"get": {
            "operationId": "dashboard_static", "summary": "A file of the web dashboard",
            "parameters": [{"name": "name", "in": "path", "required": True,
                            "schema": {"type": "string", "enum": names}}],
            "responses": {"200": page(["text/css", "application/javascript"]),
                          **_errors(304), "404": missing}}},
    }  # fmt: skip


def _head(get: dict[str, Any]) -> dict[str, Any]:
    """The HEAD twin of a GET operation: the same statuses and headers, no body."""
    responses = {
        code: {k: v for k, v in response.items() if k != "content"}
        for code, response in get["responses"].items()
    }
    return {**get, "operationId": f"{get['operationId']}_head",
            "summary": f"{get['summary']} (headers only)", "responses": responses}  # fmt: skip


@lru_cache(maxsize=2)
def document_bytes(secured: bool = False) -> bytes:
    return orjson.dumps(document(secured))


@lru_cache(maxsize=2)
def document(secured: bool = False) -> dict[str, Any]:
    """The document; ``secured`` (``OCD_API_KEY`` is set) declares the key on every data
    route, its 401s, and ``/health``'s public view."""
    auth = (401,) if secured else ()
    paths: dict[str, Any] = {
        "/health": {"get": {"operationId": "health", "summary": "Data freshness and exports",
                            "responses": {"200": _ok(HEALTH, EXAMPLES["health"]),
                                          **_errors(304, 400, 503)}}},
        "/openapi.json": {"get": {"operationId": "openapi", "summary": "This document",
                                  "responses": {"200": _ok({"type": "object",
                                                            "required": ["openapi", "paths"]}),
                                                **_errors(304, 400, *auth)}}},
    }  # fmt: skip
    paths["/catalogue.json"] = {
        "get": {
            "operationId": "catalogue",
            "summary": "Label, unit, definition and formula of every feature and contract field",
            "responses": {"200": _ok(CATALOGUE, CATALOGUE_EXAMPLE), **_errors(304, 400)},
        }
    }
    paths.update(_dashboard())
    for route in ROUTES.values():
        data = _described(_data()[route.name], route.name)
        schema = {"type": "object", "required": [*META, *data],
                  "properties": {**_described(META), **data}}  # fmt: skip
        codes = (304, 400, *auth, 404, 503) if route.path_params else (304, 400, *auth, 503)
        paths[route.path] = {
            "get": {
                "operationId": route.name,
                "summary": route.summary,
                "parameters": _parameters(route.path, route.params),
                "responses": {"200": _ok(schema, EXAMPLES[route.name]), **_errors(*codes)},
            }
        }
    for feed in DOCUMENT_ROUTES.values():  # served as stored: a media type, not a JSON schema
        missing = {"description": "Not published yet",
                   "content": {"application/json": {"schema": ERROR}}}  # fmt: skip
        # 401 whatever the key: a wrong ?token= is refused even where no key is configured.
        paths[feed.path] = {"get": {
            "operationId": feed.name, "summary": feed.summary,
            "parameters": _parameters(feed.path, feed.params),
            "responses": {"200": {"description": "OK",
                                  "content": {feed.media_type: {"schema": {"type": "string"}}},
                                  "headers": _ok({})["headers"]},
                          **_errors(304, 400, 401, 503), "404": missing}}}  # fmt: skip
    if secured:
        for path, item in paths.items():
            item["get"]["security"] = [] if path in PUBLIC_PATHS else [{"apiKey": []}]
    for item in paths.values():
        item["head"] = _head(item["get"])
    out: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "Option Chain Dashboard API", "version": "1.0.0",
                 "description": "Reads only published JSON exports; never the database."},
        "paths": paths,
    }  # fmt: skip
    if secured:
        out["components"] = {
            "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}}
        }
    return out


PUBLIC_PATHS = frozenset({"/health", "/catalogue.json", "/", "/static/{name}"})
