"""The one shape of every error this API answers, for the adapter and the dashboard alike."""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from chalice.app import Response

JSON = "application/json"


def error(
    status: int,
    code: str,
    message: str,
    details: list[dict[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """An error response in the one shape every error of this API has."""
    body = {"error": code, "message": message, "details": details or []}
    return Response(
        body=orjson.dumps(body).decode(),
        status_code=status,
        headers={"Content-Type": JSON, "Cache-Control": "no-store", **(headers or {})},
    )
