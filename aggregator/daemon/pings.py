"""The daemon's WebSub pings in flight: which obligations a ping job handles, their tries,
their retries with backoff.

    writer thread: `dispatch()` reads the owed pings from the catalog (after each build, at
      start for what a stop left owed, when this node becomes the leader) and queues each
      (hub, topic) no job is handling yet on its hub's queue
    "pings" threads: each hub has at most `SENDERS_PER_HUB` senders, which POST the newest
      obligation of each (hub, topic) queued; a failure is queued again after the backoff's
      wait, a topic that changed again meanwhile at once, an obligation that is over (sent,
      or given up) is forgotten on the writer thread (the catalog's only writer)

A slow or dead hub never holds up a build (the pings have threads of their own) nor another
hub (each hub has its own senders, and every ping a total deadline). A stop cuts the pings in
flight (`InFlight`); what it leaves owed stays in the catalog for the next start. Successes
are logged per hub when its queue runs dry (one line: "N pings sent"), failures at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import Protocol

from aggregator.backoff import BackoffPolicy
from aggregator.catalog import Catalog, OwedPing
from aggregator.delivery import (
    GIVE_UP_SECONDS,
    PING_DEADLINE_SECONDS,
    PING_RETRY,
    InFlight,
    Notifier,
    outcome,
    owed_to,
    ping,
)
from aggregator.errors import AggregatorError
from aggregator.events import ChangeEvent, HubPinged, HubPingFailed

LOGGER = logging.getLogger("aggregator.daemon")

# The daemon's executors the ping jobs run on: the catalog's one writer, and the senders.
WRITER = "writer"
PINGS = "pings"

# Pings sent at once to one hub: a slow hub holds at most this many threads.
SENDERS_PER_HUB = 2
# Successes waiting for their hub's line are logged at least this often.
SENT_LINE_SECONDS = 60.0


def ping_threads(hubs: Collection[str]) -> int:
    """The "pings" executor's size: every hub's senders, and one for the retries' requeue."""
    return SENDERS_PER_HUB * max(1, len(hubs)) + 1


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
    `give_up_seconds` bound the retries of a failed ping; `ping_seconds` each ping.
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
        ping_seconds: float = PING_DEADLINE_SECONDS,
    ) -> None:
        self._schedule = schedule
        self._leading = leading
        self._catalog = catalog
        self.hubs = hubs
        self.notifier = notifier
        self.retry = retry
        self.give_up_seconds = give_up_seconds
        self.ping_seconds = ping_seconds
        self._lock = threading.Lock()
        self._closing = False
        self._in_flight = InFlight()
        # The newest obligation per (hub, topic), which of them a ping job is handling
        # (queued, sending, or waiting to retry), and the tries each obligation had.
        self._owed: dict[tuple[str, str], OwedPing] = {}
        self._pinging: set[tuple[str, str]] = set()
        self._attempts: dict[int, int] = {}
        # Obligations over (sent or given up) whose `_forget` has not run yet: a dispatch
        # meanwhile still reads them from the catalog and must not send them again.
        self._over: set[int] = set()
        # Per hub: the (hub, topic)s ready to send, its senders running, its unlogged successes.
        self._queues: dict[str, deque[tuple[str, str]]] = {}
        self._senders: dict[str, int] = {}
        self._sent: dict[str, list[ChangeEvent]] = {}
        self._sent_since: dict[str, float] = {}

    def close(self) -> None:
        """The daemon is stopping: start nothing more, cut the pings in flight (the catalog
        keeps what is owed)."""
        with self._lock:
            self._closing = True
        self._in_flight.cut_all()

    def dispatch_soon(self) -> None:
        """Ask for a `dispatch()` on the writer thread (from any thread)."""
        self._schedule(self.dispatch, executor=WRITER)

    def dispatch(self) -> None:
        """Writer thread: queue each owed ping no job is handling yet."""
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
                if row.id in self._over:
                    continue
                self._owed[key] = row
                if key in self._pinging:
                    continue  # its job picks the newest obligation up when it runs again
                self._pinging.add(key)
            self._ready(key)

    def _ready(self, key: tuple[str, str]) -> None:
        """Queue `key` on its hub; start a sender if the hub has fewer than its share."""
        hub = key[0]
        with self._lock:
            if self._closing:
                return
            self._queues.setdefault(hub, deque()).append(key)
            running = self._senders.get(hub, 0)
            if running >= SENDERS_PER_HUB:
                return
            self._senders[hub] = running + 1
        self._schedule(self._send, hub, executor=PINGS)

    def _send(self, hub: str) -> None:
        """A "pings" thread: one of `hub`'s senders, until its queue is empty."""
        while True:
            with self._lock:
                queue = self._queues.get(hub)
                if self._closing or not queue:
                    self._senders[hub] -= 1
                    idle = self._senders[hub] == 0
                    sent = self._take_sent(hub) if idle or self._closing else []
                    break
                key = queue.popleft()
            self._ping(key)
            with self._lock:
                since = self._sent_since.get(hub)
                sent = []
                if since is not None and time.monotonic() - since >= SENT_LINE_SECONDS:
                    sent = self._take_sent(hub)
            if sent:
                self.notifier.publish(sent)
        if sent:
            self.notifier.publish(sent)

    def _take_sent(self, hub: str) -> list[ChangeEvent]:
        self._sent_since.pop(hub, None)
        return self._sent.pop(hub, [])

    def _ping(self, key: tuple[str, str]) -> None:
        """Send the newest obligation of `key`; queue it again, retry it later or finish."""
        if not self._leading("WebSub ping"):
            with self._lock:  # the obligation stays in the catalog for the new leader
                self._owed.pop(key, None)
                self._pinging.discard(key)
            return
        with self._lock:
            row = self._owed[key]
            attempts = self._attempts.get(row.id, 0) + 1
            self._attempts[row.id] = attempts
        result = ping(row.hub, row.topic, self.ping_seconds, self._in_flight)
        event, over = outcome(
            row,
            result,
            attempts,
            datetime.now(UTC),
            retry=True,
            policy=self.retry,
            give_up_seconds=self.give_up_seconds,
        )
        with self._lock:
            if over:
                self._attempts.pop(row.id, None)
                self._over.add(row.id)
            if isinstance(event, HubPinged):
                self._sent.setdefault(row.hub, []).append(event)
                self._sent_since.setdefault(row.hub, time.monotonic())
            if self._closing:
                return  # what is still owed stays in the catalog for the next start
            newer = self._owed[key].id != row.id
            if newer:
                self._attempts.pop(row.id, None)  # replaced: its tries no longer count
            if over and not newer:
                del self._owed[key]
                self._pinging.discard(key)
        if not isinstance(event, HubPinged):
            self.notifier.publish([event])
        if over:
            self._schedule(self._forget, row.id, executor=WRITER)
        if newer:
            # The topic changed again while this ping was out: the hub must fetch again.
            self._ready(key)
        elif not over:
            delay = event.retry_seconds if isinstance(event, HubPingFailed) else None
            self._schedule(self._ready, key, executor=PINGS, delay=delay or 0.0)

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
        with self._lock:
            self._over.discard(ping_id)
