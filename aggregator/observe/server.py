"""`run --metrics-port`: `/metrics` (the Prometheus text format) and `/healthz` (200 "ok", or
503 with the reasons) over HTTP, in a thread of their own.

The standard library's threading HTTP server is enough for a scrape every few seconds and
keeps this apart from the feed server's event loop: a slow catalog read for a scrape never
delays a feed reader, nor the other way round.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

from aggregator.config import Settings
from aggregator.errors import AggregatorError
from aggregator.observe.metrics import Observer

LOGGER = logging.getLogger("aggregator.observe")


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _answer(self, *, body: bool) -> None:
        observer = self.server.observer
        path = self.path.split("?", 1)[0]
        try:
            if path == "/metrics":
                data, kind = observer.exposition()
                self._send(200, data, kind, body)
            elif path == "/healthz":
                problems = observer.health.problems()
                text = "ok\n" if not problems else "".join(f"{p}\n" for p in problems)
                status = 503 if problems else 200
                self._send(status, text.encode(), "text/plain; charset=utf-8", body)
            else:
                self._send(404, b"404: Not Found (try /metrics or /healthz)\n", "text/plain", body)
        except Exception as exc:  # a bug must not become a traceback on stderr
            LOGGER.error("metrics: %s %s: %s: %s", self.command, path, type(exc).__name__, exc)
            self._send(500, b"500: Internal Server Error\n", "text/plain", body)

    def _send(self, status: int, data: bytes, kind: str, body: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        LOGGER.debug("metrics: %s %s", self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    observer: Observer


class _Server6(_Server):
    address_family = socket.AF_INET6


class MetricsServer:
    """The metrics endpoint of `observer`, on `metrics.bind`:`metrics.port`; a context
    manager. `start()` raises `AggregatorError` when it cannot listen."""

    def __init__(self, settings: Settings, observer: Observer) -> None:
        self.settings = settings
        self.observer = observer
        self.port = settings.metrics_port or 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = self.settings.metrics_bind
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}/"

    def start(self) -> None:
        bind, port = self.settings.metrics_bind, self.settings.metrics_port or 0
        kind = _Server6 if ":" in bind else _Server
        try:
            server = kind((bind, port), _Handler)
        except OSError as exc:
            raise _bind_error(bind, port, exc) from exc
        server.observer = self.observer
        self._server = server
        self.port = int(server.server_address[1])
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="aggregator-metrics",
            daemon=True,
        )
        self._thread.start()
        LOGGER.info("metrics at %smetrics, health at %shealthz", self.url, self.url)

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(2)

    def __enter__(self) -> MetricsServer:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _bind_error(bind: str, port: int, exc: OSError) -> AggregatorError:
    where = f"{bind}:{port}"
    if exc.errno == errno.EADDRINUSE:
        why = "the address is already in use (the feed server, or another process)"
    elif exc.errno == errno.EACCES:
        why = "permission denied (ports below 1024 need root)"
    else:
        why = exc.strerror or str(exc)
    return AggregatorError(
        f"cannot serve metrics on {where}: {why}; choose another with --metrics-port / "
        "metrics.port and --metrics-bind / metrics.bind"
    )
