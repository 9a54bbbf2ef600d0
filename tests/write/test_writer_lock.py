"""One writer per database file: a second writer fails fast, naming the holder's PID."""

from __future__ import annotations

import select
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from chalicelib.errors import WriterBusy
from chalicelib.write.store import Store

REPO_ROOT = Path(__file__).resolve().parents[2]
AS_OF = "2026-11-27T18:00:00Z"
# Opens the store read-write, says so, and holds it until its stdin closes.
HOLDER = """
import sys
from pathlib import Path
from chalicelib.write.store import Store

store = Store(Path(sys.argv[1]))
print("ready", flush=True)
sys.stdin.read()
store.close()
"""


@pytest.fixture
def holder(
    python: str, subprocess_env: dict[str, str]
) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """A separate process holding the write lock on the data dir's database."""
    db = Path(subprocess_env["OCD_DATA_DIR"]) / "ocd.duckdb"
    proc = subprocess.Popen(
        [python, "-c", HOLDER, str(db)],
        env=subprocess_env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        readable, _, _ = select.select([proc.stdout], [], [], 60)
        line = proc.stdout.readline() if readable else ""
        if line.strip() != "ready":
            proc.kill()
            _, err = proc.communicate(timeout=30)
            pytest.fail(f"holder did not start: {line!r} {err}")
        yield proc, db
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None and not stream.closed:
                stream.close()


def _release(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    assert proc.wait(timeout=30) == 0


def _cycle(python: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, str(REPO_ROOT / "scripts" / "ocd.py"), "cycle", "--as-of", AS_OF],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_second_writer_process_exits_75_naming_the_holder(
    holder: tuple[subprocess.Popen[str], Path], python: str, subprocess_env: dict[str, str]
):
    proc, db = holder
    result = _cycle(python, subprocess_env)
    assert result.returncode == 75
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ocd: writer busy")
    assert f"PID {proc.pid}" in lines[0]
    assert str(db) in lines[0]


def test_opening_a_held_store_raises_writer_busy(holder: tuple[subprocess.Popen[str], Path]):
    proc, db = holder
    with pytest.raises(WriterBusy) as info:
        Store(db)
    assert info.value.holder == f"PID {proc.pid}"
    assert info.value.path == str(db)
    assert info.value.exit_code == 75


def test_the_lock_goes_with_its_holder(holder: tuple[subprocess.Popen[str], Path]):
    proc, db = holder
    _release(proc)
    with Store(db) as store:  # no WriterBusy once the holder has exited
        assert store.count("option_quotes") == 0
