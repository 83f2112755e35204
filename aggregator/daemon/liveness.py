"""What the watchdog and a stop see of a build in flight: its progress (`Pulse`), the parse
stage abandoned on a stop (`StopCheck`), the daemon's signs of life (`Liveness`), and which
settings only a restart can change (`RESTART_ONLY`).

The watchdog must hear that the loop that would hang is moving, not that some thread is
alive: `Liveness` is stamped by the build itself (each chunk read, each feed rendered) and
by the timers thread, and `stuck` says which one went quiet.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aggregator.config import Settings

# The timers thread stamps the time this often: the watchdog's proof that it runs.
TICK_SECONDS = 5.0

# Settings a reload cannot change in a running daemon (what they name is open, locked,
# watched or listened on): a change is named in a warning and waits for a restart.
RESTART_ONLY = (
    "input",
    "output",
    "state",
    "catalog",
    "node",
    "patterns",
    "follow_external_links",
    "poll",
    "poll_seconds",
    "bind",
    "port",
    "lock_wait_seconds",
)


def live_settings(old: Settings, new: Settings) -> tuple[Settings, list[str]]:
    """(`new` with the `RESTART_ONLY` settings of `old`, the names of those that differ)."""
    kept = [name for name in RESTART_ONLY if getattr(new, name) != getattr(old, name)]
    return dataclasses.replace(new, **{name: getattr(old, name) for name in kept}), kept


class BuildCancelled(Exception):
    """Raised inside a build (from its progress callback) when the daemon is stopping."""


class Pulse:
    """A `Progress` that only records that the build is moving (for the watchdog)."""

    def __init__(self, beat: Callable[[], None]) -> None:
        self.beat = beat

    def start(self, total: int) -> None:
        self.beat()

    def advance(self, count: int) -> None:
        self.beat()

    def finish(self) -> None:
        self.beat()


class StopCheck(Pulse):
    """A `Progress` that abandons the parse stage of a build once a stop is requested.

    Parsing is the long part of a big build and runs before anything is written, so
    abandoning it loses nothing: the catalog still has the old sizes and mtimes, and the
    next start reads those files again.
    """

    def __init__(self, stopping: threading.Event, beat: Callable[[], None]) -> None:
        super().__init__(beat)
        self.stopping = stopping

    def _check(self) -> None:
        self.beat()
        if self.stopping.is_set():
            raise BuildCancelled

    def start(self, total: int) -> None:
        self._check()

    def advance(self, count: int) -> None:
        self._check()

    def finish(self) -> None:
        """Parsing is done; the rest of the build is short and runs to its end."""
        self.beat()


class Liveness:
    """The last sign of life of the build in flight and of the timers (monotonic s)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._building = False
        self._progress_at = self._tick_at = time.monotonic()

    def building(self, on: bool) -> None:
        with self._lock:
            self._building = on
            self._progress_at = time.monotonic()

    def beat(self) -> None:
        with self._lock:
            self._progress_at = time.monotonic()

    def tick(self) -> None:
        with self._lock:
            self._tick_at = time.monotonic()

    def stuck(self, limit: float) -> str | None:
        """Why the daemon looks hung (None: it does not): the build in flight or the timers
        thread showed no sign of life for more than `limit` seconds."""
        now = time.monotonic()
        with self._lock:
            building, progress_at, tick_at = self._building, self._progress_at, self._tick_at
        if building and now - progress_at > limit:
            return f"the build in flight has made no progress for {now - progress_at:.0f} s"
        if now - tick_at > limit + TICK_SECONDS:
            return f"the scheduler's timers have not run for {now - tick_at:.0f} s"
        return None
