#!/usr/bin/env python3
"""Option Chain Dashboard command line: ``python scripts/ocd.py COMMAND``.

Commands invoke the Chalice app's own scheduled handlers (``app.handler_map``) with
CloudWatch-shaped events, so a local run exercises exactly what runs on AWS Lambda.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import orjson  # noqa: E402
from ocdlib.serve import PortBusy  # noqa: E402

from chalicelib.config import (  # noqa: E402
    ensure_data_dir,
    load_read_settings,
    load_settings,
    unknown_variables,
)
from chalicelib.errors import (  # noqa: E402
    ClockRefused,
    ConfigError,
    DatabaseDamaged,
    DatabaseDiverged,
    WriterBusy,
)

EX_UNAVAILABLE = 69  # the export failed: nothing new was published
EX_CONFIG = 78


def invoke(name: str, as_of: str | None = None) -> Any:
    """Run the app's own scheduled handler with an EventBridge-shaped event."""
    from ocdlib.emulator import invoke as invoke_handler

    from app import app

    return invoke_handler(app, name, {"as_of": as_of} if as_of else None)


WRITERS = ("cycle", "serve", "run", "import", "db")  # commands that write the data dir


def cmd_cycle(args: argparse.Namespace) -> int:
    if args.as_of:
        from chalicelib.write.schedules import parse_as_of

        parse_as_of(args.as_of)  # an unreadable time stops here, before anything runs
    summary: dict[str, Any] = {"collect": invoke("collect", args.as_of), "export": None}
    aborted = summary["collect"].get("status") == "aborted"
    if not aborted:
        summary["export"] = invoke("export", args.as_of)
    print(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())
    if aborted:
        # Another writer persisted the database first (S3): this run's collect was discarded,
        # and exporting now would publish the winner's data next to the winner's own export.
        print("ocd: writer busy: another writer persisted the database first; this cycle "
              "published nothing", file=sys.stderr)  # fmt: skip
        return WriterBusy.exit_code
    export = summary["export"] or {}
    if not export.get("ok"):
        print(f"ocd: the export failed: {export.get('error')}; readers still get generation "
              f"{export.get('generation')}", file=sys.stderr)  # fmt: skip
        return EX_UNAVAILABLE
    return 0


def _every_sets_the_schedule(every: float | None) -> None:
    """``--every S`` is the schedule: the API's stale threshold (3 export intervals) follows."""
    if every is not None:
        import math

        seconds = str(max(1, math.ceil(every)))
        os.environ["OCD_EXPORT_INTERVAL_SECONDS"] = seconds
        os.environ["OCD_COLLECT_INTERVAL_SECONDS"] = seconds


def cmd_serve(args: argparse.Namespace) -> int:
    from ocdlib.serve import supervise

    _every_sets_the_schedule(args.every)

    return supervise(port=args.port, storage=args.storage, bucket=args.bucket, every=args.every,
                     http=True, server=args.server)  # fmt: skip


def cmd_run(args: argparse.Namespace) -> int:
    from ocdlib.serve import supervise

    _every_sets_the_schedule(args.every)

    return supervise(port=None, storage=args.storage, bucket=args.bucket, every=args.every,
                     http=False)  # fmt: skip


def cmd_status(args: argparse.Namespace) -> int:
    """The same freshness report as ``/health``, for whichever backend is configured."""
    from chalicelib.read.reader import ExportReader
    from chalicelib.read.service import health_report
    from chalicelib.storage.factory import make_storage

    settings = load_read_settings()
    reader = ExportReader(make_storage(settings))
    report = health_report(reader, settings)
    manifest = reader.manifest()
    report["tickers"] = len(manifest.chains) if manifest else 0
    if args.json:
        print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    else:
        print(status_summary(report))
    return 0 if manifest is not None else 1


def status_summary(report: dict[str, Any]) -> str:
    """A few lines a person reads at a glance (``--json`` for the whole report)."""
    if report["generation"] is None:
        return f"nothing published yet at {report['storage']['location']}"
    lines = [
        f"{report['status'].upper()}"
        + (f": {report['status_reason']}" if report.get("status_reason") else ""),
        f"export      generation {report['generation']}, {_ago(report['age_seconds'])} ago, "
        f"{report['tickers']} tickers ({report['source']})",
    ]
    market = report.get("market")
    if market:
        age = _ago(market["quotes_age_seconds"])
        lines.append(f"quotes      as of {market['quotes_as_of']} ({age} ago), market "
                     f"{market['state']}, provider {report.get('provider')}")  # fmt: skip
    for step in ("last_export", "last_collect"):
        last = report.get(step)
        if last and not last["ok"]:
            lines.append(f"{step.replace('_', ' '):11s} FAILED at {last['at']}: {last['error']}")
    lines.append(f"storage     {report['storage']['backend']} {report['storage']['location']}")
    return "\n".join(lines)


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    for unit, size in (("d", 86_400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def cmd_bench(args: argparse.Namespace) -> int:
    from ocdlib import bench

    figures = bench.run(args.size, option_b_seconds=args.option_b_seconds, keep=args.keep)
    print(bench.table(figures))
    if args.json:
        Path(args.json).write_bytes(orjson.dumps(figures, option=orjson.OPT_INDENT_2))
    return 0


def cmd_bench_import(args: argparse.Namespace) -> int:
    from ocdlib import importbench

    print(importbench.table(importbench.run(args.rows, args.rounds, keep=args.keep)))
    return 0


def cmd_bench_http(args: argparse.Namespace) -> int:
    from ocdlib import httpbench

    servers = [s for s in args.servers.split(",") if s]
    rows = httpbench.run(servers, seconds=args.seconds, connections=args.connections,
                         every=args.every)  # fmt: skip
    print(httpbench.table(rows, args.connections))
    if args.json:
        Path(args.json).write_bytes(orjson.dumps(rows, option=orjson.OPT_INDENT_2))
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from ocdlib.importcmd import run

    return run(args.paths, ticker=args.ticker, as_json=args.json)


def cmd_soak(args: argparse.Namespace) -> int:
    from ocdlib import soak

    tickers = tuple(t.strip().upper() for t in args.tickers.split(",")) if args.tickers else None
    if args.generated:
        tickers = tuple(f"T{i:04d}" for i in range(args.generated))
    print(soak.HEADER, flush=True)
    counter = iter(range(1, args.sessions + 1))
    figures = soak.run(
        args.sessions,
        args.every,
        tickers or soak.DEFAULT_WATCHLIST,
        args.storage,
        report=lambda row: print(soak.line(next(counter), row), flush=True),
    )
    start = min(args.plateau_from, len(figures))
    summary = soak.plateau(figures, start)
    print(orjson.dumps(summary).decode())
    if args.json:
        document = {"sessions": soak.as_json(figures), "plateau": summary}
        Path(args.json).write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    """``db check``; ``db push`` / ``db pull``: the explicit choice between a local and a bucket
    database."""
    from chalicelib.errors import OCDError
    from chalicelib.storage.factory import make_state_storage
    from chalicelib.write.dbstate import DatabaseState

    settings = load_settings()
    if args.action == "check":
        from ocdlib import dbcheck

        return dbcheck.run(settings)
    state = DatabaseState(make_state_storage(settings), settings.database)
    try:
        version = (
            state.push(force=args.force) if args.action == "push" else state.pull(force=args.force)
        )
    except OCDError as exc:
        print(f"ocd: db {args.action}: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 1)
    where = f"{state.location}" if args.action == "push" else str(settings.database)
    print(f"db {args.action}: {where} is now version {version}")
    return 0


def _stack_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage",
        choices=["local", "s3"],
        default="local",
        help="s3: start moto's S3 server on loopback and use it",
    )
    parser.add_argument("--bucket", default="ocd-local", help="bucket name with --storage s3")
    parser.add_argument(
        "--every",
        type=_positive_float,
        default=None,
        help="override every schedule's rate (seconds, > 0), e.g. for demos; the stale "
        "threshold follows",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ocd.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    cycle = sub.add_parser("cycle", help="one full pass of the scheduled work; JSON on stdout")
    cycle.add_argument("--as-of", help="pin the market clock (ISO 8601, UTC if no offset)")
    cycle.set_defaults(func=cmd_cycle)
    serve = sub.add_parser("serve", help="schedule emulator + HTTP server, supervised")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--server",
        choices=["chalice", "production"],
        default="chalice",
        help="chalice: Chalice's local development server; production: the same app behind "
        "gunicorn (worker processes, backlog, keep-alive idle timeout)",
    )
    _stack_options(serve)
    serve.set_defaults(func=cmd_serve)
    run = sub.add_parser("run", help="the schedule emulator alone")
    _stack_options(run)
    run.set_defaults(func=cmd_run)
    status = sub.add_parser("status", help="the published manifest and data age")
    status.add_argument("--json", action="store_true", help="the whole report as JSON")
    status.set_defaults(func=cmd_status)
    bench = sub.add_parser("bench", help="benchmark against seed-style baselines (temp dir)")
    bench.add_argument("--size", choices=["small", "medium", "full"], default="small")
    bench.add_argument("--json", help="also write the figures as JSON to this path")
    bench.add_argument("--option-b-seconds", type=float, default=10.0)
    bench.add_argument("--keep", action="store_true", help="keep the temp data dir")
    bench.set_defaults(func=cmd_bench)
    imports = sub.add_parser(
        "import", help="stage end-of-day option chain files (CSV, gzip, Parquet, our JSON)"
    )
    imports.add_argument("paths", nargs="+", metavar="PATH")
    imports.add_argument(
        "--ticker", help="for files whose rows carry no ticker (OptionsDX); else the file name's"
    )
    imports.add_argument("--json", action="store_true", help="print the summary as JSON")
    imports.set_defaults(func=cmd_import)
    soak = sub.add_parser("soak", help="many simulated sessions in-process: size and speed")
    soak.add_argument("--sessions", type=_positive_int, default=10)
    soak.add_argument("--every", type=_positive_float, default=10.0, help="minutes between runs")
    soak.add_argument("--tickers", help="comma-separated watchlist (default: the default one)")
    soak.add_argument("--generated", type=_positive_int, help="that many generated tickers")
    soak.add_argument("--storage", choices=["local", "s3"], default="local")
    soak.add_argument("--plateau-from", type=_positive_int, default=35,
                      help="session whose figures later ones are compared with")  # fmt: skip
    soak.add_argument("--json", help="also write the figures as JSON to this path")
    soak.set_defaults(func=cmd_soak)
    db = sub.add_parser("db", help="the database between local disk and the bucket")
    db.add_argument("action", choices=["check", "push", "pull"],
                    help="check: is the database whole, and how to recover if not; "
                         "push: the local file becomes the bucket's copy; "
                         "pull: the bucket's copy becomes the local file")  # fmt: skip
    db.add_argument("--force", action="store_true", help="overwrite a copy that differs")
    db.set_defaults(func=cmd_db)
    bench_http = sub.add_parser(
        "bench-http", help="both HTTP servers under wrk while the writer publishes"
    )
    bench_http.add_argument("--servers", default="chalice,production")
    bench_http.add_argument("--seconds", type=int, default=30)
    bench_http.add_argument("--connections", type=int, default=64)
    bench_http.add_argument("--every", type=_positive_float, default=20.0,
                            help="writer schedule (s)")  # fmt: skip
    bench_http.add_argument("--json", help="also write the figures as JSON to this path")
    bench_http.set_defaults(func=cmd_bench_http)
    bench_import = sub.add_parser("bench-import", help="import throughput on a generated CSV")
    bench_import.add_argument("--rows", type=int, default=1_000_000)
    bench_import.add_argument("--rounds", type=int, default=3)
    bench_import.add_argument("--keep", action="store_true", help="keep the temp dir")
    bench_import.set_defaults(func=cmd_bench_import)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for name in unknown_variables():
        print(f"ocd: warning: unknown variable {name} is ignored", file=sys.stderr)
    try:
        # status only reads the export: a bad writer setting must not hide what is published
        settings = (load_read_settings if args.command == "status" else load_settings)()
        if args.command in WRITERS:
            ensure_data_dir(settings)  # type: ignore[arg-type]
        return int(args.func(args))
    except (WriterBusy, ClockRefused, DatabaseDiverged, DatabaseDamaged) as exc:
        print(f"ocd: {exc}", file=sys.stderr)
        return exc.exit_code
    except PortBusy as exc:
        print(f"ocd: {exc}", file=sys.stderr)
        return PortBusy.exit_code
    except ConfigError as exc:
        print(f"ocd: configuration error: {exc}", file=sys.stderr)
        return EX_CONFIG


if __name__ == "__main__":
    sys.exit(main())
