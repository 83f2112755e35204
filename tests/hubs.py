"""A recording WebSub hub for the publisher's tests: a real HTTP server on 127.0.0.1.

It records each publish ping (form fields, headers) and answers with the status the test
sets, so the tests see exactly what a hub receives. The full protocol (subscription,
verification, signed delivery) is tested against a real hub in test_websub_e2e.py.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs


@dataclass(frozen=True)
class Ping:
    """One POST the hub received."""

    content_type: str
    form: dict[str, list[str]]
    # The process that sent it, if it is one of `RecordingHub.senders` (else None).
    sender: int | None = None

    @property
    def topic(self) -> str:
        (topic,) = self.form["hub.topic"]
        return topic


class RecordingHub:
    """Publish pings received, in order; `status` is what the next ones get."""

    def __init__(self, server: ThreadingHTTPServer) -> None:
        self.server = server
        self.status = 202
        # Processes (pids) to tell the pings' senders apart by: the cluster's nodes.
        self.senders: Collection[int] = ()
        self._pings: list[Ping] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/hub"

    def record(self, ping: Ping) -> int:
        with self._lock:
            self._pings.append(ping)
            return self.status

    @property
    def pings(self) -> list[Ping]:
        with self._lock:
            return list(self._pings)

    def topics(self) -> list[str]:
        return [p.topic for p in self.pings]


def sender_of(port: int, pids: Collection[int]) -> int | None:
    """Which of `pids` holds the local end of this host's IPv4 TCP connection from
    127.0.0.1:`port` (a client still connected: ask while answering its request)."""
    local = f"0100007F:{port:04X}"
    inodes = set()
    with open("/proc/net/tcp", encoding="ascii") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if fields[1] == local:
                inodes.add(f"socket:[{fields[9]}]")
    for pid in pids:
        folder = f"/proc/{pid}/fd"
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            try:
                if os.readlink(f"{folder}/{name}") in inodes:
                    return pid
            except OSError:
                continue
    return None


@contextmanager
def recording_hub() -> Iterator[RecordingHub]:
    """A hub on a free port of 127.0.0.1, stopped on exit."""
    hub: RecordingHub

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length).decode("ascii")
            sender = sender_of(self.client_address[1], hub.senders) if hub.senders else None
            ping = Ping(self.headers.get("Content-Type", ""), parse_qs(body), sender)
            status = hub.record(ping)
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", "/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            # What a redirected ping would land on: a page that answers 200.
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet test output

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hub = RecordingHub(server)
    thread = threading.Thread(target=server.serve_forever, name="recording-hub", daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def closed_port_url() -> str:
    """A hub URL nothing listens at (a port just freed)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/hub"
