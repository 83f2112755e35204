"""aiohttp's two logs made ours: the access log handed to the server's `RequestRecorder`
(`access_logger`), and its server log cut to one line per problem (`OneLineLog`).

Also `shown`, which cuts a client's text (a path may have 8 KB) for a log line.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError

from aggregator.serve.access import Request, RequestRecorder

# A client's text in a log line is cut to this many characters (a path may have 8 KB).
_SHOWN_CHARS = 200


def shown(text: str) -> str:
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + f"… ({len(text)} chars)"


class OneLineLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's server log without tracebacks: a bad request is one DEBUG line.

    aiohttp logs a request it cannot parse (huge headers, bad syntax) with a traceback at
    ERROR; those are the client's mistakes, answered 400 already.
    """

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        exc = kwargs.pop("exc_info", None)
        if isinstance(exc, BaseException):
            if isinstance(exc, HttpProcessingError):
                level = logging.DEBUG
            msg = f"{msg}: {type(exc).__name__}: {shown(' '.join(str(exc).split()))}"
        kwargs.pop("stack_info", None)
        if self.logger.isEnabledFor(level):
            self.logger.log(level, msg, *args, **kwargs)


def access_logger(recorder: RequestRecorder) -> type[AbstractAccessLogger]:
    """aiohttp's access-log hook (one instance per connection, called after each response
    is sent), bound to the server's one `RequestRecorder`."""

    class _Recorded(AbstractAccessLogger):
        def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
            recorder.record(
                Request(
                    client=request.remote or "-",
                    method=request.method,
                    path=request.raw_path,
                    version=f"{request.version.major}.{request.version.minor}",
                    status=response.status,
                    bytes=_body_bytes(request, response),
                    seconds=time,
                    user_agent=request.headers.get("User-Agent", ""),
                )
            )

    return _Recorded


def _body_bytes(request: web.BaseRequest, response: web.StreamResponse) -> int:
    """The body bytes sent (Common Log Format's %b, nginx's $body_bytes_sent): none for a
    HEAD; `body_length` would count the headers too."""
    if request.method == "HEAD" or not isinstance(response, web.Response):
        return 0
    body = response.body
    return len(body) if isinstance(body, bytes | bytearray) else 0
