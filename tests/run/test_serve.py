"""`ocd.py serve` end to end, on both HTTP servers: emulator and server supervised; neither
SIGTERM nor SIGKILL of the supervisor leaves an orphan; a port still held is refused."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import closing
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str) -> tuple[int, dict]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, json.loads(response.read())


def wait_for_generation(base: str, proc: subprocess.Popen, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"serve exited early with {proc.returncode}"
        try:
            status, health = get(f"{base}/health")
            if status == 200 and health.get("generation"):
                return health
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError("no generation published in time")


def port_open(port: int) -> bool:
    with closing(socket.socket()) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def serve_env(tmp_path: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "OCD_DATA_DIR": str(tmp_path / "data"),
        "OCD_WATCHLIST": "SPY,AAPL",
        "OCD_BACKFILL_DAYS": "30",
        "OCD_LOG_LEVEL": "WARNING",
    }
    for name in ("OCD_STORAGE", "OCD_BUCKET", "AWS_ENDPOINT_URL_S3"):
        env.pop(name, None)
    return env


def start_serve(tmp_path: Path, port: int, *args: str) -> subprocess.Popen:
    command = [sys.executable, "scripts/ocd.py", "serve", "--port", str(port), "--every", "5",
               *args]  # fmt: skip
    return subprocess.Popen(command, cwd=ROOT, env=serve_env(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


@pytest.mark.parametrize(("storage", "server", "stop"), [
    ("local", "chalice", signal.SIGTERM), ("s3", "chalice", signal.SIGTERM),
    ("local", "production", signal.SIGTERM), ("local", "production", signal.SIGINT)])  # fmt: skip
def test_serve_answers_with_data_and_a_stop_signal_leaves_no_child(
    tmp_path: Path, storage: str, server: str, stop: signal.Signals
):  # fmt: skip
    port = free_port()
    proc = start_serve(tmp_path, port, "--storage", storage, "--server", server)
    base = f"http://127.0.0.1:{port}"
    try:
        health = wait_for_generation(base, proc)
        assert health["storage"]["backend"] == storage
        assert health["status"] == "ok"
        status, tickers = get(f"{base}/tickers")
        assert status == 200 and {t["ticker"] for t in tickers["tickers"]} == {"SPY", "AAPL"}
        status, snapshot = get(f"{base}/options/SPY/snapshot")
        assert status == 200 and snapshot["calls"] and snapshot["puts"]
        assert snapshot["generation"]
        status, alerts = get(f"{base}/alerts/latest")
        assert status == 200 and isinstance(alerts["alerts"], list)
        with urllib.request.urlopen(f"{base}/", timeout=10) as response:
            assert b"<html" in response.read().lower()

        children = psutil.Process(proc.pid).children(recursive=True)
        assert children, "the HTTP server should run as a child process"
        assert any(f"--server {server}" in " ".join(c.cmdline()) for c in children)
        proc.send_signal(stop)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert f"API at {base} ({server} server" in output and "stopped" in output
    assert "collect" in output and "export   ok" in output
    _gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"orphaned children: {[p.pid for p in alive]}"
    assert not port_open(port)


@pytest.mark.parametrize("server", ["chalice", "production"])
def test_sigkill_of_the_supervisor_takes_the_server_with_it(tmp_path: Path, server: str):
    port = free_port()
    proc = start_serve(tmp_path, port, "--server", server)
    try:
        wait_for_generation(f"http://127.0.0.1:{port}", proc)
        children = psutil.Process(proc.pid).children(recursive=True)
        assert children
        proc.kill()  # no handler runs: only the kernel can stop the child now
        proc.communicate(timeout=30)
        _gone, alive = psutil.wait_procs(children, timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not alive, f"orphaned children: {[p.pid for p in alive]}"
    assert not port_open(port)


def test_a_port_still_held_is_refused_naming_the_holder(tmp_path: Path):
    port = free_port()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import socket, sys, time; s = socket.socket(); "
         "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
         f"s.bind(('127.0.0.1', {port})); s.listen(); print('ready', flush=True); time.sleep(120)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        proc = start_serve(tmp_path, port)
        output, errors = proc.communicate(timeout=60)
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == 75, (output, errors)
    assert f"port {port} is held by PID {holder.pid}" in errors
    assert "API at" not in output
