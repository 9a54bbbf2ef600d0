"""``ocd.py import PATH…``: stage end-of-day option chain files for the file provider.

Every file's format is checked before anything is staged, so a typo in a file list stages
nothing. Each file is then staged in its own transaction (re-importing one adds nothing), with a
progress bar on a terminal and a summary at the end: rows accepted, rejected by reason, already
imported, tickers and dates. ``OCD_PROVIDER=file`` then replays the staged days, one per cycle.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from chalicelib.config import load_settings
from chalicelib.errors import WriterBusy
from chalicelib.write.importer import (
    FileReport,
    UnknownFormat,
    UnreadableFile,
    import_file,
    inspect,
)
from chalicelib.write.schedules import db_state
from chalicelib.write.store import Store
from ocdlib.progress import ProgressBar


def run(paths: list[str], *, ticker: str | None = None, as_json: bool = False) -> int:
    settings = load_settings()
    started = time.perf_counter()
    state = db_state(settings)
    if state is not None:
        state.restore()
    reports: list[FileReport] = []
    failed: UnknownFormat | UnreadableFile | None = None
    try:
        with Store(settings.database) as store:
            sources = [inspect(store, Path(p), ticker) for p in paths]
            for source in sources:
                bar = ProgressBar(source.path.name)
                try:
                    reports.append(
                        import_file(store, source, progress=bar if bar.enabled else None)
                    )
                finally:
                    bar.close()
    except (UnknownFormat, UnreadableFile) as exc:
        failed = exc
    if state is not None and any(r.accepted for r in reports):
        from chalicelib.write.dbstate import WriterConflict

        try:
            state.persist()
        except WriterConflict as exc:  # another writer persisted first: this import is lost
            print(f"ocd: import: {exc}; nothing was staged, run it again", file=sys.stderr)
            return WriterBusy.exit_code
    if failed is not None:
        print(f"ocd: import: {failed}", file=sys.stderr)
        if reports:
            print(f"ocd: import: the {len(reports)} file(s) before it were staged", file=sys.stderr)
        return failed.exit_code
    summary = _summary(reports, time.perf_counter() - started)
    if as_json:
        print(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())
    else:
        print(_text(summary))
        if settings.provider != "file" and summary["snapshots"]:
            print("replay     set OCD_PROVIDER=file: each collect then serves the next staged day")
    return 0


def _summary(reports: list[FileReport], seconds: float) -> dict[str, Any]:
    rejected: Counter[str] = Counter()
    for r in reports:
        rejected.update(r.rejected)
    rows = sum(r.rows for r in reports)
    dates = sorted({d for r in reports for d in r.dates})
    return {
        "files": [r.as_dict() for r in reports],
        "rows": rows,
        "accepted": sum(r.accepted for r in reports),
        "rejected": dict(sorted(rejected.items())),
        "skipped_already_imported": sum(r.skipped for r in reports),
        "snapshots": sum(r.snapshots for r in reports),
        "tickers": sorted({t for r in reports for t in r.tickers}),
        "dates": dates,
        "seconds": round(seconds, 3),
        "rows_per_second": round(rows / seconds) if seconds > 0 else None,
    }


def _text(summary: dict[str, Any]) -> str:
    lines = []
    for f in summary["files"]:
        lines.append(
            f"{f['path']}: {f['format']}, {f['rows']:,} rows, {f['accepted']:,} accepted, "
            f"{sum(f['rejected'].values()):,} rejected, "
            f"{f['skipped_already_imported']:,} already imported ({f['seconds']:.2f} s)"
        )
        scales = {k: v for k, v in f["units"].items() if v != 1.0}
        if scales:
            lines.append("  units: " + ", ".join(f"{k} ÷{v:g}" for k, v in scales.items()))
        if f["missing"]:
            lines.append(
                "  computed when replayed: "
                + ", ".join(f"{k} {v:,}" for k, v in f["missing"].items())
            )
    rejected = summary["rejected"]
    dates = summary["dates"]
    lines += [
        f"accepted   {summary['accepted']:,} of {summary['rows']:,} rows "
        f"({summary['snapshots']:,} snapshots; {summary['rows_per_second'] or 0:,} rows/s)",
        "rejected   "
        + (", ".join(f"{k} {v:,}" for k, v in rejected.items()) if rejected else "none"),
        f"skipped    {summary['skipped_already_imported']:,} rows already imported",
        f"tickers    {len(summary['tickers'])}: {', '.join(summary['tickers']) or '-'}",
        f"dates      {len(dates)}: " + (f"{dates[0]} … {dates[-1]}" if dates else "-"),
    ]
    return "\n".join(lines)
