"""What clients may hold: a connection cap below the descriptor limit, the oldest connection
closed to let a new one in, and resource trouble logged once per interval.

- `connection_cap`: from `RLIMIT_NOFILE`, keeping a reserve for the builds that share the
  process under `run --serve` (catalog, worker pipes, temp files, the watcher, logs), so no
  number of clients can make a build fail with "Too many open files".
- `CappedServer`: at the cap, a new connection closes the connection that has been idle
  longest (least recently connected or sent a request): a slow client (slowloris) that never
  finishes its headers is always among the oldest, so it goes, and a reader's request gets
  in at once. A connection nothing was read from yet is spared for `GRACE_SECONDS` (asyncio
  accepts a backlog's worth of connections before reading any: a burst must not push out a
  request that has arrived but is not read yet); if every open connection is such, the new
  one is turned away instead. Headers themselves have a deadline (aiohttp's keep-alive
  timeout, which runs from the connection or the previous response until a whole request
  has arrived: server.py).
- `listen_backlog`: asyncio accepts a backlog's worth of connections at once, before the
  cap sees them, so the backlog is counted against the descriptors too.
- `Throttled`: one log line per kind of trouble per interval, with the count, instead of a
  traceback per refused `accept()` (asyncio's default: ~1 MB/s under a flood).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
import time
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

LOGGER = logging.getLogger("aggregator.serve")

# Descriptors kept for the rest of the process: at least this many, or a quarter of the limit.
RESERVE_MIN = 128
# aiohttp's default backlog; lower under a low descriptor limit (see listen_backlog).
BACKLOG_MAX = 128
# A limit that leaves nothing after the reserve still lets this many clients in.
CAP_MIN = 16
# A connection nothing was read from yet is not closed to make room before this age.
GRACE_SECONDS = 2.0
# Resource trouble is logged at most this often (with the count since the last line).
TROUBLE_LOG_SECONDS = 60.0


def descriptor_limit() -> int:
    """This process's soft RLIMIT_NOFILE (what `open` and `accept` run into)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def listen_backlog(limit: int | None = None) -> int:
    """The listening socket's backlog: asyncio accepts up to this many connections at once
    before the server sees any, so they count against the descriptors too."""
    limit = descriptor_limit() if limit is None else limit
    return min(BACKLOG_MAX, max(8, (limit - _reserve(limit)) // 8))


def _reserve(limit: int) -> int:
    return max(RESERVE_MIN, limit // 4)


def connection_cap(limit: int | None = None) -> int:
    """The most client connections the server keeps open at once under `limit` descriptors
    (the reserve and an accept burst stay free)."""
    limit = descriptor_limit() if limit is None else limit
    return max(CAP_MIN, limit - _reserve(limit) - listen_backlog(limit))


class Throttled:
    """Logs a kind of event at most once per `seconds`, counting the ones not logged."""

    def __init__(self, seconds: float = TROUBLE_LOG_SECONDS) -> None:
        self.seconds = seconds
        self._last: dict[str, float] = {}
        self._count: dict[str, int] = {}

    def log(self, kind: str, level: int, message: str) -> None:
        """`message` may hold `{count}`: the events of this kind since its last line."""
        self._count[kind] = self._count.get(kind, 0) + 1
        now = time.monotonic()
        last = self._last.get(kind)
        if last is not None and now - last < self.seconds:
            return
        self._last[kind] = now
        count, self._count[kind] = self._count[kind], 0
        # Not str.format: the message may quote a client's or an OS's braces.
        text = str(count).join(message.split("{count}"))
        LOGGER.log(level, text, extra={"serve_trouble": kind})


class CappedServer(web.Server):
    """aiohttp's connection factory with at most `cap` connections open (see the module)."""

    def __init__(self, handler: Any, *, cap: int, throttled: Throttled, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.cap = cap
        self.throttled = throttled
        # Open connections and when each was last active, least recently active first.
        self._open: dict[RequestHandler, tuple[asyncio.Transport, float]] = {}
        # Connections something was read from.
        self._seen: set[RequestHandler] = set()

    def __call__(self) -> RequestHandler:
        return _Handler(self, loop=self._loop, **self._kwargs)

    def seen(self, handler: RequestHandler) -> None:
        """Bytes arrived on `handler`'s connection (it may be closed to make room now)."""
        self._seen.add(handler)

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        now = time.monotonic()
        self._open[handler] = (transport, now)
        if len(self._open) > self.cap:
            victim = self._victim(now) or handler
            # abort, not close: nothing of an idle connection is worth flushing, and its
            # descriptor must be free now.
            self._open.pop(victim)[0].abort()
            self._seen.discard(victim)
            self.throttled.log(
                "connection-cap",
                logging.WARNING,
                f"{self.cap} client connections open (the cap, from the descriptor limit "
                f"{descriptor_limit()}): closing the longest idle one (or, if all are new, "
                "the new one) for each new one ({count} since the last such line); slow or "
                "idle clients, or a flood",
            )

    def _victim(self, now: float) -> RequestHandler | None:
        """The longest idle connection that was read from, or nothing read for a while."""
        for handler, (_, since) in self._open.items():
            if handler in self._seen or now - since >= GRACE_SECONDS:
                return handler
        return None

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        self._open.pop(handler, None)
        self._seen.discard(handler)
        super().connection_lost(handler, exc)

    def active(self, handler: object) -> None:
        """A request arrived on `handler`'s connection: it is the least idle now."""
        if isinstance(handler, RequestHandler):
            entry = self._open.pop(handler, None)
            if entry is not None:
                self._open[handler] = (entry[0], time.monotonic())

    @property
    def open_connections(self) -> int:
        return len(self._open)


class _Handler(RequestHandler):
    """aiohttp's connection, telling its server when the first bytes were read."""

    _manager: CappedServer

    def data_received(self, data: bytes) -> None:
        if self._manager is not None:
            self._manager.seen(self)
        super().data_received(data)


def loop_exception_handler(throttled: Throttled) -> Any:
    """An event-loop exception handler: one line per kind per interval, never a traceback.

    What reaches it is the loop's own trouble (asyncio retries a refused `accept()` every
    second by itself); a request's errors are the handler's and are logged there.
    """

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE):
            throttled.log(
                "accept-descriptors",
                logging.WARNING,
                f"cannot accept connections: {exc.strerror} ({{count}} times since the last "
                "such line); new clients wait until descriptors are free (raise LimitNOFILE "
                "or ulimit -n if the builds need more)",
            )
            return
        what = context.get("message", "event loop error")
        reason = f"{type(exc).__name__}: {exc}" if exc is not None else ""
        throttled.log(
            f"loop-{what}",
            logging.ERROR,
            f"{what}{': ' + reason if reason else ''} ({{count}} since the last such line)",
        )

    return handle
