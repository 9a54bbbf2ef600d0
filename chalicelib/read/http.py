"""The Chalice adapter: API key, parameters, ETags, caching headers, CORS and error statuses.

What a route answers comes from the read service (``service.py``); this module only turns
requests into calls and results into responses. ETags are weak: the data under one ETag is
identical, while ``age_seconds`` keeps counting. Errors map here, in one place, to 400 / 401 /
404 / 405, and to 503 when the storage does not answer and nothing read before can stand in, or
when the published documents are of another format (an upgrade before its first export);
anything unexpected is logged and answered with a JSON 500 that names no internals. Every error
body has one shape: ``{"error", "message", "details": [{"field", "message"}]}``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable, Mapping
from functools import cache, lru_cache
from typing import Any

import orjson
from chalice.app import CORSConfig, Request, Response

from chalicelib import catalogue
from chalicelib.config import ReadSettings, load_read_settings
from chalicelib.errors import (
    BadRequest,
    DocumentsUpgrading,
    NotFound,
    OCDError,
    StorageUnavailable,
)
from chalicelib.logs import log_event
from chalicelib.read import params as p
from chalicelib.read import service
from chalicelib.read.compression import Part
from chalicelib.read.responses import JSON, body_response, error
from chalicelib.read.routes import DOCUMENT_ROUTES, ROUTES

CACHE_CONTROL = "no-cache"  # always revalidate: the ETag makes that cheap
METHODS = ["GET", "HEAD"]  # HEAD: the same headers, and the servers drop the body
EXPOSED_HEADERS = ["ETag", "X-Data-Source"]


class Unauthorized(OCDError):
    def __init__(self, message: str, field: str = "x-api-key") -> None:
        self.details = [{"field": field, "message": message}]
        super().__init__(message)


def cors_config(origin: str | None) -> CORSConfig | None:
    """Chalice's CORS for every route when ``OCD_CORS_ORIGIN`` is set: it answers preflights
    (allowing ``x-api-key`` and ``If-None-Match``) and adds the origin to every response.
    Chalice fixes route configuration at import, so ``app.py`` reads this one variable then."""
    if not origin:
        return None
    return CORSConfig(
        allow_origin=origin,
        allow_headers=["X-Api-Key", "If-None-Match"],
        expose_headers=EXPOSED_HEADERS,
        max_age=600,
    )


def handle(request: Request, name: str) -> Response:
    """Serve data route ``name`` for ``request``; never raises."""
    try:
        settings = _settings()
        check_api_key(settings, request.headers)
        route = ROUTES[name]
        query = p.parse(route.params, _query(request), request.uri_params)
        body = service.data_body(route, query, service.reader_for(settings))
        return _respond(request, body.head, body.tail, body.version, body.source)
    except Exception as exc:
        return error_response(exc)


def handle_document(request: Request, name: str) -> Response:
    """Serve document route ``name`` (the Atom feed): its bytes, an ETag of its content."""
    try:
        settings = _settings()
        route = DOCUMENT_ROUTES[name]
        query = p.parse(route.params, _query(request))
        token = getattr(query, "token", None)
        if token is not None:  # the feed's own token stands in for the key, and only here
            check_feed_token(settings, token)
        else:
            check_api_key(settings, request.headers)
        data, loaded = route.handler(service.reader_for(settings))
        part, digest = _document_part(data)
        return _respond(request, b"", part, f"{name}|{digest}", loaded.source, route.media_type)
    except Exception as exc:
        return error_response(exc)


def health(request: Request) -> Response:
    """Freshness for anyone; storage, exports and the last error only with the key (when one
    is configured): those name buckets, paths and raw error text."""
    try:
        settings = _settings()
        _no_query(request)
        body = service.health_report(service.reader_for(settings), settings)
        view = "full"
        if settings.api_key is not None and not _key_ok(settings, request.headers):
            body, view = service.public_health(body), "public"
        # The status is part of the version: ok -> stale must not be answered with a 304.
        at = (body.get("last_export") or {}).get("at")
        version = f"health|{view}|{body['generation']}|{body['status']}|{body.get('source')}|{at}"
        return _respond(request, orjson.dumps(body), _EMPTY, version, body.get("source", "none"))
    except Exception as exc:
        return error_response(exc)


def openapi(request: Request) -> Response:
    """The OpenAPI document. Its module (schemas, descriptions, examples) is imported by the
    first request for it, not with the app: no data route needs it."""
    try:
        from chalicelib.read.openapi import document_bytes

        settings = _settings()
        check_api_key(settings, request.headers)
        _no_query(request)
        raw = document_bytes(secured=settings.api_key is not None)
        version = f"openapi|{hashlib.sha256(raw).hexdigest()}"
        return _respond(request, b"", _cached_part(raw), version, "latest")
    except Exception as exc:
        return error_response(exc)


@cache
def _catalogue_bytes() -> bytes:
    return orjson.dumps(catalogue.as_document())


def catalogue_document(request: Request) -> Response:
    """What every number means (labels, units, definitions): public, as it holds no data."""
    try:
        _settings()
        _no_query(request)
        raw = _catalogue_bytes()
        version = f"catalogue|{hashlib.sha256(raw).hexdigest()}"
        return _respond(request, b"", _cached_part(raw), version, "latest")
    except Exception as exc:
        return error_response(exc)


def check_feed_token(settings: ReadSettings, token: str) -> None:
    expected = settings.feed_token.get_secret_value() if settings.feed_token else None
    if expected is None or not hmac.compare_digest(token.encode(), expected.encode()):
        raise Unauthorized("wrong feed token", field="token")


def check_api_key(settings: ReadSettings, headers: Mapping[str, str]) -> None:
    if not _key_ok(settings, headers):
        raise Unauthorized("missing or wrong x-api-key header")


def _key_ok(settings: ReadSettings, headers: Mapping[str, str]) -> bool:
    if settings.api_key is None:
        return True
    given = headers.get("x-api-key") or ""
    return hmac.compare_digest(given.encode(), settings.api_key.get_secret_value().encode())


def _settings() -> ReadSettings:
    settings = load_read_settings()
    service.configure_logging(settings)
    return settings


def _no_query(request: Request) -> None:
    p.parse(p.NoParams, _query(request))


def _query(request: Request) -> dict[str, list[str]]:
    given = request.query_params
    return {name: given.getlist(name) for name in given} if given else {}


def _respond(
    request: Request, head: bytes, tail: Part, version: str, source: str, content_type: str = JSON
) -> Response:
    """200 with ``head + tail`` (gzip when accepted), or 304 when the client has it. The
    ETag is weak: the gzip and identity forms of a version share it."""
    etag = 'W/"' + hashlib.blake2b(version.encode(), digest_size=12).hexdigest() + '"'
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL, "X-Data-Source": source}
    if _matches(request.headers.get("if-none-match"), etag):
        return Response(body="", status_code=304, headers={**headers, "Vary": "Accept-Encoding"})
    return body_response(request, head, tail, headers, content_type)


_EMPTY = Part(b"")


@lru_cache(maxsize=4)
def _cached_part(raw: bytes) -> Part:
    """A constant body (the OpenAPI document, the catalogue), deflated once."""
    return Part(raw)


@lru_cache(maxsize=4)
def _document_part(data: bytes) -> tuple[Part, str]:
    """A published document's body and content digest (its ETag), once per version of it, not
    per request (the reader hands back the same cached bytes)."""
    return Part(data), hashlib.sha256(data).hexdigest()


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
    DocumentsUpgrading: (503, "documents_upgrading"),
}


def error_response(exc: Exception) -> Response:
    status, code = next(
        (mapped for kind, mapped in _STATUSES.items() if isinstance(exc, kind)),
        (500, "internal_error"),
    )
    # ``details`` names the field(s) at fault, if any.
    details = getattr(exc, "details", None) if status != 500 else None
    message = str(exc)
    headers = {}
    if status == 500:
        message = "internal error; see the service log"
        log_event("request_failed", level=logging.ERROR, error=f"{type(exc).__name__}: {exc}")
    elif isinstance(exc, DocumentsUpgrading):  # the message names formats only: sent
        headers["Retry-After"] = "60"
    elif status == 503:  # the message names buckets and keys: logged, not sent
        message = "the export storage is not answering; try again shortly"
        headers["Retry-After"] = "5"
        log_event("request_unavailable", level=logging.WARNING, error=str(exc))
    return error(status, code, message, details or [], headers)


_CHALICE_ERRORS = {405: "method_not_allowed", 415: "unsupported_media_type", 500: "internal_error"}


def uniform_errors(event: Request, get_response: Callable[[Request], Response]) -> Response:
    """Chalice middleware: the errors Chalice answers itself (a method a route does not have,
    an unhandled exception) get this API's error shape too."""
    response = get_response(event)
    body: Any = response.body
    if response.status_code in _CHALICE_ERRORS and isinstance(body, dict) and "Code" in body:
        extra = {k: v for k, v in response.headers.items() if k.lower() != "content-type"}
        message = str(body.get("Message") or "")
        if response.status_code == 500:
            message = "internal error; see the service log"
        elif response.status_code == 405:
            message = f"{message}; this route answers {extra.get('Allow', 'GET, HEAD')}"
        return error(response.status_code, _CHALICE_ERRORS[response.status_code], message,
                     headers=extra)  # fmt: skip
    return response
