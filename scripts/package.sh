#!/usr/bin/env bash
# Package the prod stage for AWS: scripts/package.sh [OUTDIR]   (default: build/package)
#
# Writes OUTDIR/sam.json (SAM template, merged with .chalice/merge-template.json) and
# OUTDIR/deployment.zip, then checks the zip. Nothing is deployed; see docs/deploy.md.
#
# Why Python 3.12: Chalice takes the Lambda runtime from the interpreter it runs under and only
# accepts manylinux wheels whose glibc that runtime has (python3.11: <= 2.26, python3.12: 2.34).
# duckdb 2.x and numpy 2.x ship manylinux_2_27/2_28 wheels only, so under 3.11 Chalice drops
# them with a warning and still exits 0. We therefore package from a separate 3.12 venv.
#
# Environment:
#   PACKAGE_PYTHON  a Python 3.12 interpreter (default: pyenv's 3.12.x, else python3.12)
#   PACKAGE_VENV    where the packaging venv lives (default: build/package-venv-py312)
#   PACKAGE_MAX_UNZIPPED_MB  limit for the unzipped package (default: 250, Lambda's own limit)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUTDIR=${1:-"$ROOT/build/package"}
VENV=${PACKAGE_VENV:-"$ROOT/build/package-venv-py312"}
MAX_MB=${PACKAGE_MAX_UNZIPPED_MB:-250}
RUNTIME=python3.12

die() {
    echo "package.sh: $*" >&2
    exit 1
}

# Chalice caches the dependency zip by requirements hash; never let a bad one be reused.
purge_cached_package() {
    rm -f "$ROOT"/.chalice/deployments/*-"$RUNTIME".zip
}

is_py312() {
    [ -n "$1" ] && "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null
}

find_python() {
    local candidate
    if [ -n "${PACKAGE_PYTHON:-}" ]; then
        is_py312 "$PACKAGE_PYTHON" || die "PACKAGE_PYTHON=$PACKAGE_PYTHON is not a Python 3.12"
        echo "$PACKAGE_PYTHON"
        return
    fi
    for candidate in "$HOME"/.pyenv/versions/3.12*/bin/python "$(command -v python3.12 || true)"; do
        if is_py312 "$candidate"; then
            echo "$candidate"
            return
        fi
    done
    die "no Python 3.12 found. The Lambda package must be built with Python 3.12 (runtime
$RUNTIME), because Chalice silently drops duckdb/numpy wheels under 3.11. Install one
(e.g. 'pyenv install 3.12' or your distribution's python3.12) or set PACKAGE_PYTHON."
}

PYTHON=$(find_python)
CHALICE_SPEC=$(grep -E '^chalice([<>=!~ ]|$)' "$ROOT/requirements-dev.txt" | head -n1)
[ -n "$CHALICE_SPEC" ] || die "no chalice line in requirements-dev.txt"

# The venv needs chalice and the app's runtime requirements (chalice imports app.py).
STAMP_WANTED=$( (echo "$CHALICE_SPEC"; cat "$ROOT/requirements.txt") | sha256sum | cut -d' ' -f1)
if ! is_py312 "$VENV/bin/python" || [ "$(cat "$VENV/.stamp" 2>/dev/null)" != "$STAMP_WANTED" ]; then
    echo "package.sh: creating packaging venv $VENV with $PYTHON" >&2
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet "$CHALICE_SPEC" -r "$ROOT/requirements.txt"
    echo "$STAMP_WANTED" >"$VENV/.stamp"
fi

# Chalice only needs a region to name the Lambda service principal; nothing is called.
export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1}
mkdir -p "$OUTDIR"
LOG="$OUTDIR/chalice-package.log"
echo "package.sh: chalice package --stage prod -> $OUTDIR" >&2
if ! "$VENV/bin/chalice" --project-dir "$ROOT" package --stage prod \
    --merge-template "$ROOT/.chalice/merge-template.json" "$OUTDIR" >"$LOG" 2>&1; then
    cat "$LOG" >&2
    die "chalice package failed"
fi
cat "$LOG" >&2
# Chalice prints this and exits 0 when it cannot find a Lambda-compatible wheel.
if grep -q "Could not install dependencies" "$LOG"; then
    purge_cached_package
    die "chalice dropped dependencies (see above); the package would not run on Lambda"
fi

# Check what Lambda will get: the native modules, the size limit, the runtime.
if ! "$VENV/bin/python" - "$OUTDIR" "$RUNTIME" "$MAX_MB" <<'PY'
import json
import re
import sys
import zipfile
from pathlib import Path

outdir, runtime, max_mb = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])
tag = "cpython-" + runtime.removeprefix("python").replace(".", "")
# duckdb 2.x ships an abi3 (stable ABI) module; numpy and pydantic_core are version-specific.
suffix = rf"\.({tag}-x86_64-linux-gnu|abi3)\.so$"
native = {
    "duckdb": "_duckdb",
    "numpy": "numpy/_core/_multiarray_umath",
    "pydantic_core": "pydantic_core/_pydantic_core",
}
problems = []
with zipfile.ZipFile(outdir / "deployment.zip") as zf:
    infos = zf.infolist()
names = [i.filename for i in infos]
for what, stem in native.items():
    if not any(re.match(re.escape(stem) + suffix, n) for n in names):
        problems.append(f"no native module for {what} ({stem}{suffix})")
foreign = [n for n in names if re.search(r"\.cpython-\d+-", n) and tag not in n]
if foreign:
    problems.append(f"modules built for another Python: {foreign[:3]}")
unzipped_mb = sum(i.file_size for i in infos) / 1e6
if unzipped_mb > max_mb:
    problems.append(f"unzipped size {unzipped_mb:.1f} MB exceeds {max_mb:.0f} MB")
template = json.loads((outdir / "sam.json").read_text())
runtimes = {
    r["Properties"]["Runtime"]
    for r in template["Resources"].values()
    if r["Type"] == "AWS::Serverless::Function"
}
if runtimes != {runtime}:
    problems.append(f"template runtimes {sorted(runtimes)}, expected {runtime}")
zipped_mb = (outdir / "deployment.zip").stat().st_size / 1e6
print(f"package.sh: deployment.zip {zipped_mb:.1f} MB zipped, {unzipped_mb:.1f} MB unzipped, "
      f"runtime {runtime}", file=sys.stderr)
if problems:
    sys.exit("package.sh: " + "; ".join(problems))
PY
then
    purge_cached_package
    die "the package failed its checks"
fi
echo "$OUTDIR"
