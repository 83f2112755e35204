"""The writer's build and what its outcome sets going: the hooks told, the retries
scheduled or reset, the status record written, the change events published, the next
release armed and the owed pings dispatched.

`Daemon` (service.py) decides when a build runs and takes the batch; `BuildRunner.run` is
what the "rebuild" job does with it, on the writer thread (the builder's only user).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

from aggregator.config import Settings
from aggregator.daemon.cluster import ClusterNode
from aggregator.daemon.debounce import ChangeBatch
from aggregator.daemon.hooks import DaemonHooks, tell_build
from aggregator.daemon.liveness import BuildCancelled, Liveness, Pulse, StopCheck
from aggregator.daemon.pings import PingDispatcher
from aggregator.daemon.retries import Retries
from aggregator.daemon.status import StatusRecord
from aggregator.delivery import Notifier
from aggregator.errors import BuildIncomplete, NodeNameInUse
from aggregator.pipeline import Builder

# The daemon's logger: these lines were always the daemon's, whichever module writes them.
LOGGER = logging.getLogger("aggregator.daemon")


class BuildRunner:
    """Runs one batch through the builder and hands the outcome on; counts the builds.

    `arm` (re)arms the "embargo-next" job at the report's next due date; `stopping` is set
    by the daemon's stop, which a build in flight checks between files.
    """

    def __init__(
        self,
        *,
        notifier: Notifier,
        hooks: DaemonHooks,
        retries: Retries,
        status: StatusRecord,
        cluster: ClusterNode,
        liveness: Liveness,
        stopping: threading.Event,
        pings: PingDispatcher,
        arm: Callable[[datetime | None], None],
    ) -> None:
        self.notifier = notifier
        self.hooks = hooks
        self.retries = retries
        self.status = status
        self.cluster = cluster
        self.liveness = liveness
        self.stopping = stopping
        self.pings = pings
        self.arm = arm
        self.builds = 0

    def copy(self, builder: Builder | None) -> None:
        """Copy the new versions of the rendered set (the leader's store rang) without a
        build. A file that failed to be written, or a copy that failed, asks for a build
        instead: its copy reports the failure, and its retries take over."""
        if builder is None:
            return
        try:
            builder.lock.check()
            if not builder.copy().failed:
                return
        except NodeNameInUse as exc:  # another process writes as this node now: stop
            self.cluster.fatal = exc
            return
        except Exception as exc:
            if self.stopping.is_set():
                return
            LOGGER.debug("copy: failed (%s); a build copies instead", exc)
        self.retries.debouncer.kick(now=True)

    def run(self, builder: Builder, batch: ChangeBatch, new: Settings | None) -> None:
        """Build `batch` (with a reload's `new` settings first, if any) and act on the result."""
        if new is not None:
            builder.reconfigure(new)  # here: the writer is the builder's only user
        LOGGER.debug("rebuild: %s", batch.summary())
        started = time.time()  # wall clock, as file mtimes are: the re-check's reference
        began = time.monotonic()
        try:
            report = builder.build(
                batch.changed,
                progress=StopCheck(self.stopping, self.liveness.beat),
                render_progress=Pulse(self.liveness.beat),
            )
        except BuildCancelled:
            LOGGER.info("build abandoned: stopping (nothing was written)")
            tell_build(self.hooks, began, result="cancelled")
            return
        except NodeNameInUse as exc:  # another process writes as this node now: stop
            self.cluster.fatal = exc
            return
        except Exception as exc:
            if self.stopping.is_set():  # torn down by the stop: nothing to retry
                LOGGER.info("build abandoned: stopping (%s)", type(exc).__name__)
                return
            # An environment problem (full disk, damaged catalog) or a bug: the daemon goes
            # on. The batch is kept (paths, or the full scan) and retried with backoff.
            if isinstance(exc, BuildIncomplete):
                # The catalog took the changes in before the failure: they are news now
                # (the retry finds those files unchanged, and only writes their feeds).
                self.notifier.publish(exc.events, catch_up=self.builds == 0)
            self.retries.build_failed(batch, exc)
            tell_build(self.hooks, began, result="failed", reason=str(exc) or repr(exc))
            self.status.failed(exc)
            return
        tell_build(self.hooks, began, batch, report)
        self.retries.build_succeeded()
        self.status.built(report)
        self.builds += 1
        # The first build catches up with what changed while the daemon was stopped: the log
        # summarises it; every later build is a live change, logged item by item.
        self.notifier.publish(report.events, catch_up=self.builds == 1)
        self.arm(report.next_due)
        self.pings.dispatch()
        self.retries.after(report, builder.filter.root, started)
