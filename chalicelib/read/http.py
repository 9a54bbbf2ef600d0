"""HTTP glue: route table, parameters, API key, ETags, caching headers and error statuses.

Every response of a data route carries ``generation``, ``generated_at``, ``age_seconds`` and
``source``. ETags are weak: the data under one ETag is identical, while ``age_seconds`` keeps
counting. Errors map here, in one place, to 400 / 401 / 404, and to 503 when the storage does not
answer and nothing read before can stand in; anything unexpected is logged and answered with a
JSON 500 that names no internals.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from chalice.app import Request, Response

from chalicelib.config import Settings, load_settings
from chalicelib.errors import BadRequest, NotFound, OCDError, StorageUnavailable
from chalicelib.exportformat import Manifest
from chalicelib.exportstatus import ExportStatus
from chalicelib.logs import log_event
from chalicelib.read import api
from chalicelib.read import params as p
from chalicelib.read.reader import DEFAULT_CACHE_BYTES, ExportReader, LruCache
from chalicelib.storage.factory import make_storage

JSON = "application/json"
CACHE_CONTROL = "no-cache"  # always revalidate: the ETag makes that cheap


class Unauthorized(OCDError):
    def __init__(self, message: str) -> None:
        self.details = [{"field": "x-api-key", "message": message}]
        super().__init__(message)


@dataclass(frozen=True)
class Route:
    name: str
    path: str
    params: type[p.Params]
    handler: Callable[..., api.Result]
    summary: str


ROUTES: dict[str, Route] = {
    r.name: r
    for r in (
        Route("scans_latest", "/scans/latest", p.ScansParams, api.scans_latest,
              "Recent scans, newest first"),
        Route("alerts_latest", "/alerts/latest", p.AlertsLatestParams, api.alerts_latest,
              "Latest alerts, newest first"),
        Route("alerts_summary", "/alerts/latest/summary", p.AlertsSummaryParams,
              api.alerts_summary, "Latest alerts, short form"),
        Route("alerts_query", "/alerts", p.AlertsQueryParams, api.alerts_query,
              "Alerts filtered by ticker, detector and score"),
        Route("alerts_ticker", "/alerts/ticker/{ticker}", p.TickerAlertsParams,
              api.alerts_for_ticker, "Alerts of one ticker"),
        Route("expirations", "/options/{ticker}/expirations", p.TickerParams, api.expirations,
              "Listed expirations of a ticker"),
        Route("snapshot", "/options/{ticker}/snapshot", p.SnapshotParams, api.snapshot,
              "Option chain of one expiration (calls and puts)"),
        Route("history", "/options/{ticker}/history", p.HistoryParams, api.history,
              "Daily summary history of a ticker"),
        Route("features", "/features/{ticker}/latest", p.TickerParams, api.features,
              "Latest computed features of a ticker"),
        Route("tickers", "/tickers", p.NoParams, api.tickers,
              "The watchlist with last price, ATM IV, IV rank and alert count"),
    )
}  # fmt: skip

_READERS: dict[tuple[str, str, float], ExportReader] = {}
_BODIES = LruCache(max_items=512, max_weight=16 << 20)  # serialized bodies, by bytes


def reader_for(settings: Settings) -> ExportReader:
    """One reader per storage location per process, so warm requests share its cache."""
    storage = make_storage(settings)
    ttl = settings.manifest_ttl_seconds or 0.0
    key = (storage.backend, storage.location, ttl)
    if key not in _READERS:
        _READERS[key] = ExportReader(storage, manifest_ttl=ttl, max_cached_bytes=cache_budget())
    return _READERS[key]


def cache_budget() -> int:
    """Bytes of source JSON the document cache may hold: a tenth of a Lambda function's
    memory (parsed objects take 3-4x their JSON), or the reader's default elsewhere."""
    try:
        megabytes = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", ""))
    except ValueError:
        return DEFAULT_CACHE_BYTES
    return max(4 << 20, (megabytes << 20) // 10)


def handle(request: Request, name: str) -> Response:
    """Serve data route ``name`` for ``request``; never raises."""
    settings: Settings | None = None
    try:
        settings = load_settings()
        check_api_key(settings, request.headers)
        route = ROUTES[name]
        values = {**(request.query_params or {}), **(request.uri_params or {})}
        query = p.parse(route.params, values)
        result = route.handler(reader_for(settings), query)
        return _data_response(request, name, query, result, settings)
    except Exception as exc:
        return error_response(exc, settings)


def health(request: Request) -> Response:
    settings: Settings | None = None
    try:
        settings = load_settings()
        body = health_report(reader_for(settings), settings)
        # The status is part of the version: ok -> stale must not be answered with a 304.
        at = body["last_export"]["at"] if body["last_export"] else None
        version = f"health|{body['generation']}|{body['status']}|{body['source']}|{at}"
        return _respond(request, body, version, body["source"], settings)
    except Exception as exc:
        return error_response(exc, settings)


def health_report(reader: ExportReader, settings: Settings) -> dict[str, Any]:
    """Freshness of the published export (``/health`` and ``ocd.py status``)."""
    manifest = reader.manifest()
    body: dict[str, Any] = {
        "status": "empty",
        "generation": None,
        "generated_at": None,
        "age_seconds": None,
        "source": "none",
        "stale_after_seconds": settings.stale_after_seconds,
        "storage": {"backend": reader.storage.backend, "location": reader.storage.location},
        "exports": {},
    }
    if manifest is not None:
        age = (datetime.now(UTC) - manifest.generated_at).total_seconds()
        body.update(
            status="stale" if age > settings.stale_after_seconds else "ok",
            generation=manifest.generation,
            generated_at=_iso(manifest.generated_at),
            age_seconds=round(age, 1),
            source=reader.manifest_source,
            export_duration_ms=manifest.duration_ms,
            storage_writes=manifest.storage_writes,
            documents=len(manifest.documents),
            exports={k: v.model_dump() for k, v in manifest.results.items()},
        )
    body["last_export"] = last_export(manifest, reader.export_status())
    if body["last_export"] and not body["last_export"]["ok"] and body["status"] == "ok":
        body["status"] = "degraded"  # still served, but the writer is failing to publish
    return body


def last_export(manifest: Manifest | None, status: ExportStatus | None) -> dict[str, Any] | None:
    """The writer's last export: the recorded failure if it is newer than what is published,
    else the published generation (a failure the next publish superseded no longer counts)."""
    superseded = manifest is not None and status is not None and status.at < manifest.generated_at
    if status is not None and not status.ok and not superseded:
        return {"ok": False, "at": _iso(status.at), "error": status.error,
                "generation": status.generation}  # fmt: skip
    if manifest is None:
        return None
    return {"ok": True, "at": _iso(manifest.generated_at), "error": None,
            "generation": manifest.generation}  # fmt: skip


def check_api_key(settings: Settings, headers: Mapping[str, str]) -> None:
    if settings.api_key is None:
        return
    given = headers.get("x-api-key") or ""
    if not hmac.compare_digest(given.encode(), settings.api_key.get_secret_value().encode()):
        raise Unauthorized("missing or wrong x-api-key header")


def _data_response(
    request: Request, name: str, query: p.Params, result: api.Result, settings: Settings
) -> Response:
    loaded = result.loaded
    version = "|".join((name, query.model_dump_json(), loaded.version, *result.extra_versions))
    data = _BODIES.get(version)
    if data is None:
        data = orjson.dumps(result.data)
        _BODIES.put(version, data, len(data))
    age = (
        round((datetime.now(UTC) - loaded.generated_at).total_seconds(), 1)
        if loaded.generated_at
        else None
    )
    meta = {
        "generation": loaded.generation,
        "generated_at": _iso(loaded.generated_at) if loaded.generated_at else None,
        "age_seconds": age,
        "source": loaded.source,
    }
    body = orjson.dumps(meta)[:-1] + b"," + data[1:] if len(data) > 2 else orjson.dumps(meta)
    return _respond(request, body, version, loaded.source, settings)


def _respond(
    request: Request, body: dict[str, Any] | bytes, version: str, source: str, settings: Settings
) -> Response:
    etag = 'W/"' + hashlib.blake2b(version.encode(), digest_size=12).hexdigest() + '"'
    headers = {
        "ETag": etag,
        "Cache-Control": CACHE_CONTROL,
        "X-Data-Source": source,
        **_cors(settings),
    }
    if _matches(request.headers.get("if-none-match"), etag):
        return Response(body="", status_code=304, headers=headers)
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return Response(body=raw.decode(), status_code=200, headers={**headers, "Content-Type": JSON})


def _matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    tags = {t.strip() for t in header.split(",")}
    return "*" in tags or etag in tags or etag[2:] in tags


_STATUSES: dict[type[Exception], tuple[int, str]] = {
    BadRequest: (400, "bad_request"),
    Unauthorized: (401, "unauthorized"),
    NotFound: (404, "not_found"),
    StorageUnavailable: (503, "storage_unavailable"),
}


def error_response(exc: Exception, settings: Settings | None) -> Response:
    status, error = next(
        (mapped for kind, mapped in _STATUSES.items() if isinstance(exc, kind)),
        (500, "internal_error"),
    )
    # Every error has the same shape; ``details`` names the field(s) at fault, if any.
    details = getattr(exc, "details", None) if status != 500 else None
    body: dict[str, Any] = {"error": error, "message": str(exc), "details": details or []}
    headers = {"Content-Type": JSON, "Cache-Control": "no-store"}
    if status == 500:
        body["message"] = "internal error; see the service log"
        log_event("request_failed", level=logging.ERROR, error=f"{type(exc).__name__}: {exc}")
    elif status == 503:  # the message names buckets and keys: logged, not sent
        body["message"] = "the export storage is not answering; try again shortly"
        headers["Retry-After"] = "5"
        log_event("request_unavailable", level=logging.WARNING, error=str(exc))
    if settings is not None:
        headers.update(_cors(settings))
    return Response(body=orjson.dumps(body).decode(), status_code=status, headers=headers)


def _cors(settings: Settings) -> dict[str, str]:
    if not settings.cors_origin:
        return {}
    return {
        "Access-Control-Allow-Origin": settings.cors_origin,
        "Access-Control-Expose-Headers": "ETag, X-Data-Source",
        "Vary": "Origin",
    }


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def openapi(request: Request) -> Response:
    from chalicelib.read.openapi import document_bytes

    settings: Settings | None = None
    try:
        settings = load_settings()
        check_api_key(settings, request.headers)
        raw = document_bytes()
        return _respond(request, raw, f"openapi|{hashlib.sha256(raw).hexdigest()}", "latest",
                        settings)  # fmt: skip
    except Exception as exc:
        return error_response(exc, settings)
