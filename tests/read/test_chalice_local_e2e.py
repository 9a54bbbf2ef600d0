"""End to end: ``ocd.py cycle`` writes an export, and each HTTP server of ``ocd.py serve`` serves
it over real sockets: Chalice's local server (``chalice local --no-autoreload`` with the API's
request handler) and the production one (gunicorn through the WSGI adapter). Every test runs
against both."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from readkit import ROOT

AS_OF = "2026-11-27T18:00:00Z"
START_TIMEOUT = 30.0
ORIGIN = "https://dash.example"
SERVERS = ("chalice", "production")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fetch(base: str, path: str, **headers: str) -> tuple[int, Message, Any]:
    """Status, headers (case-insensitive: servers spell names their own way) and the JSON body
    (the text, for anything else)."""
    request = urllib.request.Request(base + path, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, head, raw = response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        status, head, raw = exc.code, exc.headers, exc.read()
    if not raw:
        return status, head, None
    return status, head, json.loads(raw) if "json" in head["Content-Type"] else raw.decode()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    data = tmp_path_factory.mktemp("e2e")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OCD_", "AWS_"))}
    return {
        **clean,
        "OCD_DATA_DIR": str(data),
        "OCD_WATCHLIST": "SPY,AAPL",
        "OCD_BACKFILL_DAYS": "30",
        "OCD_STORAGE": "local",
        "OCD_LOG_LEVEL": "DEBUG",
        "OCD_CORS_ORIGIN": ORIGIN,
    }


@pytest.fixture(scope="module")
def manifest(env: dict[str, str]) -> dict[str, Any]:
    cycle = subprocess.run(
        [sys.executable, "scripts/ocd.py", "cycle", "--as-of", AS_OF],
        cwd=ROOT, env={**env, "OCD_LOG_LEVEL": "WARNING"}, capture_output=True, text=True,
        timeout=180,
    )  # fmt: skip
    assert cycle.returncode == 0, cycle.stderr[-3000:]
    summary = json.loads(cycle.stdout)
    assert summary["collect"]["chains_collected"] == 2
    manifest_path = Path(env["OCD_DATA_DIR"]) / "exports" / "manifest.json"
    return json.loads(manifest_path.read_bytes())


@dataclass(frozen=True)
class Live:
    url: str
    kind: str
    log: Path


@pytest.fixture(scope="module", params=SERVERS)
def live(request: pytest.FixtureRequest, env: dict[str, str], manifest: dict[str, Any]
         ) -> Iterator[Live]:  # fmt: skip
    port = free_port()
    log = Path(env["OCD_DATA_DIR"]) / f"{request.param}.log"
    command = [sys.executable, "scripts/ocdlib/httpserver.py", "--server", request.param,
               "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out,
                                   stderr=subprocess.STDOUT)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert process.poll() is None, log.read_text()[-3000:]
            with contextlib.suppress(OSError):
                if fetch(base, "/health")[0] == 200:
                    break
            assert time.monotonic() < deadline, f"{request.param} did not answer /health"
            time.sleep(0.2)
        yield Live(base, request.param, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    assert process.poll() is not None
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass  # nothing listens any more


@pytest.fixture
def server(live: Live) -> str:
    return live.url


def test_health(server: str, manifest: dict[str, Any]) -> None:
    status, headers, data = fetch(server, "/health")
    assert status == 200
    assert data["generation"] == manifest["generation"]
    assert data["status"] in ("ok", "stale")
    assert data["storage"]["backend"] == "local"
    assert all(r["ok"] for r in data["exports"].values())
    assert headers["ETag"] and headers["X-Data-Source"] == "latest"


def test_every_route_over_http(server: str, manifest: dict[str, Any]) -> None:
    generation = manifest["generation"]
    expected = {
        "/scans/latest?limit=5": "scans",
        "/alerts/latest": "alerts",
        "/alerts/latest/summary": "alerts",
        "/alerts?ticker=SPY": "alerts",
        "/alerts/ticker/AAPL": "alerts",
        "/options/SPY/expirations": "expirations",
        "/options/SPY/snapshot": "calls",
        "/options/AAPL/history?days=30": "history",
        "/features/SPY/latest": "features",
        "/tickers": "tickers",
    }
    for path, key in expected.items():
        status, headers, data = fetch(server, path)
        assert status == 200, (path, data)
        assert key in data, path
        assert data["generation"] == generation and data["source"] == "latest", path
        assert headers["X-Data-Source"] == "latest" and headers["Cache-Control"] == "no-cache"
        assert fetch(server, path, **{"If-None-Match": headers["ETag"]})[0] == 304, path
    _, _, tickers = fetch(server, "/tickers")
    assert sorted(t["ticker"] for t in tickers["tickers"]) == ["AAPL", "SPY"]
    _, _, snapshot = fetch(server, "/options/SPY/snapshot")
    assert snapshot["calls"] and snapshot["puts"]
    assert snapshot["as_of"] == AS_OF and snapshot["expiration"] == snapshot["expirations"][0]
    _, _, scans = fetch(server, "/scans/latest")
    assert scans["total_count"] == 1 and scans["scans"][0]["status"] in ("completed", "partial")
    status, _, openapi = fetch(server, "/openapi.json")
    assert status == 200 and openapi["openapi"].startswith("3.")


@pytest.mark.parametrize(
    ("path", "status", "field"),
    [
        ("/options/QQQ/snapshot", 404, "ticker"),
        ("/options/SPY/snapshot?expiration=2031-01-17", 404, "expiration"),
        ("/options/SPY/snapshot?expiration=soon", 400, "expiration"),
        ("/alerts/latest?min_score=nan", 400, "min_score"),
        ("/scans/latest?limit=1000", 400, "limit"),
        ("/options/..%2F..%2Fetc/history", 400, "ticker"),
    ],
)
def test_errors_over_http(server: str, path: str, status: int, field: str) -> None:
    got, headers, data = fetch(server, path)
    assert got == status
    assert headers["Content-Type"] == "application/json"
    assert data["error"] and data["details"][0]["field"] == field


def raw(base: str, request: bytes, *, reset: bool = False) -> bytes:
    """Send ``request`` as is; the answer (or nothing, with ``reset``: the client closes at
    once, with a TCP reset, as a browser tab does when it is closed mid-answer)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        if reset:
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            return b""
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def test_head_sends_the_get_headers_and_no_body(server: str) -> None:
    for path in ("/tickers", "/options/SPY/snapshot", "/health", "/", "/static/app.js"):
        _, headers, _ = fetch(server, path)
        answer = raw(server, f"HEAD {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                     .encode())  # fmt: skip
        head, _, rest = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), (path, head[:100])
        assert rest == b"", path
        lines = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:])
        lowered = {k.lower(): v for k, v in lines.items()}
        assert lowered["content-length"] == headers["Content-Length"], path
        assert lowered["etag"] == headers["ETag"], path


@pytest.mark.parametrize("method", ["TRACE", "PUT", "DELETE", "FROB"])
def test_other_methods_are_json_405s(server: str, method: str) -> None:
    request = urllib.request.Request(server + "/tickers", method=method)
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=10)
    assert info.value.code == 405
    assert info.value.headers["Content-Type"] == "application/json"
    data = json.loads(info.value.read())
    assert data["error"] == "method_not_allowed" and method in data["message"]
    assert data["details"] == []


@pytest.mark.parametrize("path", ["/no/such/route", "/options/SPY", "/static/nope.js"])
def test_unknown_paths_are_json_404s(server: str, path: str) -> None:
    status, headers, data = fetch(server, path)
    assert status == 404 and headers["Content-Type"] == "application/json"
    assert set(data) == {"error", "message", "details"} and data["error"] == "not_found"


def test_a_malformed_request_line_is_answered_without_html(server: str) -> None:
    """http.server answers it in HTTP/0.9 style (a body alone), gunicorn with a status line."""
    answer = raw(server, b"GET /tickers HTTP/1.1 extra words\r\nHost: x\r\n\r\n")
    assert b"<html" not in answer.lower() and b"<!doctype" not in answer.lower()
    assert b"400" in answer.split(b"\r\n", 1)[0] or b'"error":"bad_request"' in answer


def test_cors_preflight_and_headers_over_http(server: str) -> None:
    request = urllib.request.Request(server + "/tickers", method="OPTIONS", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "x-api-key"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
        allowed = response.headers["Access-Control-Allow-Headers"].lower().split(",")
        assert "x-api-key" in allowed
    _, headers, _ = fetch(server, "/tickers", Origin=ORIGIN)
    assert headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "ETag" in headers["Access-Control-Expose-Headers"]


def test_a_client_going_away_leaves_no_traceback_and_logs_json(live: Live) -> None:
    for _ in range(20):
        raw(live.url, b"GET /options/SPY/snapshot HTTP/1.1\r\nHost: x\r\n\r\n", reset=True)
    assert fetch(live.url, "/health")[0] == 200  # still serving
    time.sleep(0.5)
    text = live.log.read_text()
    assert "Traceback" not in text
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines, "the server logged nothing"
    for line in lines:  # one JSON object per line, like the rest of the service
        assert isinstance(json.loads(line), dict), line[:200]


@pytest.mark.parametrize(
    "path", ["/options/SPY/snapshot", "/options/AAPL/history", "/openapi.json", "/static/app.js"]
)
def test_gzip_over_http_when_the_client_asks(server: str, path: str) -> None:
    """The same bytes as without gzip (but for ``age_seconds``), gzipped by the app itself, so
    every server (and API Gateway) sends what ``chalice local`` sends."""
    plain = urllib.request.urlopen(server + path, timeout=10)
    plain_body, plain_head = plain.read(), plain.headers
    request = urllib.request.Request(server + path, headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(request, timeout=10) as response:
        raw, head = response.read(), response.headers
    assert head["Content-Encoding"] == "gzip" and "Content-Encoding" not in plain_head
    assert head["Vary"] == "Accept-Encoding" and head["Content-Type"] == plain_head["Content-Type"]
    body = gzip.decompress(raw)
    assert len(raw) < len(body) and int(head["Content-Length"]) == len(raw)
    if "json" in head["Content-Type"]:
        drop = lambda doc: {k: v for k, v in json.loads(doc).items() if k != "age_seconds"}  # noqa: E731
        assert drop(body) == drop(plain_body)
    else:
        assert body == plain_body


def test_small_bodies_are_not_gzipped(server: str) -> None:
    request = urllib.request.Request(server + "/features/NOPE/latest",
                                     headers={"Accept-Encoding": "gzip"})  # fmt: skip
    status, head, body = fetch_request(request)
    assert status == 404 and head["Content-Encoding"] is None and body["error"] == "not_found"


def fetch_request(request: urllib.request.Request) -> tuple[int, Message, Any]:
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, json.loads(exc.read())
