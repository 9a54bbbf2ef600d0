"""Schemathesis against a live server, every check it has: the OpenAPI document and the API
agree (statuses, content types, headers, schemas, negative data rejected and positive data
accepted, auth not ignored, undeclared methods refused), with zero failures.

One run per server of ``ocd.py serve``: Chalice's local one without an API key (the document
then declares none), the production one with a key (declared, and required). Bounded: a fixed
seed and few examples per operation, so each run takes well under a minute.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from readkit import ROOT, Site

ST = Path(sys.executable).with_name("st")
KEY = "st-s3cret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def live_server(site: Site, server: str, tmp_path: Path, key: str | None) -> Iterator[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OCD_", "AWS_"))}
    env.update(site.env, OCD_LOG_LEVEL="WARNING")
    if key:
        env["OCD_API_KEY"] = key
    port = free_port()
    command = [sys.executable, "scripts/ocdlib/httpserver.py", "--server", server,
               "--port", str(port)]  # fmt: skip
    log = tmp_path / f"{server}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log.read_text()[-2000:]
            with contextlib.suppress(OSError):
                urllib.request.urlopen(base + "/health", timeout=2).close()
                break
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    assert "Traceback" not in log.read_text()


@pytest.mark.parametrize(("server", "key"), [("chalice", None), ("production", KEY)])
def test_schemathesis_all_checks_find_nothing(
    site: Site, tmp_path: Path, server: str, key: str | None
) -> None:
    with live_server(site, server, tmp_path, key) as base:
        command = [str(ST), "run", f"{base}/openapi.json", "--checks", "all",
                   "--max-examples", "5", "--seed", "20261201", "--no-color",
                   "--request-timeout", "10", "--max-time", "20"]  # fmt: skip
        if key:
            command += ["--header", f"x-api-key: {key}"]
        run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-6000:]
    assert "No issues found" in output, output[-3000:]
    assert "31 selected / 31 total" in output, output[-3000:]  # every GET and HEAD operation
