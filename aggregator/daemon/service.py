"""`aggregator run`: keep the feeds current as article files change.

    start: take the build lock, start the scheduler, start the observer, then a full build
    (so whatever changed while the daemon was down is published, and nothing dropped during
    that first scan is missed)
    observer thread: events → Debouncer (watch.py, debounce.py)
    "rebuild" job (one thread, the only writer): when a batch is due, Builder.build(batch)
      (outcomes.py)
      → Notifier (one log line per change) → schedule the next batch if one is gathering;
      a failed build, or feeds that failed to write, are retried with backoff (retries.py)
    "reconcile" job: every reconcile_seconds, ask for a full scan (through the same writer)
    roots (watch.py): the input and output folders are followed by path, not inode: a swapped
      input folder is watched at once and scanned, a deleted output folder written again
    "embargo-next" job: one date job at the next time a feed changes by the clock alone (an
      embargoed article falls due, an item ages out of a windowed feed), re-armed after every
      build (the first one is at start-up); it asks for a build with no changed path, at
      once, whose cut-off releases what is due
    WebSub pings (with hubs configured): after each build (and at start, for what a stop left
    owed) the writer hands the owed pings to the "pings" threads, which send and retry them
    without holding up a build (pings.py)
    SIGTERM / SIGINT: stop the observer, finish or abandon the build in flight, stop the
    scheduler, close the builder, exit 0
    shared (PostgreSQL) catalog: a listener thread asks the leader for a build with no
    changed path when another node's sync commits changes, every other node for a "copy"
    run (the writer copies the leader's new render, no build) when the leader stores it,
    and for a full scan after each reconnect, to catch up; a leader thread keeps this
    node's claim to the once-only work (cluster.py)

The scheduler only decides WHEN a build runs; `Builder` decides what it does. This module
and `jobs.py` the only importer of apscheduler.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from aggregator.backoff import BackoffPolicy
from aggregator.config import Settings
from aggregator.daemon.cluster import ClusterNode
from aggregator.daemon.debounce import ChangeBatch, Debouncer
from aggregator.daemon.hooks import DaemonHooks, DaemonProbe, NoHooks
from aggregator.daemon.jobs import Jobs as _Jobs
from aggregator.daemon.jobs import LostRun
from aggregator.daemon.liveness import (
    TICK_SECONDS,
    Liveness,
    live_settings,
)
from aggregator.daemon.outcomes import BuildRunner
from aggregator.daemon.pings import WRITER, PingDispatcher, ping_threads
from aggregator.daemon.retries import Retries
from aggregator.daemon.status import StatusRecord
from aggregator.daemon.watch import Watcher
from aggregator.delivery import GIVE_UP_SECONDS, PING_RETRY, Notifier, Sink, lifecycle, log_sink
from aggregator.errors import AggregatorError
from aggregator.pipeline import Builder, start_worker_server

if TYPE_CHECKING:
    from aggregator.catalog import Catalog

LOGGER = logging.getLogger("aggregator.daemon")
CHANGES = logging.getLogger("aggregator.changes")

# How long a stop waits for the build in flight before giving up on it (systemd's
# TimeoutStopSec is 10 s; we promise to be gone within 5).
STOP_SECONDS = 4.0

# Retry of feeds that failed to write (full disk, unwritable folder), and of a build that
# failed as a whole: 1 s, 2 s, 4 s, … 60 s (a ping's retries are slower: PING_RETRY).
BUILD_RETRY = BackoffPolicy(first=1.0, cap=60.0)

_REBUILD = "rebuild"
_RECONCILE = "reconcile"
_RELEASE = "embargo-next"

_TICK = "tick"


def _log_watching(root: Path, mode: str, settings: Settings) -> None:
    LOGGER.info(
        "watching %s (%s); feeds in %s; debounce %g s (at most %g s), reconcile every %g s",
        root,
        mode,
        settings.output,
        settings.debounce_seconds,
        settings.debounce_max_seconds,
        settings.reconcile_seconds,
        extra=lifecycle("watching", input=str(root), output=str(settings.output), mode=mode),
    )


class Daemon:
    """The watcher, the scheduler and the one builder, started and stopped together.

    `sinks` receive every change event (default: the log). `builder_factory` lets tests
    wrap the builder; it is called once, on `start()`. `retry` spaces the retries of a
    failed build and of feeds that failed to write; `ping_retry` and `ping_give_up_seconds`
    those of a failed WebSub ping (tests pass faster ones).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        sinks: Iterable[Sink] | None = None,
        builder_factory: Callable[[Settings], Builder] = Builder,
        retry: BackoffPolicy = BUILD_RETRY,
        ping_retry: BackoffPolicy = PING_RETRY,
        ping_give_up_seconds: float = GIVE_UP_SECONDS,
        hooks: DaemonHooks | None = None,
    ) -> None:
        self.settings = settings
        self.hooks = hooks or NoHooks()
        self.notifier = Notifier([*(sinks or [log_sink(CHANGES, live=True)]), self.hooks.on_event])
        self._builder_factory = builder_factory
        self.builder: Builder | None = None
        self.watcher: Watcher | None = None
        self.debouncer = Debouncer(
            settings.debounce_seconds,
            settings.debounce_max_seconds,
            on_pending=self._request,
        )
        self._jobs = _Jobs(self._on_lost_run, ping_threads(settings.hubs))
        self._lock = threading.Lock()
        self._job_pending = False  # a "rebuild" run is scheduled or queued, not yet started
        self._job_due = 0.0  # when that run is due (monotonic)
        self._release_now = False  # the next rebuild runs at once, without debouncing
        self._building = False
        self._closing = False
        self._stopping = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self.liveness = Liveness()
        self._new_settings: Settings | None = None  # a reload's, for the writer to take
        self.retries = Retries(
            self.debouncer,
            replace_job=self._jobs.replace,
            closing=self._is_closing,
            policy=retry,
            recheck_seconds=settings.debounce_max_seconds,
        )
        self.cluster = ClusterNode()
        self.status = StatusRecord(settings)  # for `aggregator status` (daemon/status.py)
        self.pings = PingDispatcher(
            schedule=self._jobs.schedule,
            leading=self.cluster.leading,
            catalog=self.catalog_in_use,
            hubs=settings.hubs,
            notifier=self.notifier,
            retry=ping_retry,
            give_up_seconds=ping_give_up_seconds,
        )
        self.runner = BuildRunner(
            notifier=self.notifier,
            hooks=self.hooks,
            retries=self.retries,
            status=self.status,
            cluster=self.cluster,
            liveness=self.liveness,
            stopping=self._stopping,
            pings=self.pings,
            arm=self._arm,
        )
        self.hooks.attach(DaemonProbe(lambda: self.watcher, self.cluster))

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Take the build lock, start watching, and schedule the first full build. Raises
        what `Builder` raises (the lock is held, no input folder); nothing is left running."""
        settings = self.settings
        self.builder = self._builder_factory(settings).render_when(self.cluster.render_epoch)
        start_worker_server()
        try:
            self.status.started(self.builder.catalog.where)
            self._jobs.scheduler.start()
            self.watcher = Watcher(
                self.builder.filter,
                self.debouncer,
                output=settings.output,
                poll=settings.poll,
                poll_seconds=settings.poll_seconds,
            )
            # The observer starts before the first scan, so a file dropped during that scan
            # is either seen by it or lands in the next batch.
            try:
                self.watcher.start()
            except OSError as exc:
                raise AggregatorError(
                    f"cannot watch {self.builder.filter.root}: {exc.strerror or exc}"
                ) from exc
            self._jobs.every(_RECONCILE, self._reconcile, settings.reconcile_seconds)
            self._jobs.every(_TICK, self.liveness.tick, TICK_SECONDS)
            _log_watching(self.builder.filter.root, self.watcher.mode, settings)
            # Pings a stop left owed go out now, not after the first build; on the writer
            # thread, the catalog's only user.
            self.pings.dispatch_soon()
            self.debouncer.add(full_scan=True)
            if settings.catalog is not None:
                # A sync rings the leader: a build with no path renders it; its store rings
                # the others, which copy it. A reconnect: a full scan (redoes failed builds).
                self.cluster.join(
                    settings.catalog,
                    settings.node,
                    on_commit=lambda: self.debouncer.kick(now=True),
                    on_rendered=self._request,
                    on_reconnect=lambda: self.debouncer.add(full_scan=True),
                    on_elected=self.pings.dispatch_soon,
                )
        except BaseException:
            self.stop()
            raise

    def reconfigure(self, settings: Settings) -> list[str]:
        """A reload: the jobs re-armed now, the builder's settings swapped by the writer
        before the build this asks for (which re-renders what they change). Returns the
        `RESTART_ONLY` settings that changed: they keep their values until a restart."""
        old = self.settings
        settings, kept = live_settings(old, settings)
        self.settings = settings
        self.debouncer.retime(settings.debounce_seconds, settings.debounce_max_seconds)
        self.retries.recheck_seconds = settings.debounce_max_seconds
        self.pings.hubs = settings.hubs
        with self._lock:
            if self._closing:
                return kept
            self._new_settings = settings
        if settings.reconcile_seconds != old.reconcile_seconds:
            self._jobs.every(_RECONCILE, self._reconcile, settings.reconcile_seconds)
        self.debouncer.kick(now=True)
        return kept

    def as_leader(self, what: str, action: Callable[[], None]) -> bool:
        """Run once-only work (anything that acts outside this node) if this node leads:
        always on SQLite, see `ClusterNode.leading`. False if it was left to the leader."""
        if not self.cluster.leading(what):
            return False
        action()
        return True

    def stop(self, timeout: float = STOP_SECONDS) -> bool:
        """Stop watching, finish or abandon the build in flight, release everything. False
        if the build was still running after `timeout` s (the caller leaves without it: its
        writes are atomic, its transaction rolls back)."""
        with self._lock:
            self._closing = True
        self.pings.close()
        self._stopping.set()
        if self.watcher is not None:
            self.watcher.stop()
        self.cluster.stop()
        finished = self._idle.wait(timeout)
        if not finished:
            LOGGER.warning(
                "the build in flight is still running after %g s: abandoning it", timeout
            )
            self._jobs.shutdown(wait=False)
            return False
        self._jobs.shutdown(wait=True)
        self.status.stopped()
        if self.builder is not None:
            self.builder.close()
            self.builder = None
        return True

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no batch is gathering, scheduled or building (for tests and benches)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                busy = self._job_pending or self._building or self.cluster.copy_due.is_set()
            if not busy and not self.debouncer.pending:
                return True
            time.sleep(0.01)
        return False

    def _is_closing(self) -> bool:
        with self._lock:
            return self._closing

    def catalog_in_use(self) -> Catalog | None:
        """The builder's catalog (for the pings, and the main loop's check that this node
        still holds its name); None before the start and after the stop."""
        builder = self.builder
        return None if builder is None else builder.catalog

    # --- scheduling ---------------------------------------------------------------------

    def _request(self) -> None:
        """Make sure a "rebuild" run is coming when the gathering batch is due.

        Never two at once: while one is scheduled or running, nothing is added, and the
        running one schedules the next batch when it ends. So APScheduler never sees a run
        fire while the previous one is still going (which it would skip). A release, or the
        leading edge of a batch, moves a scheduled run sooner (the same job id is replaced).
        """
        with self._lock:
            if self._closing or self._building:
                return
            due = time.monotonic() if self.cluster.copy_due.is_set() else self.debouncer.due_at()
            if due is None:
                return
            if self._release_now:
                due = min(due, time.monotonic())
            # One scheduled is enough, unless this batch is due sooner (see above).
            if self._job_pending and due >= self._job_due:
                return
            self._job_pending = True
            self._job_due = due
        delay = due - time.monotonic()
        LOGGER.debug("rebuild scheduled in %.3f s", max(0.0, delay))
        self._jobs.replace(_REBUILD, self._rebuild, delay, executor=WRITER)

    def _on_lost_run(self, event: LostRun) -> None:
        """A run was skipped or missed after all: log it and schedule another."""
        if event.job_id != _REBUILD:
            return
        LOGGER.warning("a rebuild run was skipped by the scheduler; rescheduling it")
        with self._lock:
            self._job_pending = False
        self._request()

    def _reconcile(self) -> None:
        """Periodic full scan, for anything the watcher missed."""
        watcher = self.watcher
        if watcher is not None and not self._closing:
            watcher.check_roots()  # a root replaced: watch the new one before judging
            watcher.revive()
        LOGGER.debug("reconcile: full scan requested")
        self.debouncer.add(full_scan=True)
        # The leader prunes the change log, on the writer thread (the catalog's one user).
        self._jobs.schedule(self.cluster.prune, self.catalog_in_use(), executor=WRITER)

    def release(self) -> None:
        """The "embargo-next" job: a build now, with no changed path; its cut-off releases
        what fell due (and drops what aged out). Tests with a fake clock call it directly."""
        LOGGER.debug("release: a scheduled article or window expiry is due")
        with self._lock:
            self._release_now = True
        self.debouncer.kick()
        self._request()

    def _arm(self, due: datetime | None) -> None:
        """(Re)arm the one "embargo-next" job at `due` (on the builder's clock)."""
        builder = self.builder
        with self._lock:
            if self._closing or builder is None:
                return
        self.hooks.release_armed(due)
        if due is None:
            self._jobs.cancel(_RELEASE)
            return
        delay = (due - builder.now()).total_seconds()
        LOGGER.debug("next release at %s (in %.3f s)", due.isoformat(), max(0.0, delay))
        # Due while the daemon was busy or the machine asleep: it runs anyway, once (the
        # job defaults: no misfire grace limit, coalesced).
        self._jobs.replace(_RELEASE, self.release, delay)

    def _rebuild(self) -> None:
        """The writer's "rebuild" job: build the due batch; if not due yet, come back later."""
        with self._lock:
            self._job_pending = False
            if self._closing:
                return
            batch = self.debouncer.take(force=self._release_now)
            if (copy := self.cluster.take_copy()) or batch is not None:
                self._release_now = self._release_now and batch is None
                self._building = True
                self.liveness.building(True)
                self._idle.clear()
        if batch is None and not copy:
            # Events kept arriving since this run was scheduled: the batch is due later.
            self._request()
            return
        try:
            self.runner.copy(self.builder) if batch is None else self._build(batch)
        finally:
            with self._lock:
                self._building = False
                self.liveness.building(False)
                self._idle.set()
            self.debouncer.settled()
            self._request()

    def _build(self, batch: ChangeBatch) -> None:
        builder = self.builder
        assert builder is not None
        with self._lock:
            new, self._new_settings = self._new_settings, None
        self.runner.run(builder, batch, new)
