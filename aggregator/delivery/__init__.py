"""Change events out: log lines and WebSub pings.

The public face of the sub-package: nothing outside it imports its inner modules.
Names resolve on first use (PEP 562), so importing the face loads only what is asked for:
a build with nothing to do never pays for feedgen, watchdog or the HTTP client.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aggregator.delivery.logs import configure_logging, lifecycle, to_record
    from aggregator.delivery.notify import LogSink, Notifier, Sink, log_line, log_sink
    from aggregator.delivery.websub import (
        GIVE_UP_SECONDS,
        PING_RETRY,
        PING_TIMEOUT_SECONDS,
        PingResult,
        outcome,
        owed_to,
        ping,
        retry_delay,
        send_owed,
    )

__all__ = [
    "GIVE_UP_SECONDS",
    "PING_RETRY",
    "PING_TIMEOUT_SECONDS",
    "LogSink",
    "Notifier",
    "PingResult",
    "Sink",
    "configure_logging",
    "lifecycle",
    "log_line",
    "log_sink",
    "outcome",
    "owed_to",
    "ping",
    "retry_delay",
    "send_owed",
    "to_record",
]

_HOME = {
    "GIVE_UP_SECONDS": "aggregator.delivery.websub",
    "LogSink": "aggregator.delivery.notify",
    "Notifier": "aggregator.delivery.notify",
    "PING_RETRY": "aggregator.delivery.websub",
    "PING_TIMEOUT_SECONDS": "aggregator.delivery.websub",
    "PingResult": "aggregator.delivery.websub",
    "Sink": "aggregator.delivery.notify",
    "configure_logging": "aggregator.delivery.logs",
    "lifecycle": "aggregator.delivery.logs",
    "log_line": "aggregator.delivery.notify",
    "log_sink": "aggregator.delivery.notify",
    "outcome": "aggregator.delivery.websub",
    "owed_to": "aggregator.delivery.websub",
    "ping": "aggregator.delivery.websub",
    "retry_delay": "aggregator.delivery.websub",
    "send_owed": "aggregator.delivery.websub",
    "to_record": "aggregator.delivery.logs",
}


def __getattr__(name: str) -> object:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value
    return value
