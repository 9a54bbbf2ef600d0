"""End to end: ``ocd.py cycle`` writes an export, the real ``chalice local`` serves it over HTTP."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from readkit import ROOT

AS_OF = "2026-11-27T18:00:00Z"
START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fetch(base: str, path: str, **headers: str) -> tuple[int, dict[str, str], Any]:
    request = urllib.request.Request(base + path, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, head, raw = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        status, head, raw = exc.code, dict(exc.headers), exc.read()
    return status, head, json.loads(raw) if raw else None


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
        "OCD_LOG_LEVEL": "WARNING",
    }


@pytest.fixture(scope="module")
def manifest(env: dict[str, str]) -> dict[str, Any]:
    cycle = subprocess.run(
        [sys.executable, "scripts/ocd.py", "cycle", "--as-of", AS_OF],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert cycle.returncode == 0, cycle.stderr[-3000:]
    summary = json.loads(cycle.stdout)
    assert summary["collect"]["chains_collected"] == 2
    manifest_path = Path(env["OCD_DATA_DIR"]) / "exports" / "manifest.json"
    return json.loads(manifest_path.read_bytes())


@pytest.fixture(scope="module")
def server(env: dict[str, str], manifest: dict[str, Any]) -> Iterator[str]:
    port = free_port()
    log = Path(env["OCD_DATA_DIR"]) / "chalice-local.log"
    chalice = Path(sys.executable).parent / "chalice"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(chalice), "local", "--no-autoreload", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert process.poll() is None, log.read_text()[-3000:]
            with contextlib.suppress(OSError):
                if fetch(base, "/health")[0] == 200:
                    break
            assert time.monotonic() < deadline, "chalice local did not answer /health"
            time.sleep(0.2)
        yield base
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
