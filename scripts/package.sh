#!/usr/bin/env bash
# Package the prod stage for AWS: scripts/package.sh [OUTDIR]   (default: build/package)
#
# Writes OUTDIR/sam.json (SAM template, merged with .chalice/merge-template.json) and
# OUTDIR/deployment.zip for the python3.12 Lambda runtime, then checks both. It needs only the
# project's Python (3.11 will do) and the package index. Nothing is deployed; see docs/deploy.md.
#
# Why not plain `chalice package`: Chalice takes the Lambda runtime from the interpreter it runs
# under and only accepts manylinux wheels that runtime's glibc supports (python3.11: 2.26).
# duckdb 2.x and numpy 2.x ship manylinux_2_27/2_28 wheels only, so under 3.11 Chalice leaves
# them out with a warning and still exits 0. Instead, pip installs the wheels of the target
# runtime (--platform/--python-version/--implementation/--only-binary) into vendor/ of a staged
# copy of the project, which has no requirements.txt: Chalice packages the app code plus vendor/
# and downloads nothing. The template's runtime is then set to the target runtime.
#
# Environment:
#   PACKAGE_PYTHON  the Python with chalice and pip (default: .venv/bin/python, else python3)
#   PACKAGE_MAX_UNZIPPED_MB  limit for the unzipped package in MiB (default: 250, Lambda's own)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUTDIR=${1:-"$ROOT/build/package"}
MAX_MB=${PACKAGE_MAX_UNZIPPED_MB:-250}
# The target: Lambda's python3.12 runs on Amazon Linux 2023, whose glibc is 2.34.
RUNTIME=python3.12
PY_VERSION=3.12
GLIBC_MINOR=34

die() {
    echo "package.sh: $*" >&2
    exit 1
}

if [ -n "${PACKAGE_PYTHON:-}" ]; then
    PYTHON=$PACKAGE_PYTHON
elif [ -x "$ROOT/.venv/bin/python" ]; then
    PYTHON=$ROOT/.venv/bin/python
else
    PYTHON=$(command -v python3 || true)
fi
[ -n "$PYTHON" ] || die "no Python found; set PACKAGE_PYTHON"
"$PYTHON" -c 'import chalice, pip' 2>/dev/null ||
    die "$PYTHON lacks chalice or pip: $PYTHON -m pip install -r requirements-dev.txt"

# Every manylinux tag whose glibc the runtime has, newest first. pip matches --platform tags
# exactly (only manylinux2014 implies manylinux2010 and manylinux1), so each one is named.
PLATFORMS=()
for ((minor = GLIBC_MINOR; minor >= 17; minor--)); do
    PLATFORMS+=(--platform "manylinux_2_${minor}_x86_64")
done
PLATFORMS+=(--platform manylinux2014_x86_64)

STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
tar -C "$ROOT" --exclude=__pycache__ -cf - app.py chalicelib | tar -C "$STAGE" -xf -
mkdir "$STAGE/.chalice"
cp "$ROOT"/.chalice/*.json "$STAGE/.chalice/"

echo "package.sh: pip install -r requirements.txt for $RUNTIME (manylinux, glibc <= 2.$GLIBC_MINOR)" >&2
"$PYTHON" -m pip install --quiet --disable-pip-version-check --no-compile \
    --target "$STAGE/vendor" --implementation cp --python-version "$PY_VERSION" \
    "${PLATFORMS[@]}" --only-binary=:all: -r "$ROOT/requirements.txt" ||
    die "pip could not install the $RUNTIME wheels of requirements.txt"
rm -rf "$STAGE/vendor/bin" # console scripts, with this machine's interpreter in their shebang

# Chalice only needs a region to name the Lambda service principal; nothing is called. It
# imports app.py to read the routes: no bytecode of this interpreter may land in the zip.
export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1}
mkdir -p "$OUTDIR"
LOG="$OUTDIR/chalice-package.log"
echo "package.sh: chalice package --stage prod -> $OUTDIR" >&2
if ! PYTHONDONTWRITEBYTECODE=1 "$PYTHON" -c 'import sys; from chalice.cli import main; sys.exit(main())' \
    --project-dir "$STAGE" package --stage prod \
    --merge-template "$ROOT/.chalice/merge-template.json" "$OUTDIR" >"$LOG" 2>&1; then
    cat "$LOG" >&2
    die "chalice package failed"
fi
cat "$LOG" >&2

if ! "$PYTHON" "$ROOT/scripts/ocdlib/lambda_package.py" "$OUTDIR" "$RUNTIME" "$MAX_MB"; then
    rm -f "$OUTDIR/deployment.zip" # nothing that failed its checks is left to deploy
    die "the package failed its checks"
fi
echo "$OUTDIR"
