"""An HTTP POST with a total deadline, which a stop can cut short (for WebSub pings).

urllib's `timeout` bounds each socket operation, not the request: a hub that answers one
byte per second never trips it, and a ping would hold its thread (and a build) for ever.
Here each connection keeps a duplicate of its socket's descriptor (`_Cut`): at the deadline,
or when `InFlight.cut_all()` is called (the daemon stopping), the socket is shut down, which
wakes whatever the sending thread is blocked in: connect (even a SYN nobody answers), the
TLS handshake, the send, the status line, the body. A duplicate descriptor, because TLS
wraps the socket into a new object (same connection, new Python socket).

The name lookup (`getaddrinfo`) has no timeout in Python and cannot be woken: it runs in a
thread of its own, and the request stops waiting for it at the deadline (or a stop). The
lookup thread lingers until the resolver gives up; it holds nothing but itself.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any


class DeadlinePassed(OSError):
    """The request was cut: its deadline passed, or the process is stopping."""


class _LookupUnanswered(DeadlinePassed):
    """The deadline passed (or a stop came) while the hub's name was being looked up."""


class _Cut:
    """Shuts one connection's socket down at `deadline` (monotonic), or when asked."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._dup = sock.dup()
        self._lock = threading.Lock()
        self.fired = False
        self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self.cut)
        self._timer.daemon = True
        self._timer.start()

    def cut(self) -> None:
        with self._lock:
            if self._dup.fileno() < 0:
                return
            self.fired = True
            # shutdown acts on the connection, not the descriptor: it wakes the sender (even
            # in connect). OSError: already refused or closed, nothing to wake.
            with contextlib.suppress(OSError):
                self._dup.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._timer.cancel()
        with self._lock:
            self._dup.close()


class InFlight:
    """The connections of the requests under way, so a stop can cut them all at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cuts: set[_Cut] = set()
        self.closed = False

    def add(self, cut: _Cut) -> None:
        with self._lock:
            self._cuts.add(cut)
            closed = self.closed
        if closed:
            cut.cut()

    def discard(self, cut: _Cut) -> None:
        with self._lock:
            self._cuts.discard(cut)

    def cut_all(self) -> None:
        """Cut every request under way, and every later one as it connects."""
        with self._lock:
            self.closed = True
            cuts = list(self._cuts)
        for cut in cuts:
            cut.cut()


class _Request:
    """One request's deadline and the cuts of its connections (one, or a proxy's two)."""

    def __init__(self, deadline: float, in_flight: InFlight | None) -> None:
        self.deadline = deadline
        self.in_flight = in_flight
        self.cuts: list[_Cut] = []

    def watch(self, sock: socket.socket) -> None:
        cut = _Cut(sock, self.deadline)
        self.cuts.append(cut)
        if self.in_flight is not None:
            self.in_flight.add(cut)

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0 or (self.in_flight is not None and self.in_flight.closed):
            raise DeadlinePassed("the deadline passed")
        return left

    @property
    def cut_short(self) -> bool:
        return any(cut.fired for cut in self.cuts)

    def close(self) -> None:
        for cut in self.cuts:
            if self.in_flight is not None:
                self.in_flight.discard(cut)
            cut.close()


# How often a request waiting for its name lookup checks for a stop.
_LOOKUP_POLL = 0.1

_Addresses = Sequence[tuple[socket.AddressFamily, socket.SocketKind, int, str, tuple[Any, ...]]]


def _resolve(request: _Request, host: str, port: int) -> _Addresses:
    """`getaddrinfo`, given up on at the request's deadline or when a stop cuts it."""
    done = threading.Event()
    answer: list[_Addresses] = []
    failure: list[OSError] = []

    def lookup() -> None:
        try:
            answer.append(socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM))
        except OSError as exc:  # socket.gaierror included
            failure.append(exc)
        finally:
            done.set()

    threading.Thread(target=lookup, name="aggregator-hub-lookup", daemon=True).start()
    while not done.wait(min(_LOOKUP_POLL, request.remaining())):
        pass  # remaining() raises DeadlinePassed at the deadline or on a stop
    if failure:
        raise failure[0]
    return answer[0]


def _connect(request: _Request, host: str, port: int) -> socket.socket:
    """`socket.create_connection`, with the socket watched before it connects."""
    error: OSError | None = None
    try:
        addresses = _resolve(request, host, port)
    except DeadlinePassed as exc:
        raise _LookupUnanswered(f"the name lookup of {host} gave no answer") from exc
    for family, kind, proto, _, address in addresses:
        sock = socket.socket(family, kind, proto)
        try:
            request.watch(sock)
            sock.settimeout(request.remaining())
            sock.connect(address)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error or OSError(f"no address for {host}")


class _HTTPConnection(http.client.HTTPConnection):
    request_deadline: _Request

    def connect(self) -> None:
        self.sock = _connect(self.request_deadline, self.host, self.port)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if getattr(self, "_tunnel_host", None):
            self._tunnel()  # type: ignore[attr-defined]


class _HTTPSConnection(http.client.HTTPSConnection):
    request_deadline: _Request

    def connect(self) -> None:
        # HTTPSConnection.connect (3.11): the plain connection, then TLS over it.
        _HTTPConnection.connect(self)  # type: ignore[arg-type]
        server_hostname = getattr(self, "_tunnel_host", None) or self.host
        context: ssl.SSLContext = self._context  # type: ignore[attr-defined]
        self.sock = context.wrap_socket(self.sock, server_hostname=server_hostname)


class _Handler(urllib.request.HTTPHandler):
    def __init__(self, request: _Request) -> None:
        super().__init__()
        self.request_deadline = request

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        deadline = self.request_deadline

        class Connection(_HTTPConnection):
            request_deadline = deadline

        return self.do_open(Connection, req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, request: _Request) -> None:
        super().__init__()
        self.request_deadline = request

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        deadline = self.request_deadline

        class Connection(_HTTPSConnection):
            request_deadline = deadline

        return self.do_open(Connection, req)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirected ping is a failure: urllib would turn the POST into a GET of the new
    address, whose 200 would pass for an accepted ping."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def post(
    req: urllib.request.Request,
    seconds: float,
    in_flight: InFlight | None = None,
    read_bytes: int = 65536,
) -> tuple[int, str, bytes]:
    """Send `req`; (status, reason, up to `read_bytes` of the body), all within `seconds`.

    Any status is returned (a redirect too: never followed); raises `DeadlinePassed` when
    cut short, `OSError` when no answer came (refused, reset, malformed).
    """
    request = _Request(time.monotonic() + seconds, in_flight)
    opener = urllib.request.build_opener(_NoRedirects, _Handler(request), _HTTPSHandler(request))
    try:
        try:
            with opener.open(req, timeout=seconds) as response:
                return int(response.status), str(response.reason), response.read(read_bytes)
        except urllib.error.HTTPError as exc:
            try:
                return exc.code, str(exc.reason), exc.read(read_bytes)
            finally:
                exc.close()
    except (OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, _LookupUnanswered):
            raise DeadlinePassed(f"{reason} within {seconds:g} s") from exc
        if request.cut_short or isinstance(reason, DeadlinePassed):
            raise DeadlinePassed(f"no complete answer within {seconds:g} s") from exc
        if isinstance(exc, http.client.HTTPException):
            raise OSError(f"a malformed answer ({type(exc).__name__})") from exc
        if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, OSError):
            raise exc.reason from exc
        raise
    finally:
        request.close()
