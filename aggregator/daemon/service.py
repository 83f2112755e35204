"""`aggregator run`: keep the feeds current as article files change.

    start: take the build lock, start the scheduler, start the observer, then a full build
    (so whatever changed while the daemon was down is published, and nothing dropped during
    that first scan is missed)
    observer thread: events → Debouncer (watch.py, debounce.py)
    "rebuild" job (one thread, the only writer): when a batch is due, Builder.build(batch)
      → Notifier (one log line per change) → schedule the next batch if one is gathering
    "reconcile" job: every reconcile_seconds, ask for a full scan (through the same writer)
    "embargo-next" job: one date job at the next time a feed changes by the clock alone (an
      embargoed article falls due, an item ages out of a windowed feed), re-armed after every
      build (the first one is at start-up); it asks for a build with no changed path, at
      once, whose cut-off releases what is due
    WebSub pings (with hubs configured): after each build (and at start, for what a stop left
    owed) the writer reads the owed pings from the catalog and hands them to the "pings"
    threads, which POST them and retry failures with backoff (date jobs), never holding up
    a build; the writer then forgets the sent ones in the catalog (its only writer). The
    `PingDispatcher` (pings.py) owns the pings in flight.
    SIGTERM / SIGINT: stop the observer, finish or abandon the build in flight, stop the
    scheduler, close the builder, exit 0
    shared (PostgreSQL) catalog: a listener thread asks for a build with no changed path
    when another node commits changes (and after each reconnect, to catch up); a leader
    thread keeps this node's claim to the once-only work (see the catalog's Leadership)

The scheduler only decides WHEN a build runs; `Builder` decides what it does. This module
is the only importer of apscheduler.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import TYPE_CHECKING, Any

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.background import BackgroundScheduler

from aggregator.backoff import Backoff, BackoffPolicy
from aggregator.config import Settings
from aggregator.daemon.debounce import ChangeBatch, Debouncer
from aggregator.daemon.pings import PINGS, WRITER, PingDispatcher
from aggregator.daemon.watch import Watcher
from aggregator.delivery import (
    GIVE_UP_SECONDS,
    PING_RETRY,
    Notifier,
    Sink,
    lifecycle,
    log_sink,
)
from aggregator.errors import AggregatorError
from aggregator.events import ArticleRejected
from aggregator.pipeline import Builder, BuildReport, start_worker_server

if TYPE_CHECKING:
    from aggregator.catalog import Catalog, ChangeListener, Leadership

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
_RETRY = "retry-writes"
_RETRY_BUILD = "retry-build"
_RELEASE = "embargo-next"

# Pings sent at once: a build that changed many feeds owes one per file and hub.
PING_THREADS = 4


class BuildCancelled(Exception):
    """Raised inside a build (from its progress callback) when the daemon is stopping."""


class _StopCheck:
    """A `Progress` that abandons the parse stage of a build once a stop is requested.

    Parsing is the long part of a big build and runs before anything is written, so
    abandoning it loses nothing: the catalog still has the old sizes and mtimes, and the
    next start reads those files again.
    """

    def __init__(self, stopping: threading.Event) -> None:
        self.stopping = stopping

    def _check(self) -> None:
        if self.stopping.is_set():
            raise BuildCancelled

    def start(self, total: int) -> None:
        self._check()

    def advance(self, count: int) -> None:
        self._check()

    def finish(self) -> None:
        """Parsing is done; the rest of the build is short and runs to its end."""


def _utc_in(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=max(0.0, seconds))


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
    ) -> None:
        self.settings = settings
        self.notifier = Notifier(
            list(sinks) if sinks is not None else [log_sink(CHANGES, live=True)]
        )
        self._builder_factory = builder_factory
        self.builder: Builder | None = None
        self.watcher: Watcher | None = None
        self.debouncer = Debouncer(
            settings.debounce_seconds,
            settings.debounce_max_seconds,
            on_pending=self._request,
        )
        # One thread for builds: the single writer. A second one for the timers (reconcile,
        # write retries), which only ask for builds, so they never queue behind a long one.
        # WebSub pings have threads of their own: a slow hub never delays a build.
        self._scheduler = BackgroundScheduler(
            executors={
                WRITER: ThreadPoolExecutor(1),
                "timers": ThreadPoolExecutor(1),
                PINGS: ThreadPoolExecutor(PING_THREADS),
            },
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
            timezone=UTC,
        )
        self._scheduler.add_listener(self._on_lost_run, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)
        self._lock = threading.Lock()
        self._job_pending = False  # a "rebuild" run is scheduled or queued, not yet started
        self._release_now = False  # the next rebuild runs at once, without debouncing
        self._building = False
        self._closing = False
        self._stopping = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._write_retry = Backoff(retry)
        # A build that failed as a whole (full state disk, damaged catalog): retried with the
        # same backoff; its reason is logged when it changes, not once per try.
        self._build_retry = Backoff(retry)
        self._failure: str | None = None
        self.builds = 0
        self.pings = PingDispatcher(
            schedule=self._schedule,
            leading=self._leading,
            catalog=self._catalog,
            hubs=settings.hubs,
            notifier=self.notifier,
            retry=ping_retry,
            give_up_seconds=ping_give_up_seconds,
        )
        self.listener: ChangeListener | None = None
        # The node doing once-only work on a shared catalog (None: SQLite, always this one).
        self.leadership: Leadership | None = None

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Take the build lock, start watching, and schedule the first full build.

        Raises what `Builder` raises (another process holds the lock, the input folder is
        missing); nothing is left running then.
        """
        settings = self.settings
        # APScheduler logs every job run at INFO; our own debug lines say what matters.
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        self.builder = self._builder_factory(settings)
        start_worker_server()
        try:
            self._scheduler.start()
            self.watcher = Watcher(
                self.builder.filter,
                self.debouncer,
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
            self._scheduler.add_job(
                self._reconcile,
                "interval",
                seconds=settings.reconcile_seconds,
                id=_RECONCILE,
                executor="timers",
            )
            LOGGER.info(
                "watching %s (%s); feeds in %s; debounce %g s (at most %g s), reconcile every %g s",
                self.builder.filter.root,
                self.watcher.mode,
                settings.output,
                settings.debounce_seconds,
                settings.debounce_max_seconds,
                settings.reconcile_seconds,
                extra=lifecycle(
                    "watching",
                    input=str(self.builder.filter.root),
                    output=str(settings.output),
                    mode=self.watcher.mode,
                ),
            )
            # Pings a stop left owed go out now, not after the first build; on the writer
            # thread, the catalog's only user.
            self.pings.dispatch_soon()
            self.debouncer.add(full_scan=True)
            if settings.catalog is not None:
                self._join_cluster(settings.catalog, settings.node)
        except BaseException:
            self.stop()
            raise

    def _join_cluster(self, url: str, node: str) -> None:
        from aggregator.catalog import ChangeListener, Leadership

        # Another node's commit rings: render what it changed (a build with no paths).
        # After a reconnect: a full scan, which also redoes the builds that failed while
        # the database was away (the catalog still has the old sizes and mtimes).
        self.listener = ChangeListener(
            url,
            node,
            lambda: self.debouncer.kick(now=True),
            lambda: self.debouncer.add(full_scan=True),
        )
        self.listener.start()
        self.leadership = Leadership(url, node, self.pings.dispatch_soon)
        self.leadership.start()
        LOGGER.info("node %s of the shared catalog %s", node, self.listener.where)

    def as_leader(self, what: str, action: Callable[[], None]) -> bool:
        """Run once-only work (anything that acts outside this node) if this node leads.

        Always on SQLite (one node). On a shared catalog, only the leader runs it, and only
        if its fencing epoch is still the current one right now: a node that stalled and
        lost its session cannot act on a stale belief. False if the action was left to the
        leader.
        """
        if not self._leading(what):
            return False
        action()
        return True

    def _leading(self, what: str) -> bool:
        """Whether this node may do once-only work now (see `as_leader`)."""
        leadership = self.leadership
        if leadership is None:
            return True
        epoch = leadership.epoch
        if epoch is None or not leadership.still_leader(epoch):
            LOGGER.debug("%s: left to the leader", what)
            return False
        return True

    def stop(self, timeout: float = STOP_SECONDS) -> bool:
        """Stop watching, finish or abandon the build in flight, release everything.

        Returns False if the build in flight was still running after `timeout` seconds
        (the caller then leaves without it; its writes are atomic, its transaction is
        rolled back by SQLite on the next start).
        """
        with self._lock:
            self._closing = True
        self.pings.close()
        self._stopping.set()
        if self.watcher is not None:
            self.watcher.stop()
        if self.listener is not None:
            self.listener.stop()
        if self.leadership is not None:
            self.leadership.stop()
        finished = self._idle.wait(timeout)
        if not finished:
            LOGGER.warning(
                "the build in flight is still running after %g s: abandoning it", timeout
            )
            if self._scheduler.running:
                self._scheduler.shutdown(wait=False)
            return False
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)
        if self.builder is not None:
            self.builder.close()
            self.builder = None
        return True

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no batch is gathering, scheduled or building (for tests and benches)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                busy = self._job_pending or self._building
            if not busy and not self.debouncer.pending:
                return True
            time.sleep(0.01)
        return False

    # --- scheduling ---------------------------------------------------------------------

    def _request(self) -> None:
        """Make sure a "rebuild" run is coming when the gathering batch is due.

        Never two at once: while one is scheduled or running, nothing is added, and the
        running one schedules the next batch when it ends. So APScheduler never sees a run
        fire while the previous one is still going (which it would skip). A release moves
        a scheduled run to now (the same job id is replaced).
        """
        with self._lock:
            if self._closing or self._building:
                return
            if self._job_pending and not self._release_now:
                return
            due = self.debouncer.due_at()
            if due is None:
                return
            if self._release_now:
                due = min(due, time.monotonic())
            self._job_pending = True
        delay = due - time.monotonic()
        LOGGER.debug("rebuild scheduled in %.3f s", max(0.0, delay))
        self._replace_job(_REBUILD, self._rebuild, delay, executor=WRITER)

    def _on_lost_run(self, event: JobEvent) -> None:
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
        if watcher is not None and not watcher.alive() and not self._closing:
            LOGGER.error("the file watcher stopped (%s); restarting it, polling", watcher.mode)
            watcher.stop()
            watcher.poll = True
            watcher.start()
        LOGGER.debug("reconcile: full scan requested")
        self.debouncer.add(full_scan=True)

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
        if due is None:
            if self._scheduler.get_job(_RELEASE) is not None:
                self._scheduler.remove_job(_RELEASE)
            return
        delay = (due - builder.now()).total_seconds()
        LOGGER.debug("next release at %s (in %.3f s)", due.isoformat(), max(0.0, delay))
        # Due while the daemon was busy or the machine asleep: it runs anyway, once (the
        # job defaults: no misfire grace limit, coalesced).
        self._replace_job(_RELEASE, self.release, delay)

    def _retry_writes(self) -> None:
        LOGGER.debug("retrying feeds that failed to write")
        self.debouncer.kick()

    # --- the writer -----------------------------------------------------------------------

    def _rebuild(self) -> None:
        """The "rebuild" job: build the due batch; if it is not due yet, come back later."""
        with self._lock:
            self._job_pending = False
            if self._closing:
                return
            batch = self.debouncer.take(force=self._release_now)
            if batch is not None:
                self._release_now = False
                self._building = True
                self._idle.clear()
        if batch is None:
            # Events kept arriving since this run was scheduled: the batch is due later.
            self._request()
            return
        try:
            self._build(batch)
        finally:
            with self._lock:
                self._building = False
                self._idle.set()
            self._request()

    def _build(self, batch: ChangeBatch) -> None:
        builder = self.builder
        assert builder is not None
        LOGGER.debug("rebuild: %s", batch.summary())
        try:
            report = builder.build(batch.changed, progress=_StopCheck(self._stopping))
        except BuildCancelled:
            LOGGER.info("build abandoned: stopping (nothing was written)")
            return
        except Exception as exc:
            # An environment problem (full disk, damaged catalog) or a bug: the daemon goes
            # on. The batch is kept (paths, or the full scan) and retried with backoff.
            self._failed(batch, exc)
            return
        if self._failure is not None:
            LOGGER.info(
                "build succeeded again after %d failed attempt(s)", self._build_retry.failures
            )
            self._failure = None
            self._build_retry.succeeded()
        self.builds += 1
        # The first build catches up with what changed while the daemon was stopped: the log
        # summarises it; every later build is a live change, logged item by item.
        self.notifier.publish(report.events, catch_up=self.builds == 1)
        self._arm(report.next_due)
        self.pings.dispatch()
        self._after(report)

    # --- jobs ------------------------------------------------------------------------------

    def _schedule(
        self, job: Callable[..., None], *args: object, executor: str, delay: float = 0.0
    ) -> None:
        """Run `job(*args)` on `executor` after `delay` seconds, unless the daemon stopped."""
        try:
            self._scheduler.add_job(
                job, "date", run_date=_utc_in(delay), args=list(args), executor=executor
            )
        except SchedulerNotRunningError:
            LOGGER.debug("stopping: %s not scheduled (the catalog keeps what is owed)", job)

    def _replace_job(
        self, job_id: str, job: Callable[[], None], delay: float, executor: str = "timers"
    ) -> None:
        """(Re)schedule the one date job `job_id`: `job()` in `delay` seconds on `executor`."""
        self._scheduler.add_job(
            job,
            "date",
            run_date=_utc_in(delay),
            id=job_id,
            executor=executor,
            replace_existing=True,
        )

    def _catalog(self) -> Catalog | None:
        """The builder's catalog, for the pings; None before the start and after the stop."""
        builder = self.builder
        return None if builder is None else builder.catalog

    @property
    def build_failures(self) -> int:
        """Builds that failed as a whole in a row (0 once one succeeds)."""
        return self._build_retry.failures

    def _failed(self, batch: ChangeBatch, exc: Exception) -> None:
        """Keep a failed batch, schedule its retry, and log the reason if it is new."""
        self.debouncer.hold(batch)
        delay = self._build_retry.failed()
        reason = str(exc) if isinstance(exc, AggregatorError) else repr(exc)
        if reason != self._failure:
            self._failure = reason
            if isinstance(exc, AggregatorError):
                LOGGER.error(
                    "build failed: %s; retrying in %g s, then less and less often (at most "
                    "every %g s) until it works; logged again only if the reason changes",
                    exc,
                    delay,
                    self._build_retry.policy.cap,
                )
            else:  # not one of ours: a bug, whose traceback is worth having once
                LOGGER.exception(
                    "build failed (%s); retrying in %g s, then with backoff",
                    batch.summary(),
                    delay,
                )
        else:
            LOGGER.debug("build failed again (%s); next try in %g s", reason, delay)
        with self._lock:
            if self._closing:
                return
        self._replace_job(_RETRY_BUILD, self.debouncer.kick, delay)

    def _after(self, report: BuildReport) -> None:
        """Follow-ups: re-check half-written files, retry feeds that failed to write."""
        recent = self._recently_rejected(report)
        if recent:
            # Likely still being copied: look again once it has been quiet for a while.
            LOGGER.debug("re-checking %d recently modified rejected file(s)", len(recent))
            self.debouncer.add(recent)
        if report.failed:
            delay = self._write_retry.failed()
            LOGGER.warning(
                "%d feed(s) failed to write (the previous files stay); retrying in %g s",
                report.failed,
                delay,
            )
            with self._lock:
                if self._closing:
                    return
            self._replace_job(_RETRY, self._retry_writes, delay)
        else:
            self._write_retry.succeeded()

    def _recently_rejected(self, report: BuildReport) -> list[str]:
        assert self.builder is not None
        root = self.builder.filter.root
        now = time.time()
        recent = []
        for event in report.events:
            if isinstance(event, ArticleRejected):
                try:
                    mtime = os.stat(root / event.source).st_mtime
                except OSError:
                    continue  # gone: its delete event comes on its own
                if now - mtime < self.settings.debounce_max_seconds:
                    recent.append(event.source)
        return recent


def run_daemon(settings: Settings) -> int:
    """Run in the foreground until SIGTERM or SIGINT; returns the exit code (0)."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        LOGGER.info("%s received: stopping", name, extra=lifecycle("stopping", signal=name))
        stop.set()

    previous: dict[signal.Signals, Any] = {
        sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    daemon = Daemon(settings)
    try:
        daemon.start()
        while not stop.wait(1.0):
            pass
    finally:
        finished = daemon.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not finished:
        # The build thread cannot be interrupted and the interpreter would wait for it at
        # exit: leave now. Its writes are atomic and its catalog transaction rolls back.
        LOGGER.info("stopped", extra=lifecycle("stopped"))
        logging.shutdown()
        os._exit(0)
    LOGGER.info("stopped", extra=lifecycle("stopped"))
    return 0
