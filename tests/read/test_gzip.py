"""gzip in the app: bodies over 1 KB are gzipped when the client sends ``Accept-Encoding:
gzip``, the same way through Chalice's test client, ``chalice local`` and API Gateway (the
servers: ``test_chalice_local_e2e.py``)."""

from __future__ import annotations

import gzip
import zlib

import orjson
import pytest
from chalice.test import Client
from readkit import Site, get

from chalicelib.read.compression import MIN_BYTES, Part, accepts_gzip, gzip_body

BIG = ("/options/SPY/snapshot", "/options/JPM/history", "/alerts/latest", "/openapi.json", "/")


def _without_age(raw: bytes) -> dict:
    doc = orjson.loads(raw)
    doc.pop("age_seconds", None)
    return doc


@pytest.mark.parametrize("path", BIG)
def test_a_big_body_is_gzipped_when_asked_and_says_so(
    served: Site, client: Client, path: str
) -> None:
    plain = get(client, path)
    packed = get(client, path, **{"Accept-Encoding": "gzip, deflate, br"})
    assert plain.status_code == packed.status_code == 200
    assert "Content-Encoding" not in plain.headers and len(plain.body) > MIN_BYTES
    assert packed.headers["Content-Encoding"] == "gzip"
    assert packed.headers["Vary"] == plain.headers["Vary"] == "Accept-Encoding"
    assert packed.headers["Content-Type"] == plain.headers["Content-Type"]
    body = gzip.decompress(packed.body)
    assert len(packed.body) < len(body)
    if path == "/":
        assert body == plain.body
    else:
        assert _without_age(body) == _without_age(plain.body)
        assert packed.headers["ETag"] == plain.headers["ETag"]  # weak: one version, two forms


def test_gzip_is_not_used_unless_accepted(served: Site, client: Client) -> None:
    for header in ("identity", "gzip;q=0", "br", "*;q=0", ""):
        response = get(client, "/options/SPY/snapshot", **{"Accept-Encoding": header})
        assert "Content-Encoding" not in response.headers, header
        assert orjson.loads(response.body)["ticker"] == "SPY"
    small = get(client, "/options/SPY/expirations", **{"Accept-Encoding": "gzip"})
    assert len(small.body) <= MIN_BYTES and "Content-Encoding" not in small.headers


def test_a_gzip_client_revalidates_with_the_same_etag(served: Site, client: Client) -> None:
    first = get(client, "/options/SPY/snapshot", **{"Accept-Encoding": "gzip"})
    revalidate = {"Accept-Encoding": "gzip", "If-None-Match": first.headers["ETag"]}
    again = get(client, "/options/SPY/snapshot", **revalidate)
    assert again.status_code == 304 and again.body == b""
    asset = get(client, "/static/app.js", **{"Accept-Encoding": "gzip"})
    assert asset.headers["Content-Encoding"] == "gzip" and asset.headers["ETag"].endswith('-gzip"')
    cached = get(client, "/static/app.js", **{"Accept-Encoding": "gzip",
                                              "If-None-Match": asset.headers["ETag"]})  # fmt: skip
    assert cached.status_code == 304


def test_head_and_tail_make_one_valid_gzip_member() -> None:
    for head, tail in ((b"", b"x" * 3000), (b'{"a":1,', b'"b":2}' * 500), (b"{}", b"")):
        part = Part(tail)
        for _ in range(2):  # the tail's deflate stream is made once and reused
            raw = gzip_body(head, part)
            assert gzip.decompress(raw) == head + tail
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            assert inflater.decompress(raw) + inflater.flush() == head + tail
            assert inflater.eof and not inflater.unused_data
    assert accepts_gzip("deflate, GZIP;q=0.5") and accepts_gzip("x-gzip")
    assert not accepts_gzip(None) and not accepts_gzip("gzip;q=0.0") and not accepts_gzip("br")
