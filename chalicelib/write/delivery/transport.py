"""One HTTP POST with a hard time limit: a hanging or trickling endpoint cannot hold the writer.

``http.client`` (the standard library; no HTTP dependency for one POST) with the socket timeout
bounding the connect, and a watchdog that shuts the socket down when the whole exchange passes
the limit: a socket timeout alone bounds each read, not their sum, so an endpoint sending a
byte every few seconds would otherwise hold the request for ever. Redirects are not followed:
a 3xx is a failure like any other non-2xx.

Failures carry a reason that is safe to record and publish: the status, "timed out", or the
exception's class. Never the URL (a Slack webhook URL is itself the secret) nor a library's
message (which may quote it).
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from urllib.parse import urlsplit

USER_AGENT = "option-chain-dashboard"


class DeliveryFailed(Exception):
    """An attempt that was not acknowledged. ``endpoint_down``: the endpoint itself looks
    unhealthy (timeout, connection error, 5xx, 429), so this run sends it nothing more."""

    def __init__(self, reason: str, *, endpoint_down: bool) -> None:
        self.reason = reason
        self.endpoint_down = endpoint_down
        super().__init__(reason)


def post(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> int:
    """POST ``body``; the 2xx status, or DeliveryFailed. Takes at most about ``timeout`` s."""
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(
            parts.hostname or "", parts.port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    deadline = time.monotonic() + timeout
    watchdog = _Watchdog(conn)
    try:
        conn.connect()
        watchdog.start(deadline - time.monotonic())
        conn.request("POST", target, body=body,
                     headers={"User-Agent": USER_AGENT, "Content-Type": "application/json",
                              **headers})  # fmt: skip
        status = conn.getresponse().status
    except (OSError, http.client.HTTPException) as exc:
        if watchdog.fired or isinstance(exc, TimeoutError):
            reason = f"timed out after {timeout:g} s"
        else:
            reason = f"connection failed: {type(exc).__name__}"
        raise DeliveryFailed(reason, endpoint_down=True) from None
    finally:
        watchdog.cancel()
        conn.close()
    if 200 <= status < 300:
        return status
    raise DeliveryFailed(f"HTTP {status}", endpoint_down=status >= 500 or status == 429)


class _Watchdog:
    """Shuts the connection's socket down once the deadline passes: the blocked read returns."""

    def __init__(self, conn: http.client.HTTPConnection) -> None:
        self.conn = conn
        self.fired = False
        self._timer: threading.Timer | None = None

    def start(self, seconds: float) -> None:
        self._timer = threading.Timer(max(0.0, seconds), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        self.fired = True
        sock = self.conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed
                sock.shutdown(socket.SHUT_RDWR)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
