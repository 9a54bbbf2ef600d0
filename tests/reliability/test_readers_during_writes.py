"""Readers while the writer publishes: a writer process cycles back to back (a new as-of time
each cycle, so every generation carries new data) while 8 clients read every route from a real
``chalice local`` for a bounded time.

No response may be anything but a 200 with a JSON body; every generation served must be one a
manifest published; no client may see the generation go back; and a generation means its own
data: the ``as_of`` served for a ticker under a generation (by chain documents and the
``/tickers`` index alike) is the one that generation's archived index records, so no response
mixes two exports or labels one export's data with another's generation.
"""

from __future__ import annotations

import contextlib
import gzip
import http.client
import random
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import orjson
from reliakit import (
    LOOPING_WRITER,
    ROOT,
    WATCHLIST,
    data_paths,
    order,
    published_generations,
    session_times,
    writer_env,
)

from chalicelib import exportformat as fmt
from chalicelib.storage.base import Storage
from chalicelib.storage.local import LocalStorage

READERS = 8
READ_SECONDS = 15.0
WRITER_PAUSE = 0.2  # seconds between the writer's cycles
START_TIMEOUT = 60.0
CHAIN_ROUTES = ("expirations", "snapshot")  # answer the chain document's as_of


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Seen:
    """What one client saw."""

    requests: int = 0
    failures: list[str] = field(default_factory=list)
    generations: list[str] = field(default_factory=list)
    as_of: dict[tuple[str, str], set[str]] = field(default_factory=lambda: defaultdict(set))


def read_until(port: int, stop: threading.Event, seed: int, seen: Seen) -> None:
    """One client: every route, in its own order, over one keep-alive connection."""
    paths = [*data_paths(), "/health"]
    random.Random(seed).shuffle(paths)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        while not stop.is_set():
            for path in paths:
                if stop.is_set():
                    break
                seen.requests += 1
                try:
                    conn.request("GET", path)
                    response = conn.getresponse()
                    status, raw = response.status, response.read()
                except (OSError, http.client.HTTPException) as exc:
                    seen.failures.append(f"{path}: {type(exc).__name__}: {exc}")
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                    continue
                try:
                    check(path, status, raw, seen)
                except (KeyError, TypeError) as exc:  # a body not shaped as documented
                    seen.failures.append(f"{path}: {type(exc).__name__}: {exc}: {raw[:200]!r}")
    finally:
        conn.close()


def check(path: str, status: int, raw: bytes, seen: Seen) -> None:
    if status != 200:
        seen.failures.append(f"{path}: HTTP {status}: {raw[:200]!r}")
        return
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        seen.failures.append(f"{path}: unparsable: {exc}")
        return
    generation = data.get("generation")
    if not isinstance(generation, str):
        seen.failures.append(f"{path}: no generation: {raw[:200]!r}")
        return
    if seen.generations and order(generation) < order(seen.generations[-1]):
        seen.failures.append(f"{path}: went back from {seen.generations[-1]} to {generation}")
    seen.generations.append(generation)
    parts = path.split("?")[0].strip("/").split("/")
    if parts[0] == "options" and parts[2] in CHAIN_ROUTES:
        seen.as_of[generation, parts[1]].add(data["as_of"])
    elif parts == ["tickers"]:
        for row in data["tickers"]:
            seen.as_of[generation, row["ticker"]].add(row["as_of"])


def snapshot_times(storage: Storage) -> dict[tuple[str, str], str]:
    """(generation, ticker) -> the as_of it published, from each generation's own archived
    chains index: what every response under that generation must say."""
    truth = {}
    for manifest in fmt.archived_manifests(storage):
        index = orjson.loads(gzip.decompress(storage.get(manifest.archives["chains"]).data))
        assert index["generation"] == manifest.generation
        columns = index["columns"]
        for ticker, as_of in zip(columns["ticker"], columns["as_of"], strict=True):
            truth[manifest.generation, ticker] = as_of
    return truth


@contextlib.contextmanager
def chalice_local(env: dict[str, str], log: Path) -> Iterator[int]:
    port = free_port()
    chalice = Path(sys.executable).parent / "chalice"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(chalice), "local", "--no-autoreload", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def health(port: int) -> dict[str, Any] | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/health")
        response = conn.getresponse()
        return orjson.loads(response.read()) if response.status == 200 else None
    except OSError:
        return None
    finally:
        conn.close()


def wait_for_data(port: int, writer: subprocess.Popen[bytes], log: Path) -> None:
    """Until the API answers and the writer's first generation is out."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        assert writer.poll() is None, "the writer stopped before publishing"
        data = health(port)
        if data and data["generation"]:
            return
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.2)


def test_eight_readers_while_the_writer_publishes(tmp_path: Path) -> None:
    env = writer_env(tmp_path / "data")
    stop_file = tmp_path / "stop"
    times = list(islice(session_times(), 2000))
    writer = subprocess.Popen(
        [sys.executable, "-c", LOOPING_WRITER, str(ROOT), str(stop_file), str(WRITER_PAUSE),
         *times],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    seen = [Seen() for _ in range(READERS)]
    try:
        with chalice_local(env, tmp_path / "chalice.log") as port:
            wait_for_data(port, writer, tmp_path / "chalice.log")
            stop = threading.Event()
            clients = [
                threading.Thread(target=read_until, args=(port, stop, n, seen[n]), daemon=True)
                for n in range(READERS)
            ]
            for c in clients:
                c.start()
            time.sleep(READ_SECONDS)
            stop.set()
            for c in clients:
                c.join(timeout=60)
                assert not c.is_alive(), "a client hung"
    finally:
        stop_file.touch()
        out, err = writer.communicate(timeout=120)
    assert writer.returncode == 0, err.decode()[-3000:]

    cycles = [orjson.loads(line) for line in out.splitlines()]
    assert all(c["rc"] == 0 and c["ok"] for c in cycles), [c for c in cycles if not c["ok"]]
    storage = LocalStorage(tmp_path / "data" / "exports")
    published = published_generations(storage)
    assert {c["generation"] for c in cycles} == published  # each cycle published one

    failures = [f for s in seen for f in s.failures]
    assert not failures, failures[:20]
    served = {g for s in seen for g in s.generations}
    assert served <= published, sorted(served - published)
    assert len(served) >= 3, (served, len(cycles))  # else the writer hardly overlapped
    assert all(s.requests >= 10 for s in seen), [s.requests for s in seen]
    snapshots: dict[tuple[str, str], set[str]] = defaultdict(set)
    for s in seen:
        for key, values in s.as_of.items():
            snapshots[key] |= values
    truth = snapshot_times(storage)
    wrong = {key: values for key, values in snapshots.items() if values != {truth[key]}}
    assert not wrong, {key: (values, truth[key]) for key, values in wrong.items()}
    assert {ticker for _, ticker in snapshots} == set(WATCHLIST)
    print(
        f"{sum(s.requests for s in seen)} requests by {READERS} clients, {len(cycles)} cycles, "
        f"{len(served)} generations served"
    )
