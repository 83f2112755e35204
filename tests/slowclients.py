"""Hostile peers on 127.0.0.1, real sockets: slow clients for the server, slow hubs for the pings.

- `SlowClients`: N connections that each send one byte of a request head that never ends,
  every `interval` seconds (slowloris), and connect again when the server closes one, as
  the attack tools do.
- `trickling_hub`: a hub that answers a ping one byte per `interval` seconds, for ever.
- `silent_hub`: a hub that accepts connections and never answers; its backlog of 0 also
  leaves later connects unanswered (the SYN is dropped once the queue is full).
Used by tests/test_hostile.py and bench/hostile.py.
"""

from __future__ import annotations

import contextlib
import resource
import socket
import threading
import time
from collections.abc import Iterator

# What a slow client sends, one byte per tick: a request line, then one header that never ends.
_HEAD = b"GET /all.rss.xml HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 1_000_000


def allow_descriptors(count: int) -> bool:
    """Raise this process's soft descriptor limit to hold `count` more; False if it cannot."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = count + 256
    if soft >= need:
        return True
    if hard != resource.RLIM_INFINITY and hard < need:
        return False
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    return True


class SlowClients:
    """`count` slowloris connections to 127.0.0.1:`port` (see the module)."""

    def __init__(self, port: int, count: int, interval: float = 1.0) -> None:
        self.port = port
        self.interval = interval
        self._socks: list[socket.socket | None] = [None] * count
        self._sent = [0] * count
        self.connects = 0
        self.closed_by_server = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slow-clients", daemon=True)

    def __enter__(self) -> SlowClients:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        for sock in self._socks:
            if sock is not None:
                sock.close()

    @property
    def open(self) -> int:
        return sum(sock is not None for sock in self._socks)

    def _run(self) -> None:
        while not self._stop.is_set():
            for i in range(len(self._socks)):
                if self._stop.is_set():
                    return
                self._tick(i)
            self._stop.wait(self.interval)

    def _tick(self, i: int) -> None:
        sock = self._socks[i]
        if sock is None:
            try:
                sock = socket.create_connection(("127.0.0.1", self.port), timeout=0.2)
            except OSError:
                return  # the backlog is full: try again next tick
            sock.setblocking(False)
            self._socks[i], self._sent[i] = sock, 0
            self.connects += 1
        try:
            sent = self._sent[i]
            sock.send(_HEAD[sent : sent + 1])
            self._sent[i] = sent + 1
            if sock.recv(4096) == b"":
                raise ConnectionResetError
        except BlockingIOError:
            pass  # nothing to read: still open
        except OSError:
            sock.close()
            self._socks[i] = None
            self.closed_by_server += 1


@contextlib.contextmanager
def trickling_hub(interval: float = 1.0) -> Iterator[str]:
    """A hub URL whose server answers each POST one byte every `interval` seconds."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()
    answer = b"HTTP/1.1 202 Accepted\r\nContent-Length: 1000000\r\n\r\n" + b"." * 1_000_000

    def serve(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(0.5)
            with contextlib.suppress(OSError):
                conn.recv(65536)
            for byte in answer:
                if stop.wait(interval):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/hub"
    finally:
        stop.set()
        thread.join()
        listener.close()


@contextlib.contextmanager
def silent_hub() -> Iterator[str]:
    """A hub URL that accepts (the kernel does, up to its backlog) and never answers."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/hub"
    finally:
        listener.close()


def elapsed(start: float) -> float:
    return time.monotonic() - start
