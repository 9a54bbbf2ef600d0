"""A WSGI application over Chalice's local gateway: the same app behind a production server.

``chalice local`` is a development server (listen backlog 5, a ~44 ms floor on keep-alive
requests, no idle timeout). ``ChaliceWSGI`` lets a real WSGI server (gunicorn: worker processes,
a large backlog, idle timeouts) run the very app Lambda runs, through the same gateway
translation as ``chalice local`` (``gateway.answer``). The raw request target
(gunicorn's ``RAW_URI``, not the decoded ``PATH_INFO``) goes to the gateway, as ``chalice local``
passes it, so path parameters arrive alike on both servers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from chalice.app import Chalice
from chalice.config import Config
from chalice.local import LocalGateway

from ocdlib.gateway import answer

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class ChaliceWSGI:
    """``environ, start_response -> body`` for every route of a Chalice app."""

    def __init__(self, app: Chalice, config: Config) -> None:
        self.gateway = LocalGateway(app, config)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        target = environ.get("RAW_URI") or environ.get("REQUEST_URI") or _target(environ)
        headers = {
            key[5:].replace("_", "-").title(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(key):
                headers[key.replace("_", "-").title()] = environ[key]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length > 0 else None
        reply = answer(self.gateway, environ["REQUEST_METHOD"], target, headers, body)
        headers_out = [(k, v) for k, v in reply.headers if k.lower() != "content-length"]
        headers_out.append(("Content-Length", str(len(reply.body))))
        start_response(f"{reply.status} {HTTPStatus(reply.status).phrase}", headers_out)
        # HEAD: the GET's headers, Content-Length included, and no body (a WSGI server sends
        # what the app returns)
        return [] if environ["REQUEST_METHOD"] == "HEAD" else [reply.body]


def _target(environ: dict[str, Any]) -> str:
    from urllib.parse import quote

    path = quote(environ.get("PATH_INFO", "").encode("latin-1"), safe="/:@!$&'()*+,;=-._~")
    query = environ.get("QUERY_STRING")
    return f"{path}?{query}" if query else path
