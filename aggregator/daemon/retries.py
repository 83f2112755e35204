"""The daemon's follow-ups to a build that did not fully succeed: the retries, spaced by one
backoff, and the second look at files rejected while still being copied.

    a build that failed as a whole (full state disk, damaged catalog, a bug): its batch is
      held for the next one, and a build is asked for after the backoff's wait; the reason
      is logged when it changes, not once per try (a build that failed after its sync
      committed is one too: its events went out, its feeds are pending)
    feeds that failed to write (full disk, unwritable folder): a build is asked for after
      the backoff's wait (the previous files stay meanwhile)
    a rejected file modified moments before its build began (or during it): likely still
      being copied, looked at again once it has been quiet for a while; each version of a
      file (its mtime) once, so a file that stays broken is not read over and over

Each asks the debouncer for a build; none builds itself.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from aggregator.backoff import Backoff, BackoffPolicy
from aggregator.daemon.debounce import ChangeBatch, Debouncer
from aggregator.errors import AggregatorError, BuildIncomplete, reason_of
from aggregator.events import ArticleRejected
from aggregator.pipeline import BuildReport
from aggregator.words import counted

LOGGER = logging.getLogger("aggregator.daemon")

_RETRY = "retry-writes"
_RETRY_BUILD = "retry-build"

# (Re)schedule the one date job `job_id`: `job()` in `delay` seconds.
ReplaceJob = Callable[[str, Callable[[], None], float], None]


class Retries:
    """The failures in a row of whole builds and of feed writes, and the retries they call
    for. `closing()` says the daemon is stopping (no retry is scheduled then);
    `recheck_seconds`: how shortly before its build a rejected file must have changed for it
    to be looked at again."""

    def __init__(
        self,
        debouncer: Debouncer,
        *,
        replace_job: ReplaceJob,
        closing: Callable[[], bool],
        policy: BackoffPolicy,
        recheck_seconds: float,
    ) -> None:
        self.debouncer = debouncer
        self._replace_job = replace_job
        self._closing = closing
        self.recheck_seconds = recheck_seconds
        self._writes = Backoff(policy)
        self._builds = Backoff(policy)
        self._failure: str | None = None  # the reason last logged for a failed build
        # Rejected files already looked at again: path → the mtime (ns) of that version.
        self._rechecked: dict[str, int] = {}

    @property
    def build_failures(self) -> int:
        """Builds that failed as a whole in a row (0 once one succeeds)."""
        return self._builds.failures

    def build_succeeded(self) -> None:
        if self._failure is not None:
            LOGGER.info(
                "build succeeded again after %s", counted(self._builds.failures, "failed attempt")
            )
            self._failure = None
            self._builds.succeeded()

    def build_failed(self, batch: ChangeBatch, exc: Exception) -> None:
        """Keep a failed batch, schedule its retry, and log the reason if it is new."""
        self.debouncer.hold(batch)
        delay = self._builds.failed()
        # A build that failed after its sync committed fails for the same reason each try,
        # with a different count of files taken in: the reason alone is compared.
        cause = exc.cause if isinstance(exc, BuildIncomplete) else exc
        reason = reason_of(cause)
        if reason != self._failure:
            self._failure = reason
            if isinstance(cause, AggregatorError):
                LOGGER.error(
                    "build failed: %s; retrying in %g s, then less and less often (at most "
                    "every %g s) until it works; logged again only if the reason changes",
                    exc,
                    delay,
                    self._builds.policy.cap,
                )
            else:  # not one of ours: a bug, whose traceback is worth having once
                LOGGER.exception(
                    "build failed (%s); retrying in %g s, then with backoff",
                    batch.summary(),
                    delay,
                )
        else:
            LOGGER.debug("build failed again (%s); next try in %g s", reason, delay)
        if self._closing():
            return
        self._replace_job(_RETRY_BUILD, self.debouncer.kick, delay)

    def after(self, report: BuildReport, root: Path, started: float) -> None:
        """Follow-ups: re-check half-written files, retry feeds that failed to write.

        `started`: the wall-clock time (`time.time()`) the build began, before it read any
        file."""
        recent = self._recently_rejected(report, root, started)
        if recent:
            # Likely still being copied: look again once it has been quiet for a while.
            LOGGER.debug(
                "re-checking %s", counted(len(recent), "recently modified rejected file")
            )
            self.debouncer.add(recent)
        if report.failed:
            delay = self._writes.failed()
            LOGGER.warning(
                "%s failed to write (the previous files stay); retrying in %g s",
                counted(report.failed, "feed"),
                delay,
            )
            if self._closing():
                return
            self._replace_job(_RETRY, self._retry_writes, delay)
        else:
            self._writes.succeeded()

    def _retry_writes(self) -> None:
        LOGGER.debug("retrying feeds that failed to write")
        self.debouncer.kick()

    def _recently_rejected(self, report: BuildReport, root: Path, started: float) -> list[str]:
        """The rejected files changed less than `recheck_seconds` before the build began, or
        while it ran, not looked at again yet in that version.

        Measured against the build's start, not the clock after it: whether a half-copied
        file gets its second look must not depend on how long the build took (a slow disk
        or a busy machine), only on how the file was changing when it was read.
        """
        recent = []
        rechecked: dict[str, int] = {}
        for event in report.events:
            if not isinstance(event, ArticleRejected):
                continue
            try:
                status = os.stat(root / event.source)
            except OSError:
                continue  # gone: its delete event comes on its own
            version = status.st_mtime_ns
            if self._rechecked.get(event.source) == version:
                rechecked[event.source] = version  # this version had its second look
            elif started - status.st_mtime < self.recheck_seconds:
                recent.append(event.source)
                rechecked[event.source] = version
        # Only this build's rejections are kept: a file rejected again in the same version
        # is skipped by the next build, and the table never grows past one build's worth.
        self._rechecked = rechecked
        return recent
