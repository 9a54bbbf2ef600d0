"""A one-line progress bar on stderr, drawn only when stderr is a terminal (pipes stay clean)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


class ProgressBar:
    """Call it with (phase, fraction done, rows done or None); ``close`` clears the line.

    Shows the phase, a bar, the percentage, rows and rows/s when rows are known, and an ETA
    from the phase's own pace. Redraws at most every ``interval`` seconds.
    """

    def __init__(
        self,
        label: str,
        stream: TextIO | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        interval: float = 0.1,
        width: int = 24,
        force: bool = False,
    ) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.interval = interval
        self.width = width
        self.enabled = force or _is_tty(self.stream)
        self._phase: str | None = None
        self._started = 0.0
        self._drawn = 0.0
        self._dirty = False

    def __call__(self, phase: str, fraction: float, rows: int | None) -> None:
        if not self.enabled:
            return
        now = self.clock()
        if phase != self._phase:
            self._phase, self._started, self._drawn = phase, now, 0.0
        elif now - self._drawn < self.interval and fraction < 1.0:
            return
        self._drawn = now
        self.stream.write("\r\033[K" + self.line(phase, fraction, rows, now - self._started))
        self.stream.flush()
        self._dirty = True

    def line(self, phase: str, fraction: float, rows: int | None, elapsed: float) -> str:
        fraction = min(max(fraction, 0.0), 1.0)
        filled = round(fraction * self.width)
        bar = "#" * filled + "." * (self.width - filled)
        parts = [f"{self.label} {phase:<5} [{bar}]", f"{fraction * 100:5.1f}%"]
        if rows is not None:
            parts.append(f"{rows:,} rows")
            if elapsed > 0:
                parts.append(f"{rows / elapsed:,.0f} rows/s")
        if 0 < fraction < 1 and elapsed > 0:
            parts.append(f"ETA {elapsed * (1 - fraction) / fraction:.1f}s")
        return "  ".join(parts)

    def close(self) -> None:
        if self._dirty:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._dirty = False


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
