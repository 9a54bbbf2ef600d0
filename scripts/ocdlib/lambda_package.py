"""Finish and check the Lambda package that ``scripts/package.sh`` built (standard library only).

Chalice writes the runtime of the interpreter it ran under into the template, while the zip holds
wheels pip chose for the target runtime. This step makes every function's ``Runtime`` the target
and refuses a package Lambda could not load: a native module built for another Python, duckdb,
numpy or pydantic_core missing, or more than Lambda's unzipped limit.

Usage: ``python lambda_package.py OUTDIR RUNTIME MAX_UNZIPPED_MIB``
"""

from __future__ import annotations

import json
import re
import sys
import zipfile
from pathlib import Path

# The extension module each dependency cannot import without (abi3: the stable ABI, any 3.x).
REQUIRED = {
    "duckdb": "_duckdb",
    "numpy": "numpy/_core/_multiarray_umath",
    "pydantic_core": "pydantic_core/_pydantic_core",
}
EXTENSION = re.compile(r"\.(?:cpython-\d+-x86_64-linux-gnu|abi3)\.so$")
CPYTHON = re.compile(r"\.cpython-(\d+)\b")


def set_runtime(template_path: Path, runtime: str) -> int:
    """Give every function of the SAM template ``runtime``; returns how many there are."""
    template = json.loads(template_path.read_text())
    functions = [
        res["Properties"]
        for res in template["Resources"].values()
        if res["Type"] == "AWS::Serverless::Function"
    ]
    for props in functions:
        props["Runtime"] = runtime
    template_path.write_text(json.dumps(template, indent=2) + "\n")
    return len(functions)


def check(zip_path: Path, runtime: str, max_bytes: int) -> tuple[list[str], str]:
    """Problems that would keep the zip from loading on ``runtime``, and a one-line summary."""
    tag = runtime.removeprefix("python").replace(".", "")
    with zipfile.ZipFile(zip_path) as zf:
        infos = zf.infolist()
    names = [info.filename for info in infos]
    modules = [name for name in names if EXTENSION.search(name)]
    problems = []
    for dist, stem in REQUIRED.items():
        wanted = {f"{stem}.cpython-{tag}-x86_64-linux-gnu.so", f"{stem}.abi3.so"}
        if not wanted & set(names):
            problems.append(f"{dist}: none of {sorted(wanted)}")
    # Extension modules and bytecode alike name the Python they were built for.
    foreign = sorted(n for n in names if (m := CPYTHON.search(n)) and m[1] != tag)
    if foreign:
        problems.append(f"{len(foreign)} files built for another Python, e.g. {foreign[:3]}")
    unzipped = sum(info.file_size for info in infos)
    if unzipped > max_bytes:
        problems.append(f"unzipped {unzipped / 2**20:.1f} MiB > {max_bytes / 2**20:.0f} MiB")
    summary = (
        f"deployment.zip {zip_path.stat().st_size / 2**20:.1f} MiB zipped, "
        f"{unzipped / 2**20:.1f} MiB unzipped, {len(modules)} native modules, {runtime}"
    )
    return problems, summary


def main(argv: list[str]) -> int:
    outdir, runtime, max_mib = Path(argv[0]), argv[1], float(argv[2])
    count = set_runtime(outdir / "sam.json", runtime)
    problems, summary = check(outdir / "deployment.zip", runtime, int(max_mib * 2**20))
    print(f"package.sh: {summary}; {count} functions set to {runtime}", file=sys.stderr)
    for problem in problems:
        print(f"package.sh: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
