"""`aggregator run`: keep the feeds current as article files change.

    start: take the build lock, start the scheduler, start the observer, then a full build
    (so whatever changed while the daemon was down is published, and nothing dropped during
    that first scan is missed)
    observer thread: events → Debouncer (watch.py)
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
    a build; the writer then forgets the sent ones in the catalog (its only writer)
    SIGTERM / SIGINT: stop the observer, finish or abandon the build in flight, stop the
    scheduler, close the builder, exit 0
    shared (PostgreSQL) catalog: a listener thread asks for a build with no changed path
    when another node commits changes (and after each reconnect, to catch up); a leader
    thread keeps this node's claim to the once-only work (see catalog_postgres.Leadership)

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

from aggregator.catalog import OwedPing
from aggregator.config import Settings
from aggregator.daemon.watch import ChangeBatch, Debouncer, Watcher
from aggregator.delivery import (
    PING_TIMEOUT_SECONDS,
    Notifier,
    Sink,
    lifecycle,
    log_sink,
    outcome,
    owed_to,
    ping,
)
from aggregator.errors import AggregatorError
from aggregator.events import ArticleRejected, HubPingFailed
from aggregator.pipeline import Builder, BuildReport, start_worker_server

if TYPE_CHECKING:
    from aggregator.catalog import ChangeListener, Leadership

LOGGER = logging.getLogger("aggregator.daemon")
CHANGES = logging.getLogger("aggregator.changes")

# How long a stop waits for the build in flight before giving up on it (systemd's
# TimeoutStopSec is 10 s; we promise to be gone within 5).
STOP_SECONDS = 4.0

# Retry of feeds that failed to write (full disk, unwritable folder): 1 s, 2 s, 4 s, … 60 s.
RETRY_FIRST_SECONDS = 1.0
RETRY_MAX_SECONDS = 60.0

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
    wrap the builder; it is called once, on `start()`.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        sinks: Iterable[Sink] | None = None,
        builder_factory: Callable[[Settings], Builder] = Builder,
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
                "writer": ThreadPoolExecutor(1),
                "timers": ThreadPoolExecutor(1),
                "pings": ThreadPoolExecutor(PING_THREADS),
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
        self._retry_seconds = RETRY_FIRST_SECONDS
        # A build that failed as a whole (full state disk, damaged catalog): retried with the
        # same backoff; its reason is logged when it changes, not once per try.
        self._failure_retry_seconds = RETRY_FIRST_SECONDS
        self._failure: str | None = None
        self._failures = 0
        self.builds = 0
        # WebSub: the newest obligation per (hub, topic), which of them a ping job is
        # handling (sending, or waiting to retry), and the tries each obligation had.
        self._owed: dict[tuple[str, str], OwedPing] = {}
        self._pinging: set[tuple[str, str]] = set()
        self._attempts: dict[int, int] = {}
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
            self._schedule(self._dispatch_pings, executor="writer")
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
        self.leadership = Leadership(
            url, node, lambda: self._schedule(self._dispatch_pings, executor="writer")
        )
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
        self._replace_job(_REBUILD, self._rebuild, delay, executor="writer")

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
        LOGGER.debug("rebuild: %s", batch.describe())
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
            LOGGER.info("build succeeded again after %d failed attempt(s)", self._failures)
            self._failure = None
            self._failures = 0
            self._failure_retry_seconds = RETRY_FIRST_SECONDS
        self.builds += 1
        # The first build catches up with what changed while the daemon was stopped: the log
        # summarises it; every later build is a live change, logged item by item.
        self.notifier.publish(report.events, catch_up=self.builds == 1)
        self._arm(report.next_due)
        self._dispatch_pings()
        self._after(report)

    # --- WebSub pings -----------------------------------------------------------------------

    def _dispatch_pings(self) -> None:
        """Writer thread: start a ping job for each owed ping no job is handling yet."""
        builder = self.builder
        if builder is None:
            return
        if not self._leading("WebSub pings"):
            return  # on a shared catalog the leader pings for every node
        try:
            owed = owed_to(builder.catalog, self.settings.hubs)
        except AggregatorError as exc:  # the catalog is busy or broken: the next build retries
            LOGGER.warning("cannot read the owed WebSub pings: %s", exc)
            return
        for row in owed:
            key = (row.hub, row.topic)
            with self._lock:
                if self._closing:
                    return
                self._owed[key] = row
                if key in self._pinging:
                    continue  # its job picks the newest obligation up when it runs again
                self._pinging.add(key)
            self._schedule(self._ping, key, executor="pings")

    def _ping(self, key: tuple[str, str]) -> None:
        """A "pings" thread: send the newest obligation of `key`; retry, resend or finish."""
        if self.leadership is not None and not self._leading("WebSub ping"):
            with self._lock:  # the obligation stays in the catalog for the new leader
                self._owed.pop(key, None)
                self._pinging.discard(key)
            return
        with self._lock:
            row = self._owed[key]
            attempts = self._attempts.get(row.id, 0) + 1
            self._attempts[row.id] = attempts
        result = ping(row.hub, row.topic, PING_TIMEOUT_SECONDS)
        event, over = outcome(row, result, attempts, datetime.now(UTC), retry=True)
        self.notifier.publish([event])
        with self._lock:
            if over:
                self._attempts.pop(row.id, None)
            if self._closing:
                return  # what is still owed stays in the catalog for the next start
            newer = self._owed[key].id != row.id
            if newer:
                self._attempts.pop(row.id, None)  # replaced: its tries no longer count
            if over and not newer:
                del self._owed[key]
                self._pinging.discard(key)
        if over:
            self._schedule(self._forget_ping, row.id, executor="writer")
        if newer:
            # The topic changed again while this ping was out: the hub must fetch again.
            self._schedule(self._ping, key, executor="pings")
        elif not over:
            delay = event.retry_seconds if isinstance(event, HubPingFailed) else None
            self._schedule(self._ping, key, executor="pings", delay=delay or 0.0)

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

    def _forget_ping(self, ping_id: int) -> None:
        """Writer thread: the ping was sent (or given up); an obligation replaced by a newer
        change meanwhile has another id and stays."""
        if self.builder is None:
            return
        try:
            self.builder.catalog.forget_pings([ping_id])
        except AggregatorError as exc:  # resent at the next start: a duplicate ping is harmless
            LOGGER.warning("cannot record a sent WebSub ping: %s", exc)

    def _failed(self, batch: ChangeBatch, exc: Exception) -> None:
        """Keep a failed batch, schedule its retry, and log the reason if it is new."""
        self.debouncer.hold(batch)
        self._failures += 1
        delay = self._failure_retry_seconds
        self._failure_retry_seconds = min(RETRY_MAX_SECONDS, delay * 2)
        reason = str(exc) if isinstance(exc, AggregatorError) else repr(exc)
        if reason != self._failure:
            self._failure = reason
            if isinstance(exc, AggregatorError):
                LOGGER.error(
                    "build failed: %s; retrying in %g s, then less and less often (at most "
                    "every %g s) until it works; logged again only if the reason changes",
                    exc,
                    delay,
                    RETRY_MAX_SECONDS,
                )
            else:  # not one of ours: a bug, whose traceback is worth having once
                LOGGER.exception(
                    "build failed (%s); retrying in %g s, then with backoff",
                    batch.describe(),
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
            delay = self._retry_seconds
            self._retry_seconds = min(RETRY_MAX_SECONDS, delay * 2)
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
            self._retry_seconds = RETRY_FIRST_SECONDS

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
