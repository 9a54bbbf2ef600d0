"""The API keeps answering while another process holds the DuckDB write lock."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from chalice.test import Client
from readkit import Site, body, get

from chalicelib.errors import WriterBusy
from chalicelib.write.store import Store

HOLD = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])  # read-write: takes the file lock
con.execute("SELECT count(*) FROM option_quotes").fetchone()
print("locked", flush=True)
sys.stdin.read()  # hold until told (stdin closed) or killed
"""

ROUTES = {
    "/health": 200,
    "/openapi.json": 200,
    "/scans/latest": 200,
    "/alerts/latest": 200,
    "/alerts/latest/summary": 200,
    "/alerts?ticker=SPY&min_score=10": 200,
    "/alerts/ticker/SPY": 200,
    "/options/SPY/expirations": 200,
    "/options/SPY/snapshot": 200,
    "/options/SPY/history?days=5": 200,
    "/features/SPY/latest": 200,
    "/tickers": 200,
    "/options/ZZZZ/snapshot": 404,
}


@pytest.fixture
def lock_holder(served: Site) -> Iterator[subprocess.Popen[str]]:
    database = served.settings.database
    database.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(served.stores.db2, database)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(database)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        line = holder.stdout.readline()
        assert line.strip() == "locked", holder.stderr.read() if holder.stderr else line
        yield holder
    finally:
        holder.kill()
        holder.wait(timeout=10)
        Path(database).unlink(missing_ok=True)


def test_every_route_answers_while_the_writer_holds_the_lock(
    served: Site, client: Client, lock_holder: subprocess.Popen[str]
) -> None:
    with pytest.raises(WriterBusy) as busy:  # the lock is really held ...
        Store(served.settings.database)
    assert str(lock_holder.pid) in str(busy.value)
    for path, status in ROUTES.items():  # ... and the API does not care
        response = get(client, path)
        assert response.status_code == status, (path, response.body[:200])
        if status == 200 and path != "/openapi.json":
            assert body(response)["generation"] == served.generations[-1], path
    assert lock_holder.poll() is None  # still holding at the end
    lock_holder.kill()
    assert lock_holder.wait(timeout=10) != 0
