"""Helpers for the reliability suite: writer processes to start, stop and kill, and checks of
what the API serves afterwards.

Writers are real processes running ``scripts/ocd.py``'s own ``main``. A *warm* writer imports
the app first and then waits for a go line on stdin, so the moment it is killed falls in the
cycle's work, not in Python's start-up (which touches no data), and the next writer's start-up
overlaps the checks of the last one.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import orjson
from chalice.test import Client
from exportkit import assert_recoverable
from readkit import body, get

from chalicelib import exportformat as fmt
from chalicelib.exportformat import Manifest
from chalicelib.read import api, service
from chalicelib.read.reader import LruCache
from chalicelib.storage.base import Storage

ROOT = Path(__file__).resolve().parents[2]
WATCHLIST = ("SPY", "JPM")
SESSION_OPEN = datetime(2026, 11, 30, 14, 35, tzinfo=UTC)  # a Monday, New York open + 5 min
WRITER_TIMEOUT = 120.0

# Imports what ``ocd.py cycle`` imports, says "ready", then runs one cycle for the as-of time
# it is sent (or exits at once on an empty line).
WARM_WRITER = """
import sys
root = sys.argv[1]
sys.path[:0] = [root, root + "/scripts"]
import ocd
import app  # noqa: F401  (what the cycle imports, up front)
import chalicelib.write.exporter, chalicelib.write.scheduler  # noqa: F401
print("ready", flush=True)
words = sys.stdin.readline().split()
sys.exit(ocd.main(["cycle", "--as-of", words[0]]) if words else 0)
"""

# Cycles back to back, a new as-of time each, until the stop file appears; one JSON line per
# cycle on stdout: {"rc", "as_of", "ok", "generation"}.
LOOPING_WRITER = """
import contextlib, io, json, os, sys, time
root, stop, pause, *times = sys.argv[1:]
sys.path[:0] = [root, root + "/scripts"]
import ocd
for as_of in times:
    if os.path.exists(stop):
        break
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = ocd.main(["cycle", "--as-of", as_of])
    summary = json.loads(out.getvalue() or "{}")
    export = summary.get("export") or {}
    print(json.dumps({"rc": rc, "as_of": as_of, "ok": export.get("ok"),
                      "generation": export.get("generation")}), flush=True)
    time.sleep(float(pause))
"""


def session_times(start: datetime = SESSION_OPEN, step_minutes: int = 1) -> Iterator[str]:
    """As-of times a minute apart within trading sessions (weekdays 14:35-20:55 UTC), so each
    cycle collects a new snapshot and publishes new data."""
    when = start
    while True:
        if when.weekday() < 5 and (14, 35) <= (when.hour, when.minute) <= (20, 55):
            yield when.strftime("%Y-%m-%dT%H:%M:%SZ")
            when += timedelta(minutes=step_minutes)
        else:
            when = (when + timedelta(days=1)).replace(hour=14, minute=35)


def writer_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """This process's environment without any OCD_/AWS_ setting, plus the suite's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OCD_", "AWS_"))}
    env.update(
        OCD_DATA_DIR=str(data_dir),
        OCD_WATCHLIST=",".join(WATCHLIST),
        OCD_BACKFILL_DAYS="20",
        OCD_LOG_LEVEL="WARNING",
    )
    env.update(extra)
    return env


def ocd_vars(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith(("OCD_", "AWS_"))}


def use_env(monkeypatch: Any, env: dict[str, str]) -> None:
    """Point this process (the API under test, in-process cycles) where ``env`` points a
    writer process; logs stay quiet."""
    for name in [k for k in os.environ if k.startswith("OCD_")]:
        monkeypatch.delenv(name)
    for name, value in ocd_vars(env).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OCD_LOG_LEVEL", "WARNING")


def cycle_in_process(as_of: str) -> dict[str, Any]:
    """One cycle in this process: ``scripts/ocd.py``'s own main, as the writer processes run
    it (the environment must be set, see ``use_env``)."""
    if str(ROOT / "scripts") not in sys.path:
        sys.path.insert(0, str(ROOT / "scripts"))
    import ocd

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = ocd.main(["cycle", "--as-of", as_of])
    assert code == 0, out.getvalue()[-2000:]
    return orjson.loads(out.getvalue())


@dataclass
class LogLine:
    at: float  # time.monotonic() when read
    event: str
    fields: dict[str, Any]


@dataclass
class WarmWriter:
    """``ocd.py cycle`` in its own process, started ahead and released with ``go``."""

    proc: subprocess.Popen[bytes]
    lines: list[LogLine] = field(default_factory=list)
    stdout: bytes = b""
    started: float = 0.0
    ended: float = 0.0
    _seen: threading.Condition = field(default_factory=threading.Condition)
    _reader: threading.Thread | None = None
    _ready: bool = False

    @classmethod
    def start(cls, env: dict[str, str]) -> WarmWriter:
        proc = subprocess.Popen(
            [sys.executable, "-c", WARM_WRITER, str(ROOT)],
            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        writer = cls(proc)
        writer._reader = threading.Thread(target=writer._read_stderr, daemon=True)
        writer._reader.start()
        return writer

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            now = time.monotonic()
            try:
                fields = orjson.loads(raw)
                event = str(fields.get("event", ""))
            except orjson.JSONDecodeError:
                fields, event = {"text": raw.decode(errors="replace")}, ""
            with self._seen:
                self.lines.append(LogLine(now, event, fields))
                self._seen.notify_all()

    def ready(self, timeout: float = WRITER_TIMEOUT) -> None:
        """Wait until the process has imported everything and waits for ``go``."""
        if self._ready:
            return
        assert self.proc.stdout is not None
        line = _readline(self.proc.stdout, timeout)
        assert line.strip() == b"ready", (line, self.stderr_text())
        self._ready = True

    def go(self, as_of: str) -> None:
        self.ready()
        assert self.proc.stdin is not None
        self.started = time.monotonic()
        self.proc.stdin.write(f"{as_of}\n".encode())
        self.proc.stdin.close()

    def wait_for(
        self, event: str | None, occurrence: int = 1, timeout: float = WRITER_TIMEOUT
    ) -> bool:
        """Block until the ``occurrence``-th log line of ``event`` (None: of any event); False
        if the process ended (or the time ran out) first."""
        deadline = time.monotonic() + timeout
        with self._seen:
            while sum(event in (None, line.event) for line in self.lines) < occurrence:
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reading()):
                    return False
                self._seen.wait(min(left, 0.05))
        return True

    def _reading(self) -> bool:
        return self._reader is not None and self._reader.is_alive()

    def kill_after(self, delay: float) -> bool:
        """SIGKILL after ``delay`` seconds; True if the process was still running."""
        try:
            self.proc.wait(timeout=max(delay, 0.0))
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGKILL)
            self.finish()
            return True
        self.finish()
        return False

    def finish(self, timeout: float = WRITER_TIMEOUT) -> int:
        assert self.proc.stdout is not None
        self.stdout += self.proc.stdout.read()
        code = self.proc.wait(timeout=timeout)
        self.ended = self.ended or time.monotonic()
        if self._reader is not None:
            self._reader.join(timeout=10)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None and not stream.closed:
                stream.close()
        return code

    def stop(self) -> None:
        """Leave without running a cycle (or kill one that runs)."""
        if self.proc.poll() is None and self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.finish()

    def summary(self) -> dict[str, Any]:
        return orjson.loads(self.stdout)

    def stderr_text(self) -> str:
        return "\n".join(orjson.dumps(line.fields).decode() for line in self.lines)[-3000:]


def _readline(stream: IO[bytes], timeout: float) -> bytes:
    """One line from a pipe, or b"" after ``timeout`` seconds."""
    box: list[bytes] = []
    reader = threading.Thread(target=lambda: box.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return box[0] if box else b""


# ---- what readers get ----------------------------------------------------------------------
def reset_read_caches() -> None:
    """Forget every reader, body and derived view this process holds: the next request reads
    the storage as a freshly started API would."""
    service.reset_caches()


def install_fresh_caches(monkeypatch: Any) -> None:
    monkeypatch.setattr(service, "_READERS", {})
    bodies = service._BODIES
    monkeypatch.setattr(service, "_BODIES", LruCache(bodies.max_items, bodies.max_weight))
    monkeypatch.setattr(api, "_DERIVED", LruCache(api._DERIVED.max_items))


def published_manifest(storage: Storage) -> Manifest:
    return Manifest.model_validate_json(storage.get(fmt.MANIFEST_KEY).data)


def published_generations(storage: Storage) -> set[str]:
    """Every generation a manifest was published for: manifest.json and all archived ones."""
    found = {m.generation for m in fmt.archived_manifests(storage)}
    with contextlib.suppress(Exception):
        found.add(published_manifest(storage).generation)
    return found


def data_paths(tickers: tuple[str, ...] = WATCHLIST) -> list[str]:
    paths = ["/tickers", "/alerts/latest", "/alerts/latest/summary", "/alerts", "/scans/latest"]
    for ticker in tickers:
        paths += [
            f"/options/{ticker}/expirations",
            f"/options/{ticker}/snapshot",
            f"/options/{ticker}/history?days=30",
            f"/features/{ticker}/latest",
            f"/alerts/ticker/{ticker}",
        ]
    return paths


@dataclass(frozen=True)
class Served:
    generation: str
    manifest: Manifest
    tickers: frozenset[str]


def check_served(client: Client, storage: Storage, tickers: frozenset[str] = frozenset()) -> Served:
    """A fresh API serves one complete, checksum-valid generation: the published one.

    Every document the manifest names matches its sha256, as the stored object or through the
    archive the manifest names (per-ticker chain documents must be the stored objects), every
    route answers 200 with that generation, and every ticker in ``tickers`` is still served.
    """
    reset_read_caches()
    health = get(client, "/health")
    assert health.status_code == 200, health.body[:500]
    generation = body(health)["generation"]
    manifest = published_manifest(storage)
    assert generation == manifest.generation
    assert_recoverable(storage, manifest)
    assert tickers <= set(manifest.chains), (sorted(tickers), sorted(manifest.chains))
    for path in data_paths(tuple(sorted(manifest.chains))):
        response = get(client, path)
        assert response.status_code == 200, (path, response.body[:300])
        data = body(response)
        assert data["generation"] == generation, (path, data["generation"], generation)
        assert data["source"] in ("latest", "archive"), (path, data["source"])
    return Served(generation, manifest, frozenset(manifest.chains))


def order(generation: str) -> tuple[str, int]:
    return fmt.generation_order(generation)
