"""Debouncing: the changed paths gathered over a burst, and when the batch is due.

    changes (from the watcher, the reconcile timer, a retry, another node's commit)
      | Debouncer: gather until a quiet interval passes (or a ceiling since the first)
      | ChangeBatch -> the daemon, which hands it to the one Builder

Pure timing on an injectable clock: no watchdog, no threads of its own (a lock, since the
observer adds while the daemon's build thread takes).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ChangeBatch:
    """Paths (relative to the input folder) that may have changed, gathered over a burst.

    `full_scan` asks for a scan of the whole folder instead (a folder was created, moved
    or deleted, or the periodic reconcile); `paths` then still lists what was seen.
    """

    paths: frozenset[str]
    full_scan: bool = False
    # When (on the debouncer's clock) the first changed path of the batch was seen: the
    # start of its drop-to-published latency (None: no path, e.g. a reconcile or a kick).
    # Timing, not content: two batches of the same paths are equal.
    first_seen: float | None = field(default=None, compare=False)

    @property
    def changed(self) -> frozenset[str] | None:
        """What `Builder.build` takes: the paths, or None for a full scan."""
        return None if self.full_scan else self.paths

    def summary(self) -> str:
        """What the batch asks for, in a few words, for the debug log."""
        if self.full_scan:
            return "full scan"
        return f"{len(self.paths)} path{'' if len(self.paths) == 1 else 's'}"


class Debouncer:
    """Gathers changes until they settle: `quiet` seconds without a new one, or at most
    `ceiling` seconds after the first, so a steady stream of drops still gets published.

    Thread-safe: the observer adds, the daemon's build thread takes. `on_pending` is called
    (outside the lock) when the first change of a new batch arrives, so the caller can
    arrange to come back at `due_at()`. The clock is injectable for tests.
    """

    def __init__(
        self,
        quiet: float,
        ceiling: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_pending: Callable[[], None] | None = None,
    ) -> None:
        self.quiet = quiet
        self.ceiling = max(ceiling, quiet)
        self.clock = clock
        self.on_pending = on_pending
        self._lock = threading.Lock()
        self._paths: set[str] = set()
        self._full_scan = False
        self._kicked = False
        self._first: float | None = None
        self._last: float | None = None
        self._first_path: float | None = None
        # Paths of a batch whose build failed: they ride along with the next batch, but do
        # not start one on their own (a persistent failure would otherwise loop).
        self._held: set[str] = set()
        self._held_full_scan = False

    def retime(self, quiet: float, ceiling: float) -> None:
        """New debounce times (a reload); the batch gathering now is due by them."""
        with self._lock:
            self.quiet = quiet
            self.ceiling = max(ceiling, quiet)

    def add(self, paths: Iterable[str] = (), *, full_scan: bool = False) -> None:
        """Record changed paths (or a request for a full scan)."""
        paths = set(paths)
        if not paths and not full_scan:
            return
        with self._lock:
            first = self._first is None
            now = self.clock()
            if first:
                self._first = now
            self._last = now
            if paths and self._first_path is None:
                self._first_path = now
            self._paths |= paths
            self._full_scan = self._full_scan or full_scan
        if first and self.on_pending is not None:
            self.on_pending()

    def kick(self, *, now: bool = False) -> None:
        """Ask for a build even with no changed path (to retry feeds that failed to write).

        `now`: due at once rather than after the quiet interval, unless a batch is already
        gathering (another node's commit: nothing more is coming to wait for).
        """
        with self._lock:
            first = self._first is None
            if first:
                self._first = self._last = self.clock() - (self.quiet if now else 0.0)
            self._kicked = True
        if first and self.on_pending is not None:
            self.on_pending()

    def hold(self, batch: ChangeBatch) -> None:
        """Keep a failed batch (its paths, or its full scan) for the next batch; it does
        not start one on its own (`kick` does, when a retry is due)."""
        with self._lock:
            self._held |= batch.paths
            self._held_full_scan = self._held_full_scan or batch.full_scan

    @property
    def pending(self) -> bool:
        """Whether a batch is gathering."""
        with self._lock:
            return self._first is not None

    def due_at(self) -> float | None:
        """When (on `clock`) the gathering batch is ready; None if there is none."""
        with self._lock:
            return self._due()

    def _due(self) -> float | None:
        if self._first is None or self._last is None:
            return None
        return min(self._last + self.quiet, self._first + self.ceiling)

    def take(self, *, force: bool = False) -> ChangeBatch | None:
        """The batch, if it is due (or `force`), and start a new one; else None."""
        with self._lock:
            due = self._due()
            if due is None or (not force and self.clock() < due):
                return None
            batch = ChangeBatch(
                frozenset(self._paths | self._held),
                self._full_scan or self._held_full_scan,
                self._first_path,
            )
            self._first_path = None
            self._paths = set()
            self._held = set()
            self._held_full_scan = False
            self._full_scan = self._kicked = False
            self._first = self._last = None
            return batch
