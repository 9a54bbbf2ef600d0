"""The prod package as AWS would receive it: built by scripts/package.sh, checked offline.

The script is run once per module (it needs PyPI: pip downloads the runtime's manylinux wheels),
with this test's interpreter and a PATH holding only its venv and the system directories, as on
a machine that has no Python but the project's. Every check reads the generated ``sam.json`` and
``deployment.zip``, never the config files alone, so what is asserted is what would be deployed.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "package.sh"
CONFIG = json.loads((ROOT / ".chalice" / "config.json").read_text())
PROD_ENV = CONFIG["stages"]["prod"]["environment_variables"]
BUCKET = PROD_ENV["OCD_BUCKET"]
EXPORT_PREFIX = PROD_ENV.get("OCD_PREFIX", "exports/")
STATE_PREFIX = PROD_ENV.get("OCD_STATE_PREFIX", "state/")
WRITERS = {"Collect", "Export"}  # the scheduled functions in app.py, as CloudFormation names them
API_HANDLER = "APIHandler"
# Lambda's "250 MB" unzipped limit is 262,144,000 bytes (the figure its API error quotes).
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
# glibc of each Lambda runtime's OS image (Amazon Linux 2 for 3.11, 2023 for 3.12 and 3.13).
RUNTIME_GLIBC = {"python3.11": (2, 26), "python3.12": (2, 34), "python3.13": (2, 34)}
NATIVE_MODULES = {
    "duckdb": "_duckdb",
    "numpy": "numpy/_core/_multiarray_umath",
    "pydantic_core": "pydantic_core/_pydantic_core",
    "orjson": "orjson/orjson",
}
PACKAGE_TIMEOUT_SECONDS = 1800


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    outdir = tmp_path_factory.mktemp("package")
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin", "/bin"]),
        "PACKAGE_PYTHON": sys.executable,
    }
    try:
        proc = subprocess.run(
            ["bash", str(SCRIPT), str(outdir)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=PACKAGE_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"scripts/package.sh took more than {PACKAGE_TIMEOUT_SECONDS} s")
    if proc.returncode != 0:
        noise = "WARNING: Location"  # this machine's pip config names local indexes
        log = "\n".join(line for line in proc.stderr.splitlines() if noise not in line)
        pytest.fail(f"scripts/package.sh exited {proc.returncode}:\n{log[-6000:]}")
    return outdir


@pytest.fixture(scope="module")
def template(package: Path) -> dict[str, Any]:
    return json.loads((package / "sam.json").read_text())


@pytest.fixture(scope="module")
def zip_infos(package: Path) -> list[zipfile.ZipInfo]:
    with zipfile.ZipFile(package / "deployment.zip") as zf:
        return zf.infolist()


@pytest.fixture(scope="module")
def wheel_tags(package: Path) -> dict[str, list[str]]:
    """``Tag:`` lines of every packaged distribution's WHEEL file, by dist-info directory."""
    tags = {}
    with zipfile.ZipFile(package / "deployment.zip") as zf:
        for name in zf.namelist():
            if re.fullmatch(r"[^/]+\.dist-info/WHEEL", name):
                text = zf.read(name).decode()
                tags[name.split("/")[0]] = re.findall(r"^Tag: (\S+)$", text, re.M)
    return tags


@pytest.fixture(scope="module")
def owners(package: Path) -> dict[str, str]:
    """The dist-info directory that installed each file, from the packaged RECORD files."""
    owner = {}
    with zipfile.ZipFile(package / "deployment.zip") as zf:
        for name in zf.namelist():
            if re.fullmatch(r"[^/]+\.dist-info/RECORD", name):
                for row in csv.reader(io.StringIO(zf.read(name).decode())):
                    owner[row[0]] = name.split("/")[0]
    return owner


def functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: res["Properties"]
        for name, res in template["Resources"].items()
        if res["Type"] == "AWS::Serverless::Function"
    }


def runtime_of(template: dict[str, Any]) -> str:
    runtimes = {props["Runtime"] for props in functions(template).values()}
    assert len(runtimes) == 1, f"functions disagree on the runtime: {runtimes}"
    return runtimes.pop()


def py_tag(runtime: str) -> str:
    return "cp" + runtime.removeprefix("python").replace(".", "")


def role_policies(template: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Statements of every IAM role's inline policies, by role name."""
    out: dict[str, list[dict[str, Any]]] = {}
    for name, res in template["Resources"].items():
        if res["Type"] == "AWS::IAM::Role":
            out[name] = [
                stmt
                for policy in res["Properties"].get("Policies", [])
                for stmt in policy["PolicyDocument"]["Statement"]
            ]
    return out


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def test_zip_contains_duckdb_numpy_and_the_other_native_modules(
    zip_infos: list[zipfile.ZipInfo], template: dict, owners: dict[str, str]
) -> None:
    names = {info.filename for info in zip_infos}
    cpython = f"cpython-{py_tag(runtime_of(template))[2:]}-x86_64-linux-gnu"
    for dist, stem in NATIVE_MODULES.items():
        # duckdb 2.x ships a stable-ABI module (_duckdb.abi3.so) for 3.12+; the others do not.
        wanted = {f"{stem}.{cpython}.so", f"{stem}.abi3.so"}
        found = names & wanted
        assert found, f"{dist}: none of {sorted(wanted)} in deployment.zip"
        for module in found:  # installed by that distribution's wheel, not left over
            assert owners.get(module, "").startswith(f"{dist}-"), (module, owners.get(module))


def test_unzipped_size_fits_lambda(zip_infos: list[zipfile.ZipInfo]) -> None:
    unzipped = sum(info.file_size for info in zip_infos)
    assert unzipped <= LAMBDA_UNZIPPED_LIMIT, f"unzipped package is {unzipped / 2**20:.1f} MiB"


def test_native_modules_are_built_for_the_template_runtime(
    template: dict,
    zip_infos: list[zipfile.ZipInfo],
    owners: dict[str, str],
    wheel_tags: dict[str, list[str]],
) -> None:
    tag = py_tag(runtime_of(template))
    names = [i.filename for i in zip_infos]
    foreign = [n for n in names if ".cpython-" in n and f".cpython-{tag[2:]}-" not in n]
    assert not foreign, f"modules or bytecode built for another Python: {foreign[:5]}"

    modules = [n for n in names if re.search(r"\.(cpython-\d+-[^.]+|abi3)\.so$", n)]
    assert len(modules) >= len(NATIVE_MODULES), modules
    for module in modules:
        if ".abi3." in module:  # the stable ABI: loads on its wheel's CPython and any later one
            dist_tags = [t.split("-") for t in wheel_tags[owners[module]]]
            minimums = [int(py[2:]) for py, abi, _ in dist_tags if abi == "abi3"]
            assert minimums and min(minimums) <= int(tag[2:]), (module, dist_tags)
        else:
            assert module.endswith(f".cpython-{tag[2:]}-x86_64-linux-gnu.so"), module


def test_every_wheel_loads_on_the_template_runtime(
    template: dict, wheel_tags: dict[str, list[str]]
) -> None:
    runtime = runtime_of(template)
    assert runtime in RUNTIME_GLIBC, f"unexpected runtime {runtime}"
    tag = py_tag(runtime)
    glibc = RUNTIME_GLIBC[runtime]
    assert {"duckdb", "numpy", "pydantic_core"} <= {d.split("-")[0] for d in wheel_tags}
    for dist, tags in wheel_tags.items():
        assert tags, f"{dist}: WHEEL lists no tags"
        assert any(_runs_on(t, tag, glibc) for t in tags), f"{dist} {tags} won't load on {runtime}"


def _runs_on(wheel_tag: str, py: str, glibc: tuple[int, int]) -> bool:
    interpreter, abi, platform = wheel_tag.split("-")
    if interpreter.startswith("py"):
        interpreter_ok = True
    elif abi == "abi3":
        interpreter_ok = int(interpreter[3:]) <= int(py[3:])
    else:
        interpreter_ok = interpreter == py
    if abi not in ("none", "abi3", py) or not interpreter_ok:
        return False
    if platform == "any":
        return True
    legacy = {"manylinux1_x86_64": (2, 5), "manylinux2010_x86_64": (2, 12)}
    legacy["manylinux2014_x86_64"] = (2, 17)
    if platform in legacy:
        return legacy[platform] <= glibc
    m = re.fullmatch(r"manylinux_(\d+)_(\d+)_x86_64", platform)
    return bool(m) and (int(m[1]), int(m[2])) <= glibc


def test_cfn_lint_passes(package: Path) -> None:
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    assert cfn_lint.exists(), "cfn-lint is missing: pip install -r requirements-dev.txt"
    proc = subprocess.run(
        [str(cfn_lint), str(package / "sam.json")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_writer_functions_run_one_at_a_time(template: dict) -> None:
    props = functions(template)
    scheduled = {
        name
        for name, p in props.items()
        if any(e["Type"] == "Schedule" for e in p.get("Events", {}).values())
    }
    assert scheduled == WRITERS
    for name in WRITERS:
        assert props[name].get("ReservedConcurrentExecutions") == 1, name
        assert props[name]["Timeout"] and props[name]["MemorySize"], name


def test_writer_functions_are_not_retried(template: dict) -> None:
    configs: dict[str, list[dict[str, Any]]] = {}
    for res in template["Resources"].values():
        if res["Type"] == "AWS::Lambda::EventInvokeConfig":
            target = res["Properties"]["FunctionName"]
            assert set(target) == {"Ref"}, f"EventInvokeConfig must Ref its function: {target}"
            configs.setdefault(target["Ref"], []).append(res["Properties"])
    for name in WRITERS:
        assert len(configs.get(name, [])) == 1, f"{name}: expected one EventInvokeConfig"
        (cfg,) = configs[name]
        assert cfg["MaximumRetryAttempts"] == 0, name
        assert cfg["Qualifier"] == "$LATEST", name
    assert set(configs) <= set(functions(template)), "EventInvokeConfig for an unknown function"


def test_the_api_passes_gzip_bodies_to_every_client(template: dict) -> None:
    """The app gzips bodies itself and sends them base64 (``isBase64Encoded``); API Gateway
    decodes such a body only when the binary media types match the client's first Accept
    type, and browsers send ``*/*``: so every type is binary (text bodies pass unchanged)."""
    swagger = template["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]
    assert swagger["x-amazon-apigateway-binary-media-types"] == ["*/*"]


def test_api_handler_is_not_throttled_to_one(template: dict) -> None:
    assert "ReservedConcurrentExecutions" not in functions(template)[API_HANDLER]


def test_s3_access_is_limited_to_the_bucket_prefixes(template: dict) -> None:
    bucket_arn = f"arn:aws:s3:::{BUCKET}"
    allowed_objects = {f"{bucket_arn}/{EXPORT_PREFIX}*", f"{bucket_arn}/{STATE_PREFIX}*"}
    allowed_list_prefixes = {f"{EXPORT_PREFIX}*", f"{STATE_PREFIX}*"}
    roles = role_policies(template)
    for fn, props in functions(template).items():
        role = props["Role"]  # a role of this template, not some pre-existing ARN
        assert isinstance(role, dict) and role["Fn::GetAtt"][0] in roles, (fn, role)
    for role, statements in roles.items():
        for stmt in statements:
            actions = as_list(stmt["Action"])
            s3_actions = [a for a in actions if a.lower().startswith("s3:")]
            if not s3_actions:
                continue
            assert stmt["Effect"] == "Allow"
            assert "NotResource" not in stmt and "NotAction" not in stmt, stmt
            assert not any("*" in a for a in s3_actions), f"{role}: wildcard action {s3_actions}"
            resources = as_list(stmt["Resource"])
            assert "*" not in resources, f"{role}: s3 on '*'"
            if s3_actions == ["s3:ListBucket"]:
                assert resources == [bucket_arn], f"{role}: ListBucket on {resources}"
                assert "StringLike" in stmt.get("Condition", {}), f"{role}: unconditioned list"
                prefixes = as_list(stmt["Condition"]["StringLike"]["s3:prefix"])
                assert set(prefixes) <= allowed_list_prefixes, f"{role}: lists {prefixes}"
            else:
                assert "s3:ListBucket" not in s3_actions, f"{role}: ListBucket without condition"
                assert set(resources) <= allowed_objects, f"{role}: s3 on {resources}"


def test_api_handler_only_reads_exports(template: dict) -> None:
    role = functions(template)[API_HANDLER]["Role"]["Fn::GetAtt"][0]
    s3 = [s for s in role_policies(template)[role] if "s3:" in json.dumps(s["Action"])]
    actions = {a for s in s3 for a in as_list(s["Action"])}
    assert actions == {"s3:GetObject", "s3:ListBucket"}
    resources = {r for s in s3 for r in as_list(s["Resource"])}
    assert resources == {f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/{EXPORT_PREFIX}*"}
    for s in s3:
        if "s3:ListBucket" in as_list(s["Action"]):
            assert as_list(s["Condition"]["StringLike"]["s3:prefix"]) == [f"{EXPORT_PREFIX}*"]


def test_writer_role_covers_exports_and_state(template: dict) -> None:
    for fn in WRITERS:
        role = functions(template)[fn]["Role"]["Fn::GetAtt"][0]
        granted = {
            (a, r)
            for s in role_policies(template)[role]
            for a in as_list(s["Action"])
            for r in as_list(s["Resource"])
        }
        for prefix in (EXPORT_PREFIX, STATE_PREFIX):
            for action in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject"):
                assert (action, f"arn:aws:s3:::{BUCKET}/{prefix}*") in granted, (fn, action)
        assert any(a == "logs:PutLogEvents" for a, _ in granted), fn
