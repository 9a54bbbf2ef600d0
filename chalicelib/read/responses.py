"""Responses, for the adapter and the dashboard alike: the one shape of every error this API
answers, and bodies gzipped when the client accepts it."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import orjson
from chalice.app import Request, Response

from chalicelib.read.compression import MIN_BYTES, Part, accepts_gzip, gzip_body

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


class EncodedResponse(Response):
    """A body sent as bytes (gzip): always base64 with ``isBase64Encoded``, which every
    gateway decodes (API Gateway, with its binary media types ``*/*``; ``chalice local``; the
    test client). Chalice itself encodes only content types listed in ``app.api.binary_types``,
    and listing ``application/json`` there would make it refuse (400) any request whose
    ``Accept`` header does not name a binary type, gzip or not."""

    def to_dict(self, binary_types: list[str] | None = None) -> dict[str, Any]:
        response = super().to_dict(None)
        response["body"] = base64.b64encode(self.body).decode("ascii")
        response["isBase64Encoded"] = True
        return response


def body_response(
    request: Request, head: bytes, tail: Part, headers: Mapping[str, str], content_type: str = JSON
) -> Response:
    """A 200 answering ``head + tail``: gzip when the client accepts it and the body is over
    ``MIN_BYTES`` (the tail deflated once for every request), else as text."""
    headers = {**headers, "Content-Type": content_type, "Vary": "Accept-Encoding"}
    if len(head) + len(tail.data) > MIN_BYTES and accepts_gzip(
        request.headers.get("accept-encoding")
    ):
        return EncodedResponse(body=gzip_body(head, tail), status_code=200,
                               headers={**headers, "Content-Encoding": "gzip"})  # fmt: skip
    return Response(body=(head + tail.data).decode(), status_code=200, headers=headers)
