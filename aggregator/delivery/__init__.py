"""Change events out: log lines and WebSub pings.

The public face of the sub-package: nothing outside it imports its inner modules.
Names resolve on first use (PEP 562), so importing the face loads only what is asked for:
a build with nothing to do never pays for feedgen, watchdog or the HTTP client.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aggregator.delivery.deadline import InFlight
    from aggregator.delivery.logs import configure_logging, lifecycle
    from aggregator.delivery.notify import LogSink, Notifier, Sink, log_line, log_sink, to_record
    from aggregator.delivery.websub import (
        BUILD_PING_SECONDS,
        GIVE_UP_SECONDS,
        PING_DEADLINE_SECONDS,
        PING_RETRY,
        PingResult,
        outcome,
        owed_to,
        ping,
        retry_delay,
        send_owed,
        send_pings,
    )

__all__ = [
    "BUILD_PING_SECONDS",
    "GIVE_UP_SECONDS",
    "PING_DEADLINE_SECONDS",
    "PING_RETRY",
    "InFlight",
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
    "send_pings",
    "to_record",
]

_HOME = {
    "GIVE_UP_SECONDS": "aggregator.delivery.websub",
    "LogSink": "aggregator.delivery.notify",
    "Notifier": "aggregator.delivery.notify",
    "PING_RETRY": "aggregator.delivery.websub",
    "BUILD_PING_SECONDS": "aggregator.delivery.websub",
    "InFlight": "aggregator.delivery.deadline",
    "PING_DEADLINE_SECONDS": "aggregator.delivery.websub",
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
    "send_pings": "aggregator.delivery.websub",
    "to_record": "aggregator.delivery.notify",
}


def __getattr__(name: str) -> object:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value
    return value
