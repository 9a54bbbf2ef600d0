"""The web dashboard: static HTML, CSS and JavaScript served by the same Chalice app.

``/`` answers ``static/index.html`` and ``/static/{name}`` one of a fixed set of files; any other
name is a JSON 404, so no request can reach another file (no path traversal). Vendored libraries
(``static/vendor/``: uPlot, pinned, with its licence) are served under flat names, as a path
parameter is one segment. Files are read once
per process. Responses carry a strong ETag (``If-None-Match`` → 304) and ``Cache-Control:
no-cache``, so browsers revalidate cheaply and pick up a deploy at once.

These routes are public on purpose: the page holds no data. It asks for the API key itself when
the data routes answer 401, so nothing here checks ``x-api-key``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from chalice.app import Request, Response

from chalicelib.read.compression import Part
from chalicelib.read.responses import EncodedResponse, body_response, error

STATIC_DIR = Path(__file__).resolve().parent / "static"
JS = "application/javascript; charset=utf-8"
FILES: dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "app.js": JS,
    "alerts.js": JS,
    "api.js": JS,
    "catalogue.js": JS,
    "charts.js": JS,
    "dom.js": JS,
    "format.js": JS,
    "ticker.js": JS,
    "uplot.js": JS,
    "uplot.css": "text/css; charset=utf-8",
}
# Where a served name lives under STATIC_DIR when not at its top (the vendored files).
PATHS: dict[str, str] = {
    "uplot.js": "vendor/uPlot.iife.min.js",  # uPlot 1.6.32 (MIT, vendor/uPlot.LICENSE)
    "uplot.css": "vendor/uPlot.min.css",
}
INDEX = "index.html"
CACHE_CONTROL = "no-cache"
# Everything the page needs comes from its own origin; the favicon is an empty data: URL.
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True)
class Asset:
    body: Part
    content_type: str
    etag: str


@cache
def asset(name: str) -> Asset:
    """The whitelisted file ``name``, read once per process; KeyError for any other name."""
    content_type = FILES[name]
    raw = path_of(name).read_bytes()
    etag = '"' + hashlib.sha256(raw).hexdigest()[:24] + '"'
    raw.decode("utf-8")  # text files only
    return Asset(Part(raw), content_type, etag)


def path_of(name: str) -> Path:
    """The file behind served name ``name``."""
    return STATIC_DIR / PATHS.get(name, name)


def index(request: Request) -> Response:
    """The page. Served at ``/`` locally and at ``/<stage>/`` behind API Gateway; a request for
    ``/<stage>`` (no slash) is redirected so the page's relative URLs resolve under the stage."""
    path = (request.context or {}).get("path") or "/"
    if not path.endswith("/"):
        return Response(body="", status_code=301, headers={"Location": path + "/"})
    return _serve(request, INDEX, {"Content-Security-Policy": CSP})


def static(request: Request, name: str) -> Response:
    if name == INDEX or name not in FILES:
        return _not_found(name)
    return _serve(request, name, {})


def _serve(request: Request, name: str, extra: dict[str, str]) -> Response:
    try:
        item = asset(name)
    except OSError:  # a whitelisted file missing from the package: a deploy problem
        return _not_found(name)
    headers = {
        "ETag": item.etag,
        "Cache-Control": CACHE_CONTROL,
        **SECURITY_HEADERS,
        **extra,
    }
    if _matches(request.headers.get("if-none-match"), item.etag):
        return Response(body="", status_code=304, headers=headers)
    response = body_response(request, b"", item.body, headers, item.content_type)
    if isinstance(response, EncodedResponse):  # a strong ETag names one representation
        response.headers["ETag"] = _gzip_tag(item.etag)
    return response


def _gzip_tag(etag: str) -> str:
    return etag[:-1] + '-gzip"'


def _matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    tags = {t.strip().removeprefix("W/") for t in header.split(",")}
    return "*" in tags or etag in tags or _gzip_tag(etag) in tags


def _not_found(name: str) -> Response:
    shown = name if len(name) <= 64 else name[:64] + "…"
    message = f"unknown name {shown!r}: no such static file"
    return error(404, "not_found", message, [{"field": "name", "message": message}])
