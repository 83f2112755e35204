"""`aggregator serve`: the output folder over HTTP, for feed readers (aiohttp's handler).

The handler (`FolderApp`) and the server thread (`FeedServer`) are here; which file a path
reaches is `files.py`, what the headers mean is `conditional.py`, aiohttp's access and
server logs `http_logs.py`, its connection cap `limits.py`. The server reads the output
folder and nothing else, never writes, and never follows a link.

Per file, beyond `conditional.py`'s ETag, 304 / 412 / 206 / 416 and Content-Types:
- `Last-Modified` from the mtime; publish moves it at least a second per change. `HEAD`.
- gzip when the request accepts it: the `NAME.gz` sidecar publish wrote when its mtime is
  the file's (same step, so same bytes), else compressed here; its own ETag, and
  `Vary: Accept-Encoding` on every file response.
- `Cache-Control: public, max-age=N`, `X-Content-Type-Options: nosniff`.
- with WebSub hubs configured, feed files also carry `Link: <hub>; rel="hub", <self>;
  rel="self"` (WebSub §4: hubs such as flask-websub refuse to distribute without it); the
  self URL is the file's URL under `base_url`, the topic the publisher pings.

Files are small (feeds hold at most `max_items` items) and in the page cache, so they are
read in the event loop: handing each read to a thread pool would cost more than the read.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
import socket
import stat
import threading
from collections.abc import Mapping
from email.utils import formatdate
from pathlib import Path
from types import TracebackType
from urllib.parse import quote, urlsplit

from aiohttp import web

from aggregator.config import Settings, check_overlaps
from aggregator.errors import AggregatorError
from aggregator.model import FEED_SUFFIXES
from aggregator.output import GZIP_SUFFIX
from aggregator.serve.access import ACCESS, RequestRecorder
from aggregator.serve.conditional import (
    accepts_gzip,
    byte_range,
    content_type,
    if_range_holds,
    not_modified,
    precondition_failed,
)
from aggregator.serve.files import (
    EtagCache,
    folder_ids,
    hidden_prefix,
    open_file,
    open_folder,
    open_sidecar,
    path_parts,
    read_body,
)
from aggregator.serve.http_logs import OneLineLog, access_logger, shown
from aggregator.serve.limits import (
    CappedServer,
    Throttled,
    connection_cap,
    listen_backlog,
    loop_exception_handler,
)
from aggregator.serve.subscribers import SubscriberLedger

LOGGER = logging.getLogger("aggregator.serve")

ALLOWED_METHODS = "GET, HEAD"

# How long a stop waits for requests in flight (they take milliseconds).
STOP_SECONDS = 1.0
# A client has this long, from connecting or from the previous response, to send a whole
# request line and headers; an idle keep-alive connection is closed after it too. (aiohttp's
# keep-alive timer runs from the connection's start and is not reset by a trickle of bytes.)
HEADER_SECONDS = 10.0
# aiohttp's limits on a request's head, kept explicit: a longer line or field is 400/431.
MAX_LINE_BYTES = 8190
MAX_FIELD_BYTES = 8190
MAX_HEADERS = 100


class FolderApp:
    """Answers requests for the files of one folder (the aiohttp handler)."""

    def __init__(
        self,
        root: Path,
        *,
        max_age: int,
        hidden: tuple[str, ...] = (),
        private: tuple[Path, ...] = (),
        hubs: tuple[str, ...] = (),
        base_url: str = "",
    ) -> None:
        self.root = root
        # WebSub discovery: the hubs named in each feed response's Link header.
        self.hubs = hubs
        self.base_url = base_url
        self.cache_control = f"public, max-age={max_age}"
        # Paths inside the folder that are never served (a state folder inside the output).
        self.hidden = hidden
        # Folders never entered, whatever the config says: the state and the input.
        self.private = private
        self._etags = EtagCache()

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        """aiohttp's request handler: one response, never an exception."""
        try:
            response = self.respond(request)
        except Exception as exc:  # a bug must not become a traceback page
            LOGGER.error(
                "%s %s: %s: %s", request.method, shown(request.raw_path), type(exc).__name__, exc
            )
            response = _plain(500, "500: Internal Server Error")
        if LOGGER.isEnabledFor(logging.DEBUG):
            LOGGER.debug("%s %s %d", request.method, shown(request.raw_path), response.status)
        return response

    def respond(self, request: web.BaseRequest) -> web.Response:
        """The response to `request` (a plain function of the request and the folder)."""
        if request.method not in ("GET", "HEAD"):
            return _plain(405, "405: Method Not Allowed", {"Allow": ALLOWED_METHODS})
        parts = path_parts(request.raw_path, self.hidden)
        if parts is None:
            return _not_found()
        # Looked up per request (two stats): either may be made, moved or mounted later.
        folder_fd = open_folder(self.root, parts[:-1], folder_ids(self.private))
        if folder_fd is None:
            return _not_found()
        try:
            response = self._respond_in(folder_fd, parts[-1], request)
        finally:
            os.close(folder_fd)
        if self.hubs and response.status in (200, 206, 304) and parts[-1].endswith(FEED_SUFFIXES):
            response.headers["Link"] = self._websub_links(parts)
        return response

    def _websub_links(self, parts: list[str]) -> str:
        """`<hub>; rel="hub", …, <self>; rel="self"` for the feed file at `parts`."""
        topic = self.base_url + "/".join(quote(part) for part in parts)
        return ", ".join([*(f'<{hub}>; rel="hub"' for hub in self.hubs), f'<{topic}>; rel="self"'])

    def _respond_in(self, folder_fd: int, name: str, request: web.BaseRequest) -> web.Response:
        fd = open_file(folder_fd, name)
        if fd is None:
            return _not_found()
        try:
            status = os.fstat(fd)
            if not stat.S_ISREG(status.st_mode):
                return _not_found()
            kind = content_type(name)
            wants_gzip = not name.endswith(GZIP_SUFFIX) and accepts_gzip(
                request.headers.get("Accept-Encoding", "")
            )
            if wants_gzip:
                sidecar = open_sidecar(folder_fd, name, status)
                if sidecar is not None:
                    try:
                        return self._answer(request, kind, sidecar, gzip=True, compress=False)
                    finally:
                        os.close(sidecar)
            return self._answer(request, kind, fd, gzip=wants_gzip, compress=wants_gzip)
        finally:
            os.close(fd)

    def _answer(
        self, request: web.BaseRequest, kind: str, fd: int, *, gzip: bool, compress: bool
    ) -> web.Response:
        """The response for the open file `fd`: gzip-coded if `gzip`, compressed here if
        `compress` (else `fd` is the identity file or a sidecar, sent as it is)."""
        status = os.fstat(fd)
        etag, data = self._etags.etag(fd, status, compress)
        mtime = status.st_mtime_ns // 1_000_000_000
        headers = {
            "ETag": etag,
            "Last-Modified": formatdate(mtime, usegmt=True),
            "Cache-Control": self.cache_control,
            "Vary": "Accept-Encoding",
        }
        if precondition_failed(request.headers, etag, mtime):
            return web.Response(status=412, headers=headers)
        if not_modified(request.headers, etag, mtime):
            return web.Response(status=304, headers=headers)
        if data is None:
            # From this descriptor: the bytes of the version the ETag was found for.
            data = read_body(fd, compress)
        headers["Content-Type"] = kind
        headers["Accept-Ranges"] = "bytes"
        headers["X-Content-Type-Options"] = "nosniff"
        if gzip:
            headers["Content-Encoding"] = "gzip"
        range_header = request.headers.get("Range")
        if range_header is not None and request.method == "GET":
            span = byte_range(range_header, len(data))
            if span == "unsatisfiable":
                return _plain(
                    416,
                    "416: Range Not Satisfiable",
                    {"Content-Range": f"bytes */{len(data)}", "Accept-Ranges": "bytes"},
                )
            if isinstance(span, tuple) and if_range_holds(request.headers, etag, mtime):
                start, end = span
                headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
                return web.Response(status=206, body=data[start : end + 1], headers=headers)
        return web.Response(status=200, body=data, headers=headers)


def _plain(status: int, text: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=text + "\n", headers=headers)


def _not_found() -> web.Response:
    return _plain(404, "404: Not Found")


class FeedServer:
    """The HTTP server for the output folder, running its own event loop in a thread.

    `start()` binds (raising `AggregatorError` when it cannot, e.g. the port is taken) and
    returns once it is listening; `stop()` closes it within about a second. Used as a context
    manager by `aggregator serve` and `aggregator run --serve`. `max_connections` (from the
    descriptor limit) and `header_seconds` may be changed before `start()`.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = FolderApp(
            settings.output,
            max_age=settings.max_age,
            hidden=hidden_prefix(settings.output, settings.state),
            private=(settings.state, settings.input),
            hubs=settings.hubs,
            base_url=settings.base_url,
        )
        self.port = settings.port
        # Client connections open at once: well under the descriptor limit (limits.py).
        self.max_connections = connection_cap()
        self.header_seconds = HEADER_SECONDS
        self.server: CappedServer | None = None
        self.ledger = SubscriberLedger(settings.state, settings.subscribers_seconds)
        self.recorder = RequestRecorder(access_log=settings.access_log, ledger=self.ledger)
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None

    def reconfigure(self, settings: Settings) -> None:
        """A reload's settings (`run --serve`): the hubs and self URLs of the Link header
        and Cache-Control change live; the folder, address and port need a restart."""
        self.app.hubs = settings.hubs
        self.app.base_url = settings.base_url
        self.app.cache_control = f"public, max-age={settings.max_age}"

    @property
    def url(self) -> str:
        """Where the server listens, as a URL (the actual port when 0 was asked)."""
        host = self.settings.bind
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/"

    def start(self) -> None:
        """Listen on `bind`:`port`; raises `AggregatorError` if that is not possible."""
        self._thread = threading.Thread(target=self._run, name="aggregator-serve", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            self._thread = None
            raise _bind_error(self.settings, self._error)
        LOGGER.info(
            "serving %s at %s (Cache-Control max-age %d s; at most %d connections)",
            self.settings.output,
            self.url,
            self.settings.max_age,
            self.max_connections,
        )
        _check_base_url(self.settings.base_url, self.port)

    def stop(self) -> None:
        """Close the listening socket and the connections; wait for the thread."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        loop, event = self._loop, self._stop_event
        if loop is not None and event is not None:
            loop.call_soon_threadsafe(event.set)
        thread.join(STOP_SECONDS + 2)

    def __enter__(self) -> FeedServer:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        finally:
            loop.close()

    async def _serve(self) -> None:
        self._stop_event = asyncio.Event()
        throttled = Throttled()
        asyncio.get_running_loop().set_exception_handler(loop_exception_handler(throttled))

        async def handle(request: web.BaseRequest) -> web.StreamResponse:
            server.active(request.protocol)
            return await self.app(request)

        server = CappedServer(
            handle,
            cap=self.max_connections,
            throttled=throttled,
            access_log=ACCESS,
            access_log_class=access_logger(self.recorder),
            logger=OneLineLog(logging.getLogger("aggregator.serve.http"), {}),
            keepalive_timeout=self.header_seconds,
            max_line_size=MAX_LINE_BYTES,
            max_field_size=MAX_FIELD_BYTES,
            max_headers=MAX_HEADERS,
        )
        self.server = server
        runner = web.ServerRunner(server, shutdown_timeout=STOP_SECONDS)
        await runner.setup()
        try:
            site = web.TCPSite(
                runner, self.settings.bind, self.settings.port, backlog=listen_backlog()
            )
            await site.start()
            if not runner.addresses:
                # asyncio skips an address whose socket cannot be made (a sandbox that
                # forbids its family) and "listens" on none: never report that as serving.
                raise _no_socket(self.settings.bind, self.settings.port)
        except (OSError, socket.gaierror) as exc:
            self._error = exc
            await runner.cleanup()
            self._ready.set()
            return
        self.port = _bound_port(runner, self.settings.port)
        self._ready.set()
        flusher = asyncio.get_running_loop().create_task(self._flush_every())
        try:
            await self._stop_event.wait()
        finally:
            flusher.cancel()
            await runner.cleanup()
            # The last counts, after the last request (in this thread: the loop is ending).
            self.ledger.flush()

    async def _flush_every(self) -> None:
        """Write the subscriber counts now and then, in a worker thread: never a disk
        write in a request's path."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.ledger.interval)
            await loop.run_in_executor(None, self.ledger.flush)


def _no_socket(bind: str, port: int) -> OSError:
    """Why no listening socket could be made for `bind` (the first family's error)."""
    for family, kind, proto, _, _ in socket.getaddrinfo(
        bind, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    ):
        try:
            socket.socket(family, kind, proto).close()
        except OSError as exc:
            return OSError(
                exc.errno,
                f"{exc.strerror} (no {socket.AddressFamily(family).name} socket: a sandbox "
                "such as systemd's RestrictAddressFamilies= may forbid it)",
            )
    return OSError(errno.EADDRNOTAVAIL, "no address to listen on")


def _bound_port(runner: web.BaseRunner, asked: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return asked


def _bind_error(settings: Settings, exc: BaseException) -> AggregatorError:
    where = f"{settings.bind}:{settings.port}"
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        return AggregatorError(
            f"cannot serve on {where}: the address is already in use (another server, or "
            f"another aggregator); stop it or choose another port with --port or serve.port"
        )
    if isinstance(exc, OSError) and exc.errno == errno.EACCES:
        return AggregatorError(
            f"cannot serve on {where}: permission denied (ports below 1024 need root); "
            f"choose a port ≥ 1024 with --port or serve.port"
        )
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return AggregatorError(
        f"cannot serve on {where}: {reason}; check --bind / serve.bind (an address of this "
        f"machine, such as 127.0.0.1 or 0.0.0.0)"
    )


def _check_base_url(base_url: str, port: int) -> None:
    """Warn when base_url names this machine but another port: the links would miss us."""
    parts = urlsplit(base_url)
    if parts.hostname not in ("localhost", "127.0.0.1", "::1"):
        LOGGER.info("the feeds' links and index.opml point at base_url %s", base_url)
        return
    if (parts.port or (443 if parts.scheme == "https" else 80)) != port:
        LOGGER.warning(
            "base_url is %s but this server listens on port %d: the feeds' links and "
            "index.opml will not reach it; set base_url (or --base-url) to match and rebuild",
            base_url,
            port,
        )


def serve(settings: Settings) -> int:
    """`aggregator serve`: serve the output folder until SIGTERM or SIGINT (SIGHUP is logged
    and ignored); exit code 0."""
    check_overlaps(settings)
    if settings.output.exists() and not settings.output.is_dir():
        raise AggregatorError(
            f"the output folder {settings.output} is a file, not a folder: point --output "
            "(or output:) at the folder the feeds were built into"
        )
    if not settings.output.is_dir():
        raise AggregatorError(
            f"the output folder {settings.output} does not exist: build the feeds first "
            f"(aggregator build), or point --output at them"
        )
    # Blocked, then taken by sigwait in this thread: no handler runs in the middle of other
    # code (one that set an Event could deadlock with the wait it interrupted). The server
    # thread, started after, inherits the mask and never sees them.
    stops = {signal.SIGTERM, signal.SIGINT}
    # SIGHUP's default would kill the server (a closed terminal, a `systemctl reload` or a
    # log rotation's HUP meant for a daemon): it has no config to reload, since every request
    # reads the output folder as it is, so it says so and goes on.
    taken = {*stops, signal.SIGHUP}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, taken)
    try:
        with FeedServer(settings):
            while (received := signal.sigwait(taken)) == signal.SIGHUP:
                LOGGER.info(
                    "SIGHUP received: nothing to reload (every request reads the output "
                    "folder as it is now); still serving"
                )
            LOGGER.info("%s received: stopping", signal.Signals(received).name)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    LOGGER.info("stopped")
    return 0
