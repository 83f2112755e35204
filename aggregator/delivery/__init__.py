"""Change events out: log lines and WebSub pings.

Its public face (see `aggregator.faces`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aggregator.faces import resolver

if TYPE_CHECKING:
    from aggregator.delivery.deadline import InFlight
    from aggregator.delivery.lines import log_line
    from aggregator.delivery.logs import configure_logging, lifecycle, to_record
    from aggregator.delivery.notify import LogSink, Notifier, Sink, log_sink
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
    "log_line": "aggregator.delivery.lines",
    "log_sink": "aggregator.delivery.notify",
    "outcome": "aggregator.delivery.websub",
    "owed_to": "aggregator.delivery.websub",
    "ping": "aggregator.delivery.websub",
    "retry_delay": "aggregator.delivery.websub",
    "send_owed": "aggregator.delivery.websub",
    "send_pings": "aggregator.delivery.websub",
    "to_record": "aggregator.delivery.logs",
}

__getattr__ = resolver(__name__, _HOME, globals())
