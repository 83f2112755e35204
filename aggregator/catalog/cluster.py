"""The threads of a node in a cluster: `ChangeListener` wakes it when another node commits
changed feeds, `Leadership` elects the one node that does once-only work, with a fencing
epoch. Both hold a PostgreSQL session of their own and reconnect with the one `Backoff`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import psycopg

from aggregator.backoff import Backoff, BackoffPolicy
from aggregator.catalog.pgconnect import connect, where_is
from aggregator.catalog.postgres import CHANNEL, LEADER_LOCK
from aggregator.catalog.rendered import RENDER_RING
from aggregator.errors import CatalogError, redact_url

LOGGER = logging.getLogger("aggregator.catalog")

# Reconnection backoff of the listener and the leader thread.
BACKOFF = BackoffPolicy(first=1.0, cap=30.0)
# How often a follower tries to become the leader (a dead leader is replaced this fast).
LEADER_POLL_SECONDS = 1.0


def _first_line(exc: Exception) -> str:
    text = redact_url(str(exc).strip())
    return text.splitlines()[0] if text else "closed"


class _SessionThread:
    """A daemon thread that keeps a session open: `_session(conn)` until it fails, then
    `_lost(exc)` and a wait that backs off, until `stop`."""

    def __init__(self, url: str, name: str) -> None:
        self.url = url
        self._stopping = threading.Event()
        self._backoff = Backoff(BACKOFF)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Start in a thread of its own."""
        self._thread.start()

    def stop(self) -> None:
        """Stop and wait for the thread (at most about a second)."""
        self._stopping.set()
        self._thread.join(timeout=5)

    def _session(self, conn: psycopg.Connection[Any]) -> None:
        raise NotImplementedError

    def _lost(self, exc: psycopg.Error | CatalogError) -> None:
        """The session failed (or could not start); the thread waits, then reconnects."""

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                # Our session settings (bounded waits, keepalives): see pgconnect.
                with connect(self.url) as conn:
                    self._session(conn)
            except (psycopg.Error, CatalogError) as exc:
                self._lost(exc)
                self._stopping.wait(self._backoff.failed())


class ChangeListener(_SessionThread):
    """Calls `on_change` when another node commits changed feeds, `on_connect` after each
    (re)connect (to catch up with what was missed, and redo what failed meanwhile).

    NOTIFY is a doorbell, not a queue: what changed is in `feed_changes`, which the build
    reads from where this node left off, so a ring missed while disconnected loses nothing.
    A lost connection is logged once; reconnection backs off from 1 s to 30 s.

    With `renders` (a daemon's), a sync's ring wakes only the node that renders now (the
    others have nothing to do until the render), and a new version of the rendered set
    wakes every node but the one that stored it.
    """

    def __init__(
        self,
        url: str,
        node: str,
        on_change: Callable[[], None],
        on_connect: Callable[[], None] | None = None,
        renders: Callable[[], bool] | None = None,
    ) -> None:
        super().__init__(url, "aggregator-catalog-listener")
        self.node = node
        self.renders = renders
        self.on_change = on_change
        self.on_connect = on_connect or on_change
        self.where = where_is(url)
        self.connected = threading.Event()
        self._gone = False  # the connection was lost (and that was logged)

    def _session(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(f"LISTEN {CHANNEL}")
        self.connected.set()
        if self._gone:
            LOGGER.warning("catalog: reconnected to %s; catching up", self.where)
            self._gone = False
        self._backoff.succeeded()
        # Anything committed while this node was not listening is caught up now.
        self.on_connect()
        while not self._stopping.is_set():
            # Each ring as it comes (the generator runs on until the timeout); the debouncer
            # folds rings that come while a build runs.
            for note in conn.notifies(timeout=0.5):
                if self._wanted(note.payload):
                    self.on_change()
            # notifies() returns quietly on timeout; a dead link shows here.
            conn.execute("SELECT 1")

    def _wanted(self, payload: str) -> bool:
        if payload in (self.node, RENDER_RING + self.node):
            return False  # this node's own commit
        if payload.startswith(RENDER_RING) or self.renders is None:
            return True
        return self.renders()

    def _lost(self, exc: psycopg.Error | CatalogError) -> None:
        self.connected.clear()
        if not self._gone:
            LOGGER.warning(
                "catalog: lost the connection to %s (%s); the feeds stay as they "
                "are; reconnecting every %g-%g s",
                self.where,
                _first_line(exc),
                BACKOFF.first,
                BACKOFF.cap,
            )
            self._gone = True


class Leadership(_SessionThread):
    """Elects one node for once-only work: whoever holds a session advisory lock.

    Acquiring bumps a fencing epoch; `still_leader(epoch)` compares it with the stored one
    before each once-only action, so a stalled ex-leader that lost its session (and with it
    the lock) cannot act on a stale belief. A dead leader's session ends with its process,
    and a follower polling every second takes over.
    """

    def __init__(self, url: str, node: str, on_elected: Callable[[], None] | None = None) -> None:
        super().__init__(url, "aggregator-catalog-leader")
        self.node = node
        self.on_elected = on_elected
        self.epoch: int | None = None
        self._conn: psycopg.Connection[Any] | None = None  # the session holding the lock

    def stop(self) -> None:
        """Give up leadership (closing the session frees the lock) and stop."""
        super().stop()

    def still_leader(self, epoch: int) -> bool:
        """Whether `epoch` is still the current one (check before each once-only action).

        Asked on the session that holds the leader lock (psycopg serialises its users), not
        on a new connection per ping: a reply proves the lock is still held, and the ping
        threads cost the server no connection of their own."""
        conn = self._conn
        if conn is None or conn.closed:
            return False
        try:
            row = conn.execute("SELECT epoch FROM cluster_leader WHERE id = 1").fetchone()
        except psycopg.Error:
            return False
        return row is not None and int(row[0]) == epoch

    def _run(self) -> None:
        super()._run()
        self.epoch = None

    def _lost(self, exc: psycopg.Error | CatalogError) -> None:
        if self.epoch is not None:
            LOGGER.warning("leader: %s lost its session; no longer the leader", self.node)
            self.epoch = None

    def _session(self, conn: psycopg.Connection[Any]) -> None:
        self._backoff.succeeded()
        self._conn = conn
        try:
            self._campaign(conn)
        finally:
            self._conn = None

    def _campaign(self, conn: psycopg.Connection[Any]) -> None:
        while not self._stopping.is_set():
            if self.epoch is None:
                row = conn.execute(f"SELECT pg_try_advisory_lock({LEADER_LOCK})").fetchone()
                if row is not None and row[0]:
                    self._elected(conn)
            else:
                conn.execute("SELECT 1")  # a dead link raises: leadership ends with it
            self._stopping.wait(LEADER_POLL_SECONDS)

    def _elected(self, conn: psycopg.Connection[Any]) -> None:
        previous = conn.execute("SELECT node FROM cluster_leader WHERE id = 1").fetchone()
        (epoch,) = conn.execute(
            "UPDATE cluster_leader SET epoch = epoch + 1, node = %s WHERE id = 1 RETURNING epoch",
            (self.node,),
        ).fetchone() or (0,)
        self.epoch = int(epoch)
        before = previous[0] if previous and previous[0] else "nobody"
        LOGGER.info("leader: %s took over from %s (epoch %d)", self.node, before, self.epoch)
        if self.on_elected is not None:
            self.on_elected()  # once-only work the old leader left undone
