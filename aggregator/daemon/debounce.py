"""Debouncing: the changed paths gathered over a burst, and when the batch is due.

    changes (from the watcher, the reconcile timer, a retry, another node's commit)
      | Debouncer: gather until a quiet interval passes (or a ceiling since the first);
      |   after a quiet spell, the first completed file is built at once (the leading edge),
      |   unless more paths came with it before its build was taken (a burst: gathered whole)
      | ChangeBatch -> the daemon, which hands it to the one Builder

Pure timing on an injectable clock: no watchdog, no threads of its own (a lock, since the
observer adds while the daemon's build thread takes).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

# The leading edge is for a lone change: a file dropped, edited or deleted, a move (two
# paths), a commit of a few. A batch that holds more paths before its build is taken is the
# start of a burst (a copy adds a few files a millisecond): built at once, its first files
# would have every feed they touch rendered for them, and rendered again for the rest of the
# burst a moment later. With 10,000 articles loaded, a lead of 121 files rendered 76 feeds
# (3.2 s on a loaded machine) before the other 879 of a burst of 1,000 could start.
LEAD_PATHS = 4


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

    The leading edge: a batch that begins after `quiet` seconds without any change (or
    after a build that ended with nothing gathered: `settled`) is due at once when a path
    in it is `complete` (its writer closed it, it was renamed into place, or it was
    deleted), so a lone drop is built without waiting out the quiet interval. Only its
    complete paths go then; a path still being written (created or
    modified, not closed yet) stays for the batch after, debounced as before, as does the
    rest of a burst. A path whose reading fails half-written is looked at again by the
    retries (`add` without `complete`: after the quiet interval). A batch that holds more
    than `LEAD_PATHS` paths before its build is taken is a burst, not a lone change: it
    loses the leading edge and is gathered whole, as any other batch.

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
        # The last change seen, across batches: what a batch's start is quiet against.
        self._seen: float | None = None
        self._fresh = False  # this batch began after a quiet spell
        self._leading = False  # ... and a complete path made it due at once
        self._open: set[str] = set()  # paths of this batch whose writer is not done
        # Paths of a batch whose build failed: they ride along with the next batch, but do
        # not start one on their own (a persistent failure would otherwise loop).
        self._held: set[str] = set()
        self._held_full_scan = False

    def retime(self, quiet: float, ceiling: float) -> None:
        """New debounce times (a reload); the batch gathering now is due by them."""
        with self._lock:
            self.quiet = quiet
            self.ceiling = max(ceiling, quiet)

    def add(
        self,
        paths: Iterable[str] = (),
        *,
        full_scan: bool = False,
        complete: bool | None = False,
    ) -> None:
        """Record changed paths (or a request for a full scan).

        `complete`: True, the paths' writers are done with them (closed, renamed into
        place, deleted): a batch begun after a quiet spell is then due at once; False, they
        may be mid-write (created, modified); None, the change says neither (an attribute
        change, such as a new mtime set after the close)."""
        paths = set(paths)
        if not paths and not full_scan:
            return
        with self._lock:
            first = self._first is None
            now = self.clock()
            if first:
                self._first = now
                self._fresh = self._seen is None or now - self._seen >= self.quiet
            self._last = now
            if paths:
                # A scan asked for is no file event: it does not break a quiet spell.
                self._seen = now
            if paths and self._first_path is None:
                self._first_path = now
            self._paths |= paths
            self._full_scan = self._full_scan or full_scan
            if full_scan:
                # A scan reads every file, finished or not: it waits out the quiet interval.
                self._fresh = False
            if complete:
                self._open -= paths
            elif complete is not None:
                self._open |= paths
            if len(self._paths) > LEAD_PATHS:
                # A burst: gathered whole, as if it had not begun after a quiet spell (a
                # "rebuild" run already scheduled for the leading edge finds it not due,
                # and schedules itself again for when it is).
                self._fresh = self._leading = False
            # Tell the caller when the batch is new, or newly due at once.
            lead = bool(complete and paths and self._fresh and not self._leading)
            self._leading = self._leading or lead
        if (first or lead) and self.on_pending is not None:
            self.on_pending()

    def settled(self) -> None:
        """A build ended. If nothing arrived while it ran, every change seen so far is built
        and the daemon is idle: the next change starts a batch after a quiet spell (the
        leading edge), however soon it comes. A person who drops a file, looks at the feed
        and edits it 50 ms later is no burst; waiting out the quiet interval then put
        0.2 s on a third of such edits. Changes that come during a build still gather."""
        with self._lock:
            if self._first is None:
                self._seen = None

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

    @property
    def gathered(self) -> int:
        """How many paths the gathering batch holds (not counting the held ones)."""
        with self._lock:
            return len(self._paths)

    def due_at(self) -> float | None:
        """When (on `clock`) the gathering batch is ready; None if there is none."""
        with self._lock:
            return self._due()

    def _due(self) -> float | None:
        if self._first is None or self._last is None:
            return None
        if self._leading:
            return self._first
        return min(self._last + self.quiet, self._first + self.ceiling)

    def take(self, *, force: bool = False) -> ChangeBatch | None:
        """The batch, if it is due (or `force`), and start a new one; else None."""
        with self._lock:
            due = self._due()
            if due is None or (not force and self.clock() < due):
                return None
            if self._leading and not (force or self._full_scan or self._kicked):
                return self._take_complete()
            batch = ChangeBatch(
                frozenset(self._paths | self._held),
                self._full_scan or self._held_full_scan,
                self._first_path,
            )
            self._first_path = None
            self._paths = set()
            self._open = set()
            self._fresh = self._leading = False
            self._held = set()
            self._held_full_scan = False
            self._full_scan = self._kicked = False
            self._first = self._last = None
            return batch

    def _take_complete(self) -> ChangeBatch | None:
        """The leading edge's batch: the complete paths (and the held ones); the paths
        still being written begin the next batch, due after the quiet interval."""
        complete = self._paths - self._open
        first_path = self._first_path
        self._paths = self._paths & self._open
        self._open = set(self._paths)
        self._fresh = self._leading = False
        if self._paths:
            self._first = self._last = self.clock()
        else:
            self._first = self._last = self._first_path = None
        if not complete:
            # Written to again since it was closed: nothing is complete now.
            return None
        batch = ChangeBatch(frozenset(complete | self._held), self._held_full_scan, first_path)
        self._held = set()
        self._held_full_scan = False
        return batch
