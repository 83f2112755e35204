"""The daemon's WebSub pings in flight: which obligations a ping job handles, their tries,
their retries with backoff.

    writer thread: `dispatch()` reads the owed pings from the catalog (after each build, at
      start for what a stop left owed, when this node becomes the leader) and starts a ping
      job for each (hub, topic) no job is handling yet
    "pings" threads: POST the newest obligation of a (hub, topic); a failure is retried after
      the backoff's wait, a topic that changed again meanwhile is pinged again, an obligation
      that is over (sent, or given up) is forgotten on the writer thread (the catalog's only
      writer)

A slow or dead hub never holds up a build: the pings have threads of their own. What a stop
leaves owed stays in the catalog for the next start.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import Protocol

from aggregator.backoff import BackoffPolicy
from aggregator.catalog import Catalog, OwedPing
from aggregator.delivery import (
    GIVE_UP_SECONDS,
    PING_RETRY,
    PING_TIMEOUT_SECONDS,
    Notifier,
    outcome,
    owed_to,
    ping,
)
from aggregator.errors import AggregatorError
from aggregator.events import HubPingFailed

LOGGER = logging.getLogger("aggregator.daemon")

# The daemon's executors the ping jobs run on: the catalog's one writer, and the senders.
WRITER = "writer"
PINGS = "pings"


class Schedule(Protocol):
    """Run `job(*args)` on `executor` after `delay` seconds, unless the daemon stopped."""

    def __call__(
        self, job: Callable[..., None], *args: object, executor: str, delay: float = 0.0
    ) -> None: ...


class PingDispatcher:
    """The WebSub obligations a ping job is handling, and the jobs that send them.

    `schedule` runs jobs on the daemon's executors; `leading(what)` says whether this node
    may do once-only work now (on a shared catalog the leader pings for every node);
    `catalog()` is the open catalog, None once the daemon has let go of it. `retry` and
    `give_up_seconds` bound the retries of a failed ping.
    """

    def __init__(
        self,
        *,
        schedule: Schedule,
        leading: Callable[[str], bool],
        catalog: Callable[[], Catalog | None],
        hubs: Collection[str],
        notifier: Notifier,
        retry: BackoffPolicy = PING_RETRY,
        give_up_seconds: float = GIVE_UP_SECONDS,
    ) -> None:
        self._schedule = schedule
        self._leading = leading
        self._catalog = catalog
        self.hubs = hubs
        self.notifier = notifier
        self.retry = retry
        self.give_up_seconds = give_up_seconds
        self._lock = threading.Lock()
        self._closing = False
        # The newest obligation per (hub, topic), which of them a ping job is handling
        # (sending, or waiting to retry), and the tries each obligation had.
        self._owed: dict[tuple[str, str], OwedPing] = {}
        self._pinging: set[tuple[str, str]] = set()
        self._attempts: dict[int, int] = {}

    def close(self) -> None:
        """The daemon is stopping: start nothing more (the catalog keeps what is owed)."""
        with self._lock:
            self._closing = True

    def dispatch_soon(self) -> None:
        """Ask for a `dispatch()` on the writer thread (from any thread)."""
        self._schedule(self.dispatch, executor=WRITER)

    def dispatch(self) -> None:
        """Writer thread: start a ping job for each owed ping no job is handling yet."""
        catalog = self._catalog()
        if catalog is None:
            return
        if not self._leading("WebSub pings"):
            return  # on a shared catalog the leader pings for every node
        try:
            owed = owed_to(catalog, self.hubs)
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
            self._schedule(self._ping, key, executor=PINGS)

    def _ping(self, key: tuple[str, str]) -> None:
        """A "pings" thread: send the newest obligation of `key`; retry, resend or finish."""
        if not self._leading("WebSub ping"):
            with self._lock:  # the obligation stays in the catalog for the new leader
                self._owed.pop(key, None)
                self._pinging.discard(key)
            return
        with self._lock:
            row = self._owed[key]
            attempts = self._attempts.get(row.id, 0) + 1
            self._attempts[row.id] = attempts
        result = ping(row.hub, row.topic, PING_TIMEOUT_SECONDS)
        event, over = outcome(
            row,
            result,
            attempts,
            datetime.now(UTC),
            retry=True,
            policy=self.retry,
            give_up_seconds=self.give_up_seconds,
        )
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
            self._schedule(self._forget, row.id, executor=WRITER)
        if newer:
            # The topic changed again while this ping was out: the hub must fetch again.
            self._schedule(self._ping, key, executor=PINGS)
        elif not over:
            delay = event.retry_seconds if isinstance(event, HubPingFailed) else None
            self._schedule(self._ping, key, executor=PINGS, delay=delay or 0.0)

    def _forget(self, ping_id: int) -> None:
        """Writer thread: the ping was sent (or given up); an obligation replaced by a newer
        change meanwhile has another id and stays."""
        catalog = self._catalog()
        if catalog is None:
            return
        try:
            catalog.forget_pings([ping_id])
        except AggregatorError as exc:  # resent at the next start: a duplicate ping is harmless
            LOGGER.warning("cannot record a sent WebSub ping: %s", exc)
