"""One HTTP request through Chalice's local gateway, as every local server answers it.

``chalice.local.LocalGateway`` turns a request into the app's API Gateway event and the app's
answer back into status, headers and body, exactly as ``chalice local`` does; both servers of
``ocd.py serve`` (Chalice's own, and the WSGI adapter in ``wsgi.py``) go through ``answer``, so
routes, auth, CORS and errors behave the same on each. Two things the gateway answers in its own
words get this API's error shape instead: a path no route matches (a 404 here, where API Gateway
says 403 "Missing Authentication Token"), and a method the HTTP layer refused.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from chalice.app import Chalice
from chalice.config import Config
from chalice.local import CustomLocalChalice, LocalChalice, LocalGateway, LocalGatewayException

ROOT = Path(__file__).resolve().parents[2]
JSON = "application/json"


@dataclass(frozen=True)
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def load_app(stage: str = "dev") -> tuple[Chalice, Config]:
    """The project's app and config, loaded as ``chalice local`` loads them, with the
    request kept per thread (what ``chalice.local.create_local_server`` does to the app):
    a threaded server runs many requests through the one app object at once."""
    from chalice.cli.factory import CLIFactory

    config = CLIFactory(project_dir=str(ROOT)).create_config_obj(chalice_stage_name=stage)
    app = config.chalice_app
    if not isinstance(app, LocalChalice):
        CustomLocalChalice.__bases__ = (LocalChalice, app.__class__)
        app.__class__ = CustomLocalChalice
    return app, config


def error_reply(status: int, code: str, message: str, **headers: str) -> Reply:
    body = orjson.dumps({"error": code, "message": message, "details": []})
    return Reply(status, [("Content-Type", JSON), ("Cache-Control", "no-store"),
                          *headers.items()], body)  # fmt: skip


def not_found(path: str) -> Reply:
    shown = path if len(path) <= 80 else path[:80] + "…"
    return error_reply(404, "not_found", f"no route for {shown}; see /openapi.json")


def answer(
    gateway: LocalGateway, method: str, target: str, headers: dict[str, str], body: bytes | None
) -> Reply:
    """The app's answer to ``method target`` (the raw request target: path and query)."""
    try:
        response: dict[str, Any] = gateway.handle_request(
            method=method, path=target, headers=headers, body=body
        )
    except LocalGatewayException as exc:
        if exc.CODE == 403:  # the gateway's "no such route"
            return not_found(target.split("?", 1)[0])
        return Reply(exc.CODE, list(exc.headers.items()), exc.body or b"")
    raw = response.get("body")
    if raw is None:
        data = b""
    elif response.get("isBase64Encoded"):
        data = base64.b64decode(raw)
    else:
        data = raw.encode() if isinstance(raw, str) else raw
    out = [(k, str(v)) for k, v in response["headers"].items()]
    for name, values in (response.get("multiValueHeaders") or {}).items():
        out += [(name, str(v)) for v in values]
    if data and not any(k.lower() == "content-type" for k, _ in out):
        out.append(("Content-Type", JSON))  # what chalice local assumes too
    return Reply(int(response["statusCode"]), out, data)
