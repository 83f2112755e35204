"""When builds run: the watcher, the debouncer, the scheduler, the retries, the pings owed,
the lifecycle.

The public face of the sub-package: nothing outside it imports its inner modules.
Names resolve on first use (PEP 562), so importing the face loads only what is asked for:
a build with nothing to do never pays for feedgen, watchdog or the HTTP client.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aggregator.daemon.debounce import ChangeBatch, Debouncer
    from aggregator.daemon.foreground import run_daemon
    from aggregator.daemon.liveness import RESTART_ONLY
    from aggregator.daemon.service import BUILD_RETRY, Daemon
    from aggregator.daemon.systemd import SystemdNotifier
    from aggregator.daemon.watch import ChangeHandler, inotify_limit_message

__all__ = [
    "BUILD_RETRY",
    "RESTART_ONLY",
    "ChangeBatch",
    "ChangeHandler",
    "Daemon",
    "Debouncer",
    "SystemdNotifier",
    "inotify_limit_message",
    "run_daemon",
]

_HOME = {
    "BUILD_RETRY": "aggregator.daemon.service",
    "ChangeBatch": "aggregator.daemon.debounce",
    "ChangeHandler": "aggregator.daemon.watch",
    "Daemon": "aggregator.daemon.service",
    "Debouncer": "aggregator.daemon.debounce",
    "RESTART_ONLY": "aggregator.daemon.liveness",
    "SystemdNotifier": "aggregator.daemon.systemd",
    "inotify_limit_message": "aggregator.daemon.watch",
    "run_daemon": "aggregator.daemon.foreground",
}


def __getattr__(name: str) -> object:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value
    return value
