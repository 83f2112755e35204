"""The daemon seen from outside: Prometheus metrics and a health check over HTTP, fed by the
change events and the daemon's hooks.

The public face of the sub-package: nothing outside it imports its inner modules.
Names resolve on first use (PEP 562), so importing the face loads only what is asked for:
a daemon without `--metrics-port` never imports prometheus_client.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aggregator.observe.metrics import Observer
    from aggregator.observe.server import MetricsServer

__all__ = [
    "MetricsServer",
    "Observer",
]

_HOME = {
    "MetricsServer": "aggregator.observe.server",
    "Observer": "aggregator.observe.metrics",
}


def __getattr__(name: str) -> object:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value
    return value
