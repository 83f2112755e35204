"""What the daemon tells an observer besides the change events (the metrics, `observe`):
how each build ended and how long it took, and when the next scheduled release is.

A Protocol, so the daemon imports no observer: `cli` hands one to `run_daemon`. Each call is
made on the writer thread, after the build, and must be cheap (no I/O).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from aggregator.events import ChangeEvent

if TYPE_CHECKING:
    from aggregator.daemon.cluster import ClusterNode
    from aggregator.daemon.debounce import ChangeBatch
    from aggregator.daemon.watch import Watcher
    from aggregator.pipeline import BuildReport

# How a build ended: "ok", "write_failed" (some feeds could not be written; retried),
# "failed" (the build raised; retried), "cancelled" (the daemon is stopping).
BUILD_RESULTS = ("ok", "write_failed", "failed", "cancelled")


class DaemonView(Protocol):
    """What an observer may ask the daemon at any time, from any thread."""

    def watcher_alive(self) -> bool: ...

    def is_leader(self) -> bool: ...


class DaemonHooks(Protocol):
    """An observer of the daemon: the change events, each build's end, each re-arm."""

    def attach(self, daemon: DaemonView) -> None: ...

    def on_event(self, event: ChangeEvent) -> None: ...

    def build_done(
        self, result: str, seconds: float, latency: float | None, reason: str = ""
    ) -> None:
        """`latency`: seconds from the first file event of the batch to the end of the
        build that published it (None: the batch had no file event, or nothing was
        written). `reason`: why it failed."""

    def release_armed(self, due: datetime | None) -> None: ...


class NoHooks:
    """No observer: every hook does nothing."""

    def attach(self, daemon: DaemonView) -> None:
        pass

    def on_event(self, event: ChangeEvent) -> None:
        pass

    def build_done(
        self, result: str, seconds: float, latency: float | None, reason: str = ""
    ) -> None:
        pass

    def release_armed(self, due: datetime | None) -> None:
        pass


class DaemonProbe:
    """The `DaemonView` the daemon hands its observer: its watcher and cluster node, as
    they are at the moment of asking."""

    def __init__(self, watcher: Callable[[], Watcher | None], cluster: ClusterNode) -> None:
        self._watcher = watcher
        self._cluster = cluster

    def watcher_alive(self) -> bool:
        watcher = self._watcher()
        return watcher is not None and watcher.alive()

    def is_leader(self) -> bool:
        return self._cluster.is_leader


def tell_build(
    hooks: DaemonHooks,
    started: float,
    batch: ChangeBatch | None = None,
    report: BuildReport | None = None,
    *,
    result: str = "ok",
    reason: str = "",
) -> None:
    """Tell `hooks` how a build that began at `started` (time.monotonic) ended: with
    `report`, "ok" or "write_failed" (some feeds failed), and the drop-to-published latency
    of `batch` when it wrote feeds."""
    ended = time.monotonic()
    latency = None
    if report is not None:
        if batch is not None and batch.first_seen is not None and report.written:
            latency = ended - batch.first_seen
        if report.failed:
            result, reason = "write_failed", f"{report.failed} feed(s) could not be written"
    hooks.build_done(result, ended - started, latency, reason)
