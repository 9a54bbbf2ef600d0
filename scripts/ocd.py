#!/usr/bin/env python3
"""Option Chain Dashboard command line: ``python scripts/ocd.py COMMAND``.

Commands invoke the Chalice app's own scheduled handlers (``app.handler_map``) with
CloudWatch-shaped events, so a local run exercises exactly what runs on AWS Lambda.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from chalicelib.config import load_settings  # noqa: E402
from chalicelib.errors import ConfigError, WriterBusy  # noqa: E402

EX_CONFIG = 78


def scheduled_event(rule: str, as_of: str | None = None) -> dict[str, Any]:
    """The event EventBridge delivers for a scheduled rule (``detail.as_of`` pins the clock)."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "version": "0",
        "id": f"local-{rule}-{now}",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "000000000000",
        "time": now,
        "region": "us-east-1",
        "resources": [f"arn:aws:events:us-east-1:000000000000:rule/{rule}"],
        "detail": {"as_of": as_of} if as_of else {},
    }


def invoke(name: str, as_of: str | None = None) -> Any:
    from app import app

    return app.handler_map[name](scheduled_event(name, as_of), None)


def cmd_cycle(args: argparse.Namespace) -> int:
    summary = {"collect": invoke("collect", args.as_of), "export": invoke("export", args.as_of)}
    print(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ocd.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    cycle = sub.add_parser("cycle", help="one full pass of the scheduled work; JSON on stdout")
    cycle.add_argument("--as-of", help="pin the market clock (ISO 8601, UTC if no offset)")
    cycle.set_defaults(func=cmd_cycle)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        load_settings()
        return int(args.func(args))
    except WriterBusy as exc:
        print(f"ocd: {exc}", file=sys.stderr)
        return WriterBusy.exit_code
    except ConfigError as exc:
        print(f"ocd: configuration error: {exc}", file=sys.stderr)
        return EX_CONFIG


if __name__ == "__main__":
    sys.exit(main())
