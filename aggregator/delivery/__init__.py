"""Change events out: log lines and WebSub pings.

Its public face (see `aggregator.faces`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aggregator.faces import resolver

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

__getattr__ = resolver(__name__, _HOME, globals())
