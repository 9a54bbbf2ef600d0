"""Writers fail loudly when their native dependencies are missing, as in a zip built by a plain
``chalice package`` under Python 3.11: the run stops before touching anything, logs one error
line naming the module, and the error says how to build a package that works."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from chalicelib.natives import NativeDependencyMissing, require_writer_natives

REPO_ROOT = Path(__file__).resolve().parents[2]


def _run_hidden(
    handler: str, hidden: list[str], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run a scheduled handler in a child Python in which ``hidden`` cannot be imported."""
    code = (
        "import sys\n"
        f"for name in {hidden!r}:\n"
        "    sys.modules[name] = None  # import fails as if the zip lacked it\n"
        "from chalicelib.write import schedules\n"
        f"schedules.{handler}({{}})\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _log_lines(stderr: str) -> list[dict]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


@pytest.mark.parametrize(
    ("handler", "hidden"),
    [("collect", ["duckdb"]), ("export", ["duckdb"]), ("collect", ["duckdb", "numpy"])],
)
def test_writer_handler_without_natives_fails_and_says_why(
    handler: str, hidden: list[str], subprocess_env: dict[str, str], ocd_env: dict[str, str]
) -> None:
    proc = _run_hidden(handler, hidden, subprocess_env)

    assert proc.returncode == 1, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("chalicelib.natives.NativeDependencyMissing: the writer cannot import")
    assert "scripts/package.sh" in last and "docs/deploy.md" in last
    errors = [e for e in _log_lines(proc.stderr) if e["event"] == "native_dependencies_missing"]
    assert len(errors) == 1, proc.stderr[-2000:]
    (error,) = errors
    assert error["level"] == "error"
    assert error["missing"] == sorted(hidden)
    assert set(error["reasons"]) == set(hidden)
    assert "scripts/package.sh" in error["fix"]
    assert not Path(ocd_env["OCD_DATA_DIR"]).exists(), "the run touched the data directory"


def test_the_guard_passes_where_duckdb_and_numpy_import() -> None:
    assert require_writer_natives() is None


def test_a_module_that_fails_to_load_counts_as_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A module built for another Python or platform is there but raises ImportError."""
    (tmp_path / "numpy.py").write_text("raise ImportError('wrong ELF class: ELFCLASS32')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "numpy")

    with pytest.raises(NativeDependencyMissing) as caught:
        require_writer_natives()

    assert list(caught.value.missing) == ["numpy"]
    assert "wrong ELF class" in caught.value.missing["numpy"]
    assert "numpy" in str(caught.value) and "scripts/package.sh" in str(caught.value)
