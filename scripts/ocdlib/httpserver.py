"""The API over HTTP on this machine: ``httpserver.py --server chalice|production``.

- ``chalice`` (the default of ``ocd.py serve``): Chalice's own development server
  (``chalice.local.LocalDevServer``), as ``chalice local --no-autoreload`` runs it, with a request
  handler that answers like the rest of the API: JSON log lines instead of http.server's, no
  traceback when a client goes away mid-answer, HEAD without a body, and JSON errors in the API's
  shape for any method or path (http.server answers TRACE or a malformed request line with HTML).
- ``production``: the same app, through the same gateway (``wsgi.py``), behind gunicorn: one
  threaded worker process per core, a listen backlog of 1024, keep-alive with an idle timeout.

Both load the app as ``chalice local`` does (``gateway.load_app``) and answer every request
through ``gateway.answer``, so the route suite runs against either unchanged.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
from http import HTTPStatus
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
for _path in (str(ROOT), str(ROOT / "scripts")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from chalice.local import ChaliceRequestHandler, LocalDevServer  # noqa: E402

from chalicelib import logs  # noqa: E402
from chalicelib.config import load_read_settings  # noqa: E402
from chalicelib.errors import ConfigError  # noqa: E402
from chalicelib.logs import log_event  # noqa: E402
from ocdlib.gateway import answer, error_reply, load_app  # noqa: E402

SERVERS = ("chalice", "production")
PR_SET_PDEATHSIG = 1  # prctl(2)
GONE = (BrokenPipeError, ConnectionResetError)  # the client closed the connection first


class PoliteHandler(ChaliceRequestHandler):
    """Chalice's local request handler, answering and logging like the rest of the API."""

    def __getattr__(self, name: str) -> Any:
        # Every method goes to the gateway, which answers a route's unknown ones with 405.
        if name.startswith("do_"):
            return self._generic_handle
        raise AttributeError(name)

    def handle(self) -> None:
        try:
            super().handle()
        except GONE as exc:
            self.close_connection = True
            log_event("client_gone", level=logging.DEBUG, path=getattr(self, "path", ""),
                      reason=type(exc).__name__)  # fmt: skip

    def finish(self) -> None:
        with contextlib.suppress(*GONE):
            super().finish()

    def _generic_handle(self) -> None:
        try:
            length = int(self.headers.get("content-length") or 0)
        except ValueError:
            self.send_error(HTTPStatus.BAD_REQUEST, "Content-Length is not a number")
            return
        body = self.rfile.read(length) if length > 0 else None
        reply = answer(self.local_gateway, self.command, self.path, dict(self.headers), body)
        self.send_response(reply.status)
        for name, value in reply.headers:
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD" and reply.status not in (204, 304):
            self.wfile.write(reply.body)

    # ChaliceRequestHandler binds its own _generic_handle to these names: rebind them to ours
    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _generic_handle

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """A request http.server refuses before any route sees it (a malformed request line,
        an over-long URI or header): the API's JSON error, not http.server's HTML page."""
        status = HTTPStatus(code)
        self.log_error("code %d, message %s", code, message or status.phrase)
        reply = error_reply(code, status.phrase.lower().replace(" ", "_"), message or status.phrase)
        self.send_response(code)
        self.send_header("Connection", "close")
        self.close_connection = True
        for name, value in reply.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if getattr(self, "command", "") != "HEAD":
            self.wfile.write(reply.body)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        log_event("http_request", level=logging.DEBUG, method=getattr(self, "command", ""),
                  path=getattr(self, "path", ""), status=str(code))  # fmt: skip

    def log_error(self, format: str, *args: Any) -> None:
        log_event("http_refused", level=logging.WARNING, message=format % args)

    def log_message(self, format: str, *args: Any) -> None:
        log_event("http_server", message=format % args)


def serve_chalice(host: str, port: int) -> None:
    app, config = load_app()
    server = LocalDevServer(app, config, host, port, handler_cls=PoliteHandler)
    log_event("http_serving", server="chalice", url=f"http://{host}:{port}")
    server.server.serve_forever()


def serve_production(host: str, port: int, workers: int, threads: int, level: str) -> None:
    """gunicorn's threaded workers, one process per core (the app is CPU-bound Python: threads
    alone share one core), each with its own reader cache; keep-alive with an idle timeout."""
    from gunicorn.app.base import BaseApplication

    from ocdlib.wsgi import ChaliceWSGI

    class Server(BaseApplication):  # gunicorn's documented way to embed it
        def load_config(self) -> None:
            options = {
                "bind": f"{host}:{port}",
                "workers": workers,
                "worker_class": "gthread",
                "threads": threads,
                "backlog": 1024,
                "keepalive": 15,  # seconds an idle keep-alive connection is kept
                "timeout": 30,
                "graceful_timeout": 10,
                "proc_name": "ocd-http",
                "control_socket_disable": True,  # no runtime control socket in $HOME
                "logconfig_dict": _gunicorn_logging(level),
            }
            for name, value in options.items():
                self.cfg.set(name, value)

        def load(self) -> ChaliceWSGI:  # in each worker
            return ChaliceWSGI(*load_app())

    from gunicorn import util

    # gunicorn answers a request it cannot parse through this one function, with an HTML page;
    # the API's errors are JSON (workers fork from here and inherit it)
    util.write_error = _json_error
    log_event("http_serving", server="gunicorn", url=f"http://{host}:{port}", workers=workers,
              threads=threads)  # fmt: skip
    Server().run()


def _json_error(sock: Any, status: int, reason: str, message: str) -> None:
    from gunicorn.util import write_nonblock

    body = error_reply(status, reason.lower().replace(" ", "_"), message or reason).body
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")  # fmt: skip
    write_nonblock(sock, head.encode("latin-1") + body)


def _gunicorn_logging(level: str) -> dict[str, Any]:
    """gunicorn's own lines in the service's JSON; no access log (``http_request`` at DEBUG
    is the dev server's; a production access log belongs to the proxy in front)."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "chalicelib.logs.JsonFormatter"}},
        "handlers": {"json": handler},
        "root": {"level": level, "handlers": []},  # gunicorn's default names its own handler
        "loggers": {
            "gunicorn.error": {"handlers": ["json"], "level": level, "propagate": False},
            "gunicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
        },
    }


def die_with(parent: int) -> None:
    """End this server when ``parent`` (the supervisor) ends, however it ends: Linux sends us
    SIGTERM when our parent exits (``PR_SET_PDEATHSIG``), SIGKILL included. Elsewhere the
    supervisor's own SIGTERM/SIGINT handling still stops us."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # it ended before we asked
        raise SystemExit(f"supervisor {parent} is gone")


def _configure_logging() -> str:
    try:
        level = load_read_settings().log_level
    except ConfigError as exc:  # every request will say so; the server itself still starts
        level = "INFO"
        logs.configure(level)
        log_event("config_invalid", level=logging.ERROR, error=str(exc))
        return level
    logs.configure(level)
    return level


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=SERVERS, default="chalice")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2,
                        help="production: worker processes (default: one per core)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=4, help="production: threads per worker")
    parser.add_argument("--die-with", type=int, metavar="PID",
                        help="stop when this process (the supervisor) ends")  # fmt: skip
    args = parser.parse_args(argv)
    if args.die_with:
        die_with(args.die_with)
    level = _configure_logging()
    # SIGTERM ends the serving loop like Ctrl-C does (the servers clean up on SystemExit)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    me = os.getpid()  # gunicorn's workers are forks of this process and leave through here too
    try:
        if args.server == "chalice":
            serve_chalice(args.host, args.port)
        else:
            serve_production(args.host, args.port, args.workers, args.threads, level)
    except (KeyboardInterrupt, SystemExit):
        pass
    if os.getpid() == me:
        log_event("http_stopped", server=args.server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
