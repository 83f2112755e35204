"""When builds run: the watcher, the debouncer, the scheduler, the retries, the pings owed,
the lifecycle.

Its public face (see `aggregator.faces`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aggregator.faces import resolver

if TYPE_CHECKING:
    from aggregator.daemon.debounce import ChangeBatch, Debouncer
    from aggregator.daemon.foreground import run_daemon
    from aggregator.daemon.inotify import inotify_limit_message
    from aggregator.daemon.liveness import RESTART_ONLY
    from aggregator.daemon.service import BUILD_RETRY, Daemon
    from aggregator.daemon.status import STATUS_FILE, DaemonState, daemon_state
    from aggregator.daemon.systemd import SystemdNotifier
    from aggregator.daemon.watch import ChangeHandler

__all__ = [
    "BUILD_RETRY",
    "RESTART_ONLY",
    "STATUS_FILE",
    "ChangeBatch",
    "ChangeHandler",
    "Daemon",
    "DaemonState",
    "Debouncer",
    "SystemdNotifier",
    "daemon_state",
    "inotify_limit_message",
    "run_daemon",
]

_HOME = {
    "BUILD_RETRY": "aggregator.daemon.service",
    "ChangeBatch": "aggregator.daemon.debounce",
    "ChangeHandler": "aggregator.daemon.watch",
    "Daemon": "aggregator.daemon.service",
    "DaemonState": "aggregator.daemon.status",
    "STATUS_FILE": "aggregator.daemon.status",
    "daemon_state": "aggregator.daemon.status",
    "Debouncer": "aggregator.daemon.debounce",
    "RESTART_ONLY": "aggregator.daemon.liveness",
    "SystemdNotifier": "aggregator.daemon.systemd",
    "inotify_limit_message": "aggregator.daemon.inotify",
    "run_daemon": "aggregator.daemon.foreground",
}

__getattr__ = resolver(__name__, _HOME, globals())
