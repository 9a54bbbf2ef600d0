"""Helpers for the delivery suite: a real HTTP receiver, alerts in a real store, their release.

``Receiver`` is an HTTP server on a thread on 127.0.0.1. It verifies every request's signature
with the ``standardwebhooks`` library (as a subscriber would), answers each request as its plan
says (2xx, an error status, never, a dropped connection, a trickle), and counts the requests it
acknowledged per ``webhook-id``. Alerts enter the store through the analysis phase's own write
(``analysis._write_alerts``: alerts and outbox rows in one transaction), and are released by the
real exporter's publish.
"""

from __future__ import annotations

import base64
import contextlib
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
from standardwebhooks import Webhook, WebhookVerificationError

from chalicelib.analytics.detectors.base import Finding
from chalicelib.analytics.scoring import Candidate
from chalicelib.config import Settings, load_settings
from chalicelib.domain.models import Explanation
from chalicelib.exportformat import Manifest, load_manifest
from chalicelib.storage.factory import make_storage
from chalicelib.write import analysis
from chalicelib.write.delivery.deliverer import DeliveryResult, deliver
from chalicelib.write.exporter import JSONExporter
from chalicelib.write.store import Store

SECRET = "whsec_" + base64.b64encode(b"delivery-suite-secret-0123456789").decode()
T0 = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)  # the writer's (pinned) clock
TICKERS = ("SPY", "QQQ", "AAPL", "MSFT", "NVDA", "TSLA", "AMD", "AMZN", "META", "GOOGL")
HANG_SECONDS = 30.0  # a hanging answer is released when the receiver closes, at the latest


@dataclass
class Received:
    n: int  # 1-based, in arrival order
    path: str
    headers: dict[str, str]
    body: bytes
    behaviour: str
    verified: bool | None  # None: the receiver checks no signature (Slack)
    acknowledged: bool = False  # a 2xx was written whole
    client_left: bool = False  # the sender closed the connection before the answer ended

    @property
    def webhook_id(self) -> str | None:
        return self.headers.get("webhook-id")

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class Receiver:
    """``plan`` maps request numbers to behaviours; the others get ``default``. Behaviours:
    ``ok`` (200), a status code (``"503"``), ``hang``, ``drop``, ``trickle``."""

    plan: dict[int, str] = field(default_factory=dict)
    default: str = "ok"
    secret: str | None = SECRET
    requests: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/alerts?source=ocd"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def acks(self) -> Counter[str]:
        """Acknowledged requests per ``webhook-id`` (per alert id in the body for Slack)."""
        return Counter(r.webhook_id or "" for r in self.requests if r.acknowledged)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length", 0))
        body = handler.rfile.read(length)
        headers = {k.lower(): v for k, v in handler.headers.items()}
        verified = None
        if self.secret is not None:
            try:
                Webhook(self.secret).verify(body, headers)
                verified = True
            except WebhookVerificationError:
                verified = False
        with self._lock:
            n = len(self.requests) + 1
            behaviour = self.plan.get(n, self.default)
            received = Received(n, handler.path, headers, body, behaviour, verified)
            self.requests.append(received)
        if behaviour == "hang":
            self.release.wait(HANG_SECONDS)
            return
        if behaviour == "drop":
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
            return
        try:
            if behaviour == "trickle":  # a valid answer, a byte every 0.1 s for 6 s
                answer = b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n" + b"X-Pad: x\r\n" * 5 + b"\r\n"
                for i in range(0, len(answer)):
                    handler.wfile.write(answer[i : i + 1])
                    handler.wfile.flush()
                    time.sleep(6.0 / len(answer))
                received.acknowledged = True
                return
            status = 200 if behaviour == "ok" else int(behaviour)
            handler.send_response(status)
            handler.send_header("Content-Length", "2")
            handler.end_headers()
            handler.wfile.write(b"ok")
            handler.wfile.flush()
            received.acknowledged = 200 <= status < 300
        except (BrokenPipeError, ConnectionResetError):
            received.client_left = True


# ---- alerts, publishing, delivering -------------------------------------------------------
def settings_for(root: Path, **values: str) -> Settings:
    """Writer settings in ``root`` from an explicit mapping (never the process environment)."""
    env = {"OCD_DATA_DIR": str(root), "OCD_WATCHLIST": "SPY,QQQ", "OCD_LOG_LEVEL": "WARNING"}
    env.update({f"OCD_{k.upper()}": v for k, v in values.items()})
    return load_settings(env)


def webhook_settings(root: Path, receiver: Receiver, **values: str) -> Settings:
    values = {"alert_delivery_timeout_seconds": "0.5", **values}
    return settings_for(root, alert_webhook_url=receiver.url, alert_webhook_secret=SECRET,
                        **values)  # fmt: skip


def candidates(n: int, as_of: datetime = T0, score: float = 70.0) -> list[Candidate]:
    """``n`` findings with distinct ids (one per ticker, then per detector)."""
    detectors = ("rich_premium", "low_iv", "term_kink")
    out = []
    for i in range(n):
        ticker, detector = TICKERS[i % len(TICKERS)], detectors[i // len(TICKERS)]
        finding = Finding(
            detector=detector,
            score=score,
            metrics={"atm_iv": 0.21, "iv_rank": float("nan")},  # NaN leaves as null
            explanation=Explanation(
                summary=f"{ticker} {detector} & <friends>", rationale="IV sits in the top decile."
            ),
            strategies=["short_put"],
        )
        out.append(Candidate(ticker, as_of + timedelta(seconds=i), finding))
    return out


def add_alerts(store: Store, settings: Settings, cands: list[Candidate]) -> list[str]:
    """Write alerts the way the analysis phase does; their ids, oldest first."""
    errors: list[str] = []
    alerts = analysis._alerts(cands, "scan_delivery_test", errors)
    analysis._write_alerts(store, alerts, {}, errors, settings)
    assert not errors, errors
    return [c.id for c in cands]


def publish(store: Store, settings: Settings) -> Manifest:
    """A real export of the store: what releases its alerts for delivery."""
    results = JSONExporter(store, make_storage(settings), settings).export_all()
    assert all(r.ok for r in results.values()), results
    manifest = load_manifest(make_storage(settings))
    assert manifest is not None
    return manifest


def deliver_now(store: Store, settings: Settings, now: datetime, **kwargs: Any) -> DeliveryResult:
    return deliver(store, make_storage(settings), settings, now, **kwargs)


def outbox(store: Store) -> dict[tuple[str, str], dict[str, Any]]:
    """Every outbox row by (alert_id, sink)."""
    columns = ("alert_id", "sink", "status", "attempts", "generation", "last_attempt_at",
               "next_attempt_at", "last_error", "last_error_at", "delivered_at",
               "receipt")  # fmt: skip
    rows = store.rows(f"SELECT {', '.join(columns)} FROM delivery_outbox")
    return {(r[0], r[1]): dict(zip(columns, r, strict=True)) for r in rows}


def naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


@contextlib.contextmanager
def refusing_port() -> Iterator[int]:
    """A loopback port bound but not listening: connections to it are refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()
