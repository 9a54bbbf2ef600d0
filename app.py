"""Chalice entry point: routes and schedules only; all logic lives in chalicelib.

Two settings are read here, at import, because Chalice fixes them when it declares routes and
schedules: the schedule rates and ``OCD_CORS_ORIGIN`` (CORS on every route). Everything else is
read per invocation (``chalicelib/config.py`` says why).

Everything this import creates (modules, route tables, pydantic schemas) lives as long as the
process, so the garbage collector is paused while it runs (its passes would find next to
nothing to free) and what it built is frozen at the end: no later collection scans it again.
"""

# ruff: noqa: E402 - the imports come after the collector is paused
from __future__ import annotations

import gc

_COLLECTING = gc.isenabled()
gc.disable()

import os
from typing import Any

from chalice import Chalice, Rate, Response
from chalice.app import CloudWatchEvent

from chalicelib.config import rate_minutes
from chalicelib.read import http
from chalicelib.read.routes import DOCUMENT_ROUTES, ROUTES

app = Chalice(app_name="option-chain-dashboard")
app.register_middleware(http.uniform_errors, "http")
cors = http.cors_config(os.environ.get("OCD_CORS_ORIGIN"))


def _route(path: str, name: str) -> None:
    def view(**_uri_params: str) -> Response:  # values arrive in current_request.uri_params
        return http.handle(app.current_request, name)

    view.__name__ = name
    app.route(path, methods=http.METHODS, cors=cors)(view)


for _r in ROUTES.values():
    _route(_r.path, _r.name)


def _document_route(path: str, name: str) -> None:
    def view() -> Response:
        return http.handle_document(app.current_request, name)

    view.__name__ = name
    app.route(path, methods=http.METHODS, cors=cors)(view)


for _d in DOCUMENT_ROUTES.values():
    _document_route(_d.path, _d.name)


@app.route("/health", methods=http.METHODS, cors=cors)
def health() -> Response:
    return http.health(app.current_request)


@app.route("/openapi.json", methods=http.METHODS, cors=cors)
def openapi() -> Response:
    return http.openapi(app.current_request)


@app.route("/catalogue.json", methods=http.METHODS, cors=cors)
def catalogue() -> Response:
    return http.catalogue_document(app.current_request)


# The dashboard's module is imported by its own routes: no data route needs it.
@app.route("/", methods=http.METHODS, cors=cors)
def dashboard_index() -> Response:
    from chalicelib.read import dashboard

    return dashboard.index(app.current_request)


@app.route("/static/{name}", methods=http.METHODS, cors=cors)
def dashboard_static(name: str) -> Response:
    from chalicelib.read import dashboard

    return dashboard.static(app.current_request, name)


# The writer's glue is imported by the scheduled functions themselves, not with the API.
@app.schedule(
    Rate(rate_minutes("OCD_COLLECT_INTERVAL_SECONDS", 300), unit=Rate.MINUTES), name="collect"
)
def collect(event: CloudWatchEvent) -> dict[str, Any]:
    from chalicelib.write import schedules

    return schedules.collect(event.detail)


@app.schedule(
    Rate(rate_minutes("OCD_EXPORT_INTERVAL_SECONDS", 300), unit=Rate.MINUTES), name="export"
)
def export(event: CloudWatchEvent) -> dict[str, Any]:
    from chalicelib.write import schedules

    return schedules.export(event.detail)


gc.freeze()
if _COLLECTING:
    gc.enable()
