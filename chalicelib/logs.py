"""Structured logging: one JSON object per line on stderr, with counts, bytes and durations."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import orjson

_LOGGER = logging.getLogger("ocd")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
        }
        payload.update(getattr(record, "fields", {}))
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(payload, default=str, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def configure(level: str = "INFO") -> None:
    """Install the JSON handler once; later calls only change the level."""
    if not any(isinstance(h.formatter, JsonFormatter) for h in _LOGGER.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        _LOGGER.addHandler(handler)
        _LOGGER.propagate = False
    _LOGGER.setLevel(level)


def log_event(event: str, level: int = logging.INFO, **fields: Any) -> None:
    _LOGGER.log(level, event, extra={"fields": fields})


@contextmanager
def timed(event: str, **fields: Any) -> Iterator[dict[str, Any]]:
    """Log ``event`` with ``duration_ms`` when the block ends; the block may add fields."""
    extra: dict[str, Any] = dict(fields)
    start = time.perf_counter()
    try:
        yield extra
    finally:
        extra["duration_ms"] = round((time.perf_counter() - start) * 1000, 3)
        log_event(event, **extra)
