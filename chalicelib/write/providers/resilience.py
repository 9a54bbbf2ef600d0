"""Guards for a remote market-data source: spacing between requests and a circuit breaker.

A public source throttles clients that call too fast and has bad hours. ``RateLimiter`` keeps a
minimum interval between requests; ``CircuitBreaker`` opens after ``threshold`` consecutive
failures and, for ``cooldown`` seconds, makes every call fail at once with ``CircuitOpen`` (a
``ProviderError``) instead of waiting on a source that is down. After the cool-down one trial
call goes through: a success closes the breaker, a failure opens it again. Clocks and sleeping
are parameters, so both are tested without waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from chalicelib.write.providers.base import ProviderError

T = TypeVar("T")


class CircuitOpen(ProviderError):
    """The source failed too often lately; calls fail fast until the cool-down ends."""

    def __init__(self, source: str, retry_in: float) -> None:
        self.source = source
        self.retry_in = retry_in
        super().__init__(f"{source}: circuit open after failures, retry in {retry_in:.0f}s")


@dataclass
class RateLimiter:
    min_interval: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _last: float | None = field(default=None, repr=False)

    def wait(self) -> None:
        """Sleep until ``min_interval`` has passed since the previous request, then mark now."""
        now = self.clock()
        if self._last is not None and now - self._last < self.min_interval:
            self.sleep(self.min_interval - (now - self._last))
            now = self.clock()
        self._last = now


@dataclass
class CircuitBreaker:
    threshold: int = 3
    cooldown: float = 300.0
    clock: Callable[[], float] = time.monotonic
    failures: int = 0
    opened_at: float | None = None

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "open" if self.clock() - self.opened_at < self.cooldown else "half-open"

    def check(self, source: str) -> None:
        """Raise CircuitOpen while open; let a call through when closed or half-open."""
        if self.state == "open":
            assert self.opened_at is not None
            raise CircuitOpen(source, self.opened_at + self.cooldown - self.clock())

    def success(self) -> None:
        self.failures, self.opened_at = 0, None

    def failure(self) -> None:
        self.failures += 1
        if self.failures >= self.threshold or self.opened_at is not None:  # a failed trial too
            self.opened_at = self.clock()


@dataclass
class Guard:
    """Calls to one source, spaced by ``limiter`` and cut off by ``breaker``."""

    source: str
    limiter: RateLimiter
    breaker: CircuitBreaker

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)``; any failure becomes a ProviderError and counts against the breaker."""
        self.breaker.check(self.source)
        self.limiter.wait()
        try:
            result = fn(*args)
        except Exception as exc:
            self.breaker.failure()
            if isinstance(exc, ProviderError):
                raise
            raise ProviderError(f"{self.source}: {type(exc).__name__}: {exc}") from exc
        self.breaker.success()
        return result
