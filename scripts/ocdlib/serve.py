"""``ocd.py serve`` and ``ocd.py run``: the whole stack on one machine, supervised.

``serve`` = the schedule emulator (in this process) + the HTTP server (a child in its own
process group: Chalice's local server by default, gunicorn with ``--server production``; see
``httpserver.py``) [+ moto's S3 server on loopback with ``--storage s3``]. Ctrl-C or SIGTERM
lets the running handler finish, then stops the child and the S3 server, so no child process
survives and no export is left half-written. The child also dies with the supervisor when that
is killed outright (SIGKILL): on Linux it asks the kernel for SIGTERM when its parent goes
(``PR_SET_PDEATHSIG``). A port still held by a predecessor is refused, naming its PID.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import ExitStack, closing
from pathlib import Path
from typing import Any

from ocdlib.emulator import Emulator

ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"
SERVERS = ("chalice", "production")
EX_TEMPFAIL = 75


class PortBusy(Exception):
    """The port is held by another process (often a predecessor that outlived its supervisor)."""

    exit_code = EX_TEMPFAIL

    def __init__(self, port: int, holder: str | None) -> None:
        who = f"by {holder}" if holder else "by another process"
        super().__init__(f"port {port} is held {who}; stop it first")


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode} before serving")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


def start_s3(stack: ExitStack, bucket: str) -> str:
    """moto in server mode on loopback, a bucket in it, and the environment pointed at it."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address=LOOPBACK, port=port, verbose=False)
    server.start()
    stack.callback(server.stop)
    endpoint = f"http://{LOOPBACK}:{port}"
    os.environ.update({
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "local"),
        "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "local"),
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        "OCD_STORAGE": "s3",
        "OCD_BUCKET": bucket,
    })  # fmt: skip
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
    return endpoint


def check_port(port: int) -> None:
    """Raise PortBusy, naming the holder's PID and command, when ``port`` cannot be bound."""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind it
        try:
            sock.bind((LOOPBACK, port))
            return
        except OSError:
            pass
    raise PortBusy(port, port_holder(port))


def port_holder(port: int) -> str | None:
    """``PID 1234 (command line)`` of the process listening on ``port``, if it can be seen."""
    try:
        import psutil

        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN:
                if conn.pid is None:
                    return None
                command = " ".join(psutil.Process(conn.pid).cmdline())[:200]
                return f"PID {conn.pid} ({command})"
    except Exception:  # psutil missing, or the process is not ours to inspect
        return None
    return None


def http_command(server: str, port: int) -> list[str]:
    script = ROOT / "scripts" / "ocdlib" / "httpserver.py"
    return [sys.executable, str(script), "--server", server, "--host", LOOPBACK,
            "--port", str(port), "--die-with", str(os.getpid())]  # fmt: skip


def start_http(stack: ExitStack, port: int, server: str = "chalice") -> subprocess.Popen:
    """The HTTP server in its own process group; ``--die-with`` makes it ask the kernel for a
    SIGTERM when this process goes (set in the child after exec: no ``preexec_fn``, which is
    unsafe once this process has threads, as the moto server's)."""
    check_port(port)
    proc = subprocess.Popen(http_command(server, port), cwd=ROOT, start_new_session=True)
    stack.callback(stop_process_group, proc)
    return proc


def stop_process_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the child's whole process group, then SIGKILL what is left after ``grace``."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    # anything else left in the group (there should be nothing with --no-autoreload)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def cycle_line(name: str, result: Any, seconds: float) -> str:
    if not isinstance(result, dict) or (result.get("error") and name != "export"):
        return f"{name:8s} FAILED in {seconds:.2f}s: {result}"
    if name == "collect":
        return (f"collect  {result.get('status')}: {result.get('chains_collected')} chains, "
                f"{result.get('rows_flushed'):,} rows flushed, {result.get('rows_skipped'):,} "
                f"skipped, as of {result.get('as_of')} in {seconds:.2f}s")  # fmt: skip
    if name == "export":
        if not result.get("ok"):
            return (f"export   FAILED in {seconds:.2f}s: {result.get('error')}; still serving "
                    f"generation {result.get('generation')}")  # fmt: skip
        return (f"export   ok: generation {result.get('generation')}, "
                f"{result.get('storage_writes')} writes in {seconds:.2f}s")  # fmt: skip
    return f"{name:8s} done in {seconds:.2f}s"


def supervise(*, port: int | None, storage: str, bucket: str, every: float | None,
              http: bool, server: str = "chalice") -> int:  # fmt: skip
    from app import app  # after the environment is set: settings are read per invocation

    def report(name: str, result: Any, seconds: float) -> None:
        print(cycle_line(name, result, seconds), flush=True)

    emulator = Emulator(app, every=every, report=report)

    def request_stop(signum: int, _frame: Any) -> None:
        print(f"received {signal.Signals(signum).name}: stopping after the running task",
              flush=True)  # fmt: skip
        emulator.stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    with ExitStack() as stack:
        if storage == "s3":
            endpoint = start_s3(stack, bucket)
            print(f"S3 (moto server) at {endpoint}, bucket {bucket}", flush=True)
        proc = None
        if http:
            port = port or 8000
            proc = start_http(stack, port, server)
            wait_http(f"http://{LOOPBACK}:{port}/health", 60, proc)
            print(f"API at http://{LOOPBACK}:{port} ({server} server; dashboard data: "
                  f"/health, /tickers, /alerts/latest)", flush=True)  # fmt: skip
        names = ", ".join(f"{s.name} every {s.seconds:g}s" for s in emulator.schedules)
        print(f"schedules: {names}", flush=True)
        watcher = _watch_child(proc, emulator) if proc else None
        emulator.run()
        if watcher is not None and proc is not None and proc.poll() is not None:
            print(f"the HTTP server exited with {proc.returncode}", flush=True)
            return 1
    print("stopped", flush=True)
    return 0


def _watch_child(proc: subprocess.Popen, emulator: Emulator) -> Any:
    import threading

    def watch() -> None:
        while not emulator.stop.is_set():
            if proc.poll() is not None:
                emulator.stop.set()
                return
            time.sleep(0.5)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread
