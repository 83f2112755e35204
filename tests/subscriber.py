"""A WebSub subscriber on 127.0.0.1 for the end-to-end test and bench/push.py.

It answers the hub's verification GET with `hub.challenge` and records each delivery (POST)
with its headers, body and arrival time. `subscribe` asks a hub for a subscription;
`signature_ok` checks `X-Hub-Signature` against the secret given then.
"""

from __future__ import annotations

import hmac
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit


@dataclass(frozen=True)
class Delivery:
    """One content distribution request the hub sent to a callback."""

    callback: str  # the path of the callback it came to
    headers: dict[str, str]  # names in lower case
    body: bytes
    arrived: float  # time.monotonic()


class Subscriber:
    """Callbacks at `/callback/<name>`; what the hub asked and delivered, in order."""

    def __init__(self, server: ThreadingHTTPServer) -> None:
        self.server = server
        self._lock = threading.Lock()
        self._deliveries: list[Delivery] = []
        self._verified: list[tuple[str, str, str]] = []  # (callback, mode, topic)

    def callback(self, name: str) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/callback/{name}"

    def verified(self) -> list[tuple[str, str, str]]:
        with self._lock:
            return list(self._verified)

    def deliveries(self, name: str | None = None) -> list[Delivery]:
        with self._lock:
            return [
                d for d in self._deliveries if name is None or d.callback == f"/callback/{name}"
            ]

    def _record_delivery(self, delivery: Delivery) -> None:
        with self._lock:
            self._deliveries.append(delivery)

    def _record_verification(self, callback: str, mode: str, topic: str) -> None:
        with self._lock:
            self._verified.append((callback, mode, topic))


@contextmanager
def running_subscriber() -> Iterator[Subscriber]:
    """A subscriber on a free port of 127.0.0.1, stopped on exit."""
    subscriber: Subscriber

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            challenge = query.get("hub.challenge")
            if query.get("hub.mode") in ("subscribe", "unsubscribe") and challenge:
                subscriber._record_verification(
                    parts.path, query["hub.mode"], query.get("hub.topic", "")
                )
                self._answer(200, challenge.encode())
            else:  # "denied", or not from a hub
                self._answer(404, b"")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            subscriber._record_delivery(
                Delivery(
                    urlsplit(self.path).path,
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                    time.monotonic(),
                )
            )
            self._answer(200, b"")

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    subscriber = Subscriber(server)
    thread = threading.Thread(target=server.serve_forever, name="subscriber", daemon=True)
    thread.start()
    try:
        yield subscriber
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def subscribe(hub: str, topic: str, callback: str, secret: str | None = None) -> int:
    """Ask `hub` to deliver `topic` to `callback`; the HTTP status of the hub's answer."""
    form = {"hub.mode": "subscribe", "hub.topic": topic, "hub.callback": callback}
    if secret is not None:
        form["hub.secret"] = secret
    request = urllib.request.Request(hub, data=urlencode(form).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status)


def signature_ok(secret: str, delivery: Delivery) -> bool:
    """Whether the delivery's `X-Hub-Signature` (`algo=hex`) is the HMAC of its body."""
    header = delivery.headers.get("x-hub-signature", "")
    algorithm, _, digest = header.partition("=")
    if algorithm not in ("sha1", "sha256", "sha384", "sha512") or not digest:
        return False
    expected = hmac.new(secret.encode(), delivery.body, algorithm).hexdigest()
    return hmac.compare_digest(expected, digest)
