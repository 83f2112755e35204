"""What the server records of each request: the access log line (`aggregator.access`), the
count of responses by status (read by the metrics), and the subscriber counts feed readers
report (`subscribers.py`).

A client writes the path and the User-Agent, so they are escaped before they reach a text
log: a quote, a backslash, a control character (a newline would start a forged line) or
anything not printable becomes `\\xHH` / `\\uHHHH`, as nginx does. JSON lines need no such
care: the JSON encoder escapes what it must.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass

from aggregator.model import FEED_SUFFIXES
from aggregator.serve.subscribers import SubscriberLedger, parse_subscribers

ACCESS = logging.getLogger("aggregator.access")

# Statuses whose response carried (or confirmed) the feed: what a subscriber count is about.
_SERVED = frozenset((200, 206, 304))


def escape(text: str) -> str:
    """`text` safe inside a double-quoted field of a text log line."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return text  # the usual case, one pass in C
    out: list[str] = []
    for char in text:
        code = ord(char)
        if char in '"\\' or (code < 0x80 and not char.isprintable()):
            out.append(f"\\x{code:02x}")
        elif code >= 0x80 and not char.isprintable():
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(char)
    return "".join(out)


@dataclass(frozen=True, slots=True)
class Request:
    """One answered request, as the access log and the counters see it."""

    client: str
    method: str
    path: str
    version: str
    status: int
    bytes: int
    seconds: float
    user_agent: str


def access_line(request: Request) -> str:
    """The text form: `client "METHOD path HTTP/v" status bytes time "User-Agent"`."""
    return (
        f'{escape(request.client)} "{escape(request.method)} {escape(request.path)} '
        f'HTTP/{request.version}" {request.status} {request.bytes} '
        f'{request.seconds * 1000:.1f}ms "{escape(request.user_agent)}"'
    )


def access_fields(request: Request) -> dict[str, object]:
    """The JSON form (`extra=` for the log record; the JSON formatter merges `change`)."""
    return {
        "change": {
            "event": "http_request",
            "client": request.client,
            "method": request.method,
            "path": request.path,
            "protocol": f"HTTP/{request.version}",
            "status": request.status,
            "bytes": request.bytes,
            "seconds": round(request.seconds, 6),
            "user_agent": request.user_agent,
        }
    }


class RequestRecorder:
    """Everything the server keeps of the requests it answered; called once per request,
    after the response is sent, in the server's event loop (so it must stay cheap: no I/O
    here; the subscriber ledger is written by its own timer)."""

    def __init__(self, *, access_log: bool, ledger: SubscriberLedger | None) -> None:
        self.access_log = access_log
        self.ledger = ledger
        self._lock = threading.Lock()  # the metrics read the counts from another thread
        self._statuses: Counter[int] = Counter()

    def record(self, request: Request) -> None:
        with self._lock:
            self._statuses[request.status] += 1
        ledger = self.ledger
        if (
            ledger is not None
            and request.status in _SERVED
            and request.path.endswith(FEED_SUFFIXES)
        ):
            report = parse_subscribers(request.user_agent)
            if report is not None:
                ledger.record(request.path, report)
        if self.access_log and ACCESS.isEnabledFor(logging.INFO):
            ACCESS.info(access_line(request), extra=access_fields(request))

    def statuses(self) -> dict[int, int]:
        """Responses sent so far, by HTTP status (a copy)."""
        with self._lock:
            return dict(self._statuses)
