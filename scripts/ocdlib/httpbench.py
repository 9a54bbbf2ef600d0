"""``ocd.py bench-http``: both HTTP servers of ``ocd.py serve`` under load, while the writer
publishes a new generation every ``--every`` seconds.

For each server: a temp data dir, ``ocd.py serve --server S --every E`` (the real supervisor:
emulator + HTTP child), a warm-up, then ``wrk`` (Debian's; ``apt-get install wrk``) with
``--connections`` keep-alive connections for ``--seconds`` over a rotation of data routes. A
checker thread meanwhile reads ``/tickers`` and ```/options/<T>/snapshot`` in a loop and counts
answers that mix generations (``fallbacks`` in ``/tickers``) or go back to an older generation.
Figures only: nothing here asserts on time.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from ocdlib.serve import LOOPBACK, ROOT, free_port

WATCHLIST = "SPY,QQQ,AAPL,MSFT,NVDA,JPM"
PATHS = ["/tickers", "/health", "/alerts/latest", "/alerts/latest/summary", "/scans/latest",
         "/options/SPY/expirations", "/options/AAPL/snapshot", "/options/JPM/history",
         "/features/MSFT/latest", "/alerts?ticker=SPY"]  # fmt: skip
WRK_SCRIPT = """
local paths = {%s}
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", paths[(n %% #paths) + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %%d, "seconds": %%.3f, "connect": %%d, "read": %%d, "write": %%d, '
    .. '"status": %%d, "timeout": %%d, "p50_ms": %%.3f, "p90_ms": %%.3f, "p99_ms": %%.3f, '
    .. '"max_ms": %%.3f}\\n',
    summary.requests, summary.duration / 1e6, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3,
    latency.max / 1e3))
end
"""


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


class Checker(threading.Thread):
    """Reads composed and per-ticker answers in a loop; counts what a client must never see."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.base = base
        self.stop = threading.Event()
        self.reads = self.errors = self.mixed = self.backwards = self.archive = 0
        self.generations: set[str] = set()

    def run(self) -> None:
        last = ""
        while not self.stop.is_set():
            for path in ("/tickers", "/options/SPY/snapshot"):
                try:
                    body = get_json(self.base + path)
                except OSError:
                    self.errors += 1
                    continue
                self.reads += 1
                generation = body.get("generation") or ""
                self.generations.add(generation)
                self.mixed += bool(body.get("fallbacks"))  # parts of two generations
                # a latest document already replaced by the next export: its archive is served
                self.archive += body.get("source") == "archive"
                self.backwards += generation < last  # generation ids sort in publish order
                last = max(last, generation)


def wait_generation(base: str, proc: subprocess.Popen, timeout: float = 180) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"serve exited with {proc.returncode}")
        try:
            generation = get_json(base + "/health").get("generation")
            if generation:
                return str(generation)
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError("no generation published")


def wrk(base: str, seconds: int, connections: int, script: Path) -> dict[str, Any]:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
               "-s", str(script), base]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def run_one(server: str, *, seconds: int, connections: int, every: float) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix=f"ocd-bench-http-{server}-"))
    port = free_port()
    base = f"http://{LOOPBACK}:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCD_")}
    env.update(OCD_DATA_DIR=str(home / "data"), OCD_WATCHLIST=WATCHLIST, OCD_BACKFILL_DAYS="60",
               OCD_LOG_LEVEL="WARNING")  # fmt: skip
    script = home / "rotate.lua"
    script.write_text(WRK_SCRIPT % ", ".join(json.dumps(p) for p in PATHS))
    command = [sys.executable, "scripts/ocd.py", "serve", "--server", server, "--port",
               str(port), "--every", str(every)]  # fmt: skip
    log = open(home / "serve.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        first = wait_generation(base, proc)
        wrk(base, 5, connections, script)  # warm-up: every route read once per process
        checker = Checker(base)
        checker.start()
        figures = wrk(base, seconds, connections, script)
        checker.stop.set()
        checker.join(15)
        last = get_json(base + "/health")["generation"]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    exports = (home / "serve.log").read_text().count("export   ok")
    shutil.rmtree(home, ignore_errors=True)
    errors = sum(figures[k] for k in ("connect", "read", "write", "status", "timeout"))
    return {
        "server": server, **figures, "errors": errors,
        "rps": round(figures["requests"] / figures["seconds"], 1),
        "exports_during_run": exports, "first_generation": first, "last_generation": last,
        "checker_reads": checker.reads, "checker_errors": checker.errors,
        "mixed_generations": checker.mixed, "went_back": checker.backwards,
        "archive_reads": checker.archive,
        "generations_seen": len(checker.generations - {""}),
    }  # fmt: skip


def run(servers: list[str], *, seconds: int, connections: int, every: float) -> list[dict]:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install -y wrk")
    return [run_one(s, seconds=seconds, connections=connections, every=every) for s in servers]


def table(rows: list[dict[str, Any]], connections: int) -> str:
    head = (f"{'server':<11} {'req/s':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} "
            f"{'max ms':>8} {'errors':>7} {'gens':>5} {'mixed':>6} {'back':>5}")  # fmt: skip
    lines = [f"{connections} connections, writer publishing during the run", head]
    for r in rows:
        lines.append(
            f"{r['server']:<11} {r['rps']:>8.0f} {r['p50_ms']:>8.2f} {r['p90_ms']:>8.2f} "
            f"{r['p99_ms']:>8.2f} {r['max_ms']:>8.1f} {r['errors']:>7} "
            f"{r['generations_seen']:>5} {r['mixed_generations']:>6} {r['went_back']:>5}"
        )
    return "\n".join(lines)
