"""Nothing on the read side imports DuckDB, numpy or the write side (the export format is the
seam), and the read side's modules import one another without a cycle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from readkit import ROOT

READ_SIDE = sorted(
    [
        *(ROOT / "chalicelib" / "read").glob("*.py"),
        *(ROOT / "chalicelib" / "storage").glob("*.py"),
        ROOT / "chalicelib" / "exportformat.py",
        ROOT / "chalicelib" / "exportstatus.py",
    ]
)
FORBIDDEN = ("duckdb", "numpy", "chalicelib.write")


def imported_modules(path: Path, *, top_level_only: bool = False) -> set[str]:
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    return names_imported(path.read_text(), package, top_level_only=top_level_only)


def names_imported(source: str, package: str, *, top_level_only: bool = False) -> set[str]:
    """Every module an import statement names (relative imports resolved against package)."""
    tree = ast.parse(source)
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _forbidden(names: set[str]) -> list[str]:
    return sorted(n for n in names if any(n == f or n.startswith(f + ".") for f in FORBIDDEN))


def test_the_scan_covers_the_read_side() -> None:
    names = {p.name for p in READ_SIDE}
    assert {"reader.py", "api.py", "http.py", "params.py", "openapi.py", "routes.py",
            "service.py", "responses.py", "dashboard.py", "examples.py"} <= names  # fmt: skip
    assert {"base.py", "local.py", "s3.py", "factory.py", "exportformat.py"} <= names


def test_the_scanner_sees_imports_of_every_form() -> None:
    source = (
        "import duckdb as d\n"
        "def f():\n"
        "    from ..write.store import Store\n"
        "    import chalicelib.write.exporter\n"
        "from . import api\n"
    )
    names = names_imported(source, "chalicelib.read")
    assert {"duckdb", "chalicelib.write.store", "chalicelib.write.exporter"} <= names
    assert "chalicelib.read.api" in names
    assert names_imported(source, "chalicelib.read", top_level_only=True) >= {"duckdb"}
    assert "chalicelib.write.store" not in names_imported(
        source, "chalicelib.read", top_level_only=True
    )


@pytest.mark.parametrize("path", READ_SIDE, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_read_side_module_imports_duckdb_numpy_or_the_write_side(path: Path) -> None:
    assert _forbidden(imported_modules(path)) == []


def test_app_imports_the_write_side_only_inside_handlers() -> None:
    """app.py imports the scheduled functions' glue (``schedules.py``) inside them, and the glue
    defers the write side's imports to its handlers in turn."""
    assert _forbidden(imported_modules(ROOT / "app.py", top_level_only=True)) == []
    glue = imported_modules(ROOT / "chalicelib" / "write" / "schedules.py", top_level_only=True)
    assert _forbidden(glue) == []


def test_importing_the_app_loads_no_duckdb_or_numpy() -> None:
    code = (
        "import sys; import app\n"
        "from chalicelib.read import reader, api, http, params, openapi\n"
        "openapi.document()\n"
        "bad = sorted(m for m in sys.modules if m in ('duckdb', 'numpy') or m.startswith(("
        "'duckdb.', 'numpy.', 'chalicelib.write.')))\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok"


def test_the_read_side_has_no_import_cycle() -> None:
    """Every import counts, deferred ones too: a module that imports another inside a function
    to dodge a cycle still has one."""
    modules = {f"chalicelib.read.{p.stem}": p for p in (ROOT / "chalicelib" / "read").glob("*.py")}
    graph = {
        name: {m for m in imported_modules(path) if m in modules and m != name}
        for name, path in modules.items()
    }
    done: set[str] = set()

    def visit(name: str, trail: tuple[str, ...]) -> None:
        assert name not in trail, " -> ".join((*trail[trail.index(name) :], name))
        if name in done:
            return
        for child in sorted(graph[name]):
            visit(child, (*trail, name))
        done.add(name)

    for name in sorted(graph):
        visit(name, ())
    assert graph["chalicelib.read.openapi"] and "chalicelib.read.http" not in graph[
        "chalicelib.read.openapi"]  # fmt: skip


def test_importing_the_app_defers_what_no_data_route_needs() -> None:
    """The writer's analytics config and schedule glue, the OpenAPI document's and the
    dashboard's modules are imported by what uses them, not by the API's cold start."""
    deferred = ("chalicelib.analytics.config", "chalicelib.write.schedules",
                "chalicelib.read.openapi", "chalicelib.read.dashboard")  # fmt: skip
    code = f"import sys, app; print(sorted(m for m in {deferred!r} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_the_apis_cold_start_creates_no_dataclass() -> None:
    """Records on the API's import path are NamedTuples (or slotted classes): creating a frozen
    dataclass compiles each of its methods, which cost the cold import ~10 ms for fourteen."""
    code = (
        "import dataclasses, sys, app\n"
        "mods = [m for n, m in list(sys.modules.items())\n"
        "        if n == 'app' or n.startswith('chalicelib')]\n"
        "print(sorted(f'{m.__name__}.{k}' for m in mods for k, v in vars(m).items()\n"
        "             if isinstance(v, type) and v.__module__ == m.__name__\n"
        "             and dataclasses.is_dataclass(v)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
