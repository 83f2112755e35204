"""The daemon's APScheduler: its executors (the one writer thread, the timers, the ping
threads) and the kinds of job it runs. The only importer of apscheduler."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.background import BackgroundScheduler

from aggregator.daemon.pings import PINGS, WRITER

LOGGER = logging.getLogger("aggregator.daemon")

TIMERS = "timers"

# What `on_lost` is given: a run the scheduler skipped or missed.
LostRun = JobEvent

def _utc_in(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=max(0.0, seconds))


class Jobs:
    """The daemon's APScheduler: its executors and the kinds of job it runs.

    One thread for builds: the single writer. A second one for the timers (reconcile,
    retries), which only ask for builds, so they never queue behind a long one. WebSub pings
    have threads of their own, a few per hub (`ping_threads`): a slow hub never delays a build.
    `on_lost` hears of a run the scheduler skipped or missed.
    """

    def __init__(self, on_lost: Callable[[JobEvent], None], ping_threads: int) -> None:
        # APScheduler logs every job run at INFO; our own debug lines say what matters.
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        self.scheduler = BackgroundScheduler(
            executors={
                WRITER: ThreadPoolExecutor(1),
                TIMERS: ThreadPoolExecutor(1),
                PINGS: ThreadPoolExecutor(ping_threads),
            },
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
            timezone=UTC,
        )
        self.scheduler.add_listener(on_lost, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)

    def every(self, job_id: str, job: Callable[[], None], seconds: float) -> None:
        """Run `job()` every `seconds` on the timers thread (from now on, if it ran already:
        a reload re-arms the reconcile interval)."""
        self.scheduler.add_job(
            job, "interval", seconds=seconds, id=job_id, executor=TIMERS, replace_existing=True
        )

    def schedule(
        self, job: Callable[..., None], *args: object, executor: str, delay: float = 0.0
    ) -> None:
        """Run `job(*args)` on `executor` after `delay` seconds, unless the daemon stopped."""
        try:
            self.scheduler.add_job(
                job, "date", run_date=_utc_in(delay), args=list(args), executor=executor
            )
        except SchedulerNotRunningError:
            LOGGER.debug("stopping: %s not scheduled (the catalog keeps what is owed)", job)

    def replace(
        self, job_id: str, job: Callable[[], None], delay: float, executor: str = TIMERS
    ) -> None:
        """(Re)schedule the one date job `job_id`: `job()` in `delay` seconds on `executor`."""
        self.scheduler.add_job(
            job,
            "date",
            run_date=_utc_in(delay),
            id=job_id,
            executor=executor,
            replace_existing=True,
        )

    def cancel(self, job_id: str) -> None:
        if self.scheduler.get_job(job_id) is not None:
            self.scheduler.remove_job(job_id)

    def shutdown(self, *, wait: bool) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=wait)
