"""The daemon's health, as `/healthz` says it: healthy while the file watcher runs, the last
build did not fail and the catalog answers; otherwise each reason, one per line.

Before the first build has ended the daemon is not healthy yet ("starting"): a load balancer
or a readiness probe must not send readers to feeds that are still being built.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

from aggregator.config import Settings

LOGGER = logging.getLogger("aggregator.observe")


class _Daemon(Protocol):
    def watcher_alive(self) -> bool: ...

    def is_leader(self) -> bool: ...


class Health:
    """What the hooks and the catalog probes last said; `problems()` asks the catalog again."""

    def __init__(self, settings: Settings, probe: Callable[[], object | None]) -> None:
        self.settings = settings
        self._probe = probe  # reads the catalog; calls catalog_ok / catalog_failed
        self._daemon: _Daemon | None = None
        self._lock = threading.Lock()
        self._build: tuple[str, str] | None = None  # (result, reason) of the last build
        self._catalog_problem: str | None = None

    def attach(self, daemon: _Daemon) -> None:
        self._daemon = daemon

    def leading(self) -> bool:
        daemon = self._daemon
        return daemon is not None and daemon.is_leader()

    def build_ended(self, result: str, reason: str) -> None:
        with self._lock:
            previous, self._build = self._build, (result, reason)
        if result != "ok" and (previous is None or previous[0] == "ok"):
            LOGGER.debug("health: unhealthy while builds fail (%s)", reason)

    def catalog_ok(self) -> None:
        with self._lock:
            was, self._catalog_problem = self._catalog_problem, None
        if was is not None:
            LOGGER.info("metrics: the catalog answers again")

    def catalog_failed(self, problem: str) -> None:
        with self._lock:
            was, self._catalog_problem = self._catalog_problem, problem
        if was is None:
            LOGGER.warning("metrics: cannot read the catalog: %s", problem)

    def problems(self) -> list[str]:
        """Why the daemon is not healthy now ([] when it is)."""
        found: list[str] = []
        daemon = self._daemon
        if daemon is None or not daemon.watcher_alive():
            found.append(
                f"the file watcher on {self.settings.input} is not running (it is restarted, "
                "polling, at the next reconcile; see the log)"
            )
        with self._lock:
            build = self._build
        if build is None:
            found.append("starting: the first build has not finished yet")
        elif build[0] != "ok":
            found.append(f"the last build failed ({build[0]}): {build[1]}; retrying (see the log)")
        self._probe()
        with self._lock:
            catalog = self._catalog_problem
        if catalog is not None:
            found.append(f"the catalog cannot be read: {catalog}")
        return found
