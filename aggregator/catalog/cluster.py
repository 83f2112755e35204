"""The threads of a node in a cluster: `ChangeListener` wakes it when another node commits
changed feeds, `Leadership` elects the one node that does once-only work: a lease in
`cluster_leader`, renewed every second and timed by the database's clock, with a fencing
epoch (`lease_holds` is the one test of it, for a thread or inside a transaction). Both hold
a PostgreSQL session of their own and reconnect with the one `Backoff`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import psycopg

from aggregator.backoff import Backoff, BackoffPolicy
from aggregator.catalog.pgconnect import KEEPALIVES, connect, where_is
from aggregator.catalog.postgres import CHANNEL
from aggregator.catalog.rendered import RENDER_RING
from aggregator.errors import CatalogError, redact_url

LOGGER = logging.getLogger("aggregator.catalog")

# Reconnection backoff of the listener and the leader thread.
BACKOFF = BackoffPolicy(first=1.0, cap=30.0)
# The leader's lease, by the database's clock: renewed every RENEW_SECONDS, it lapses
# LEASE_SECONDS after the last renewal began, and a follower trying every
# LEADER_POLL_SECONDS then takes over. A paused, powered-off or partitioned leader is so
# replaced within LEASE_SECONDS + LEADER_POLL_SECONDS (4 s), while two renewals in a row may
# fail or come late (a loaded server, a retransmitted packet) without a needless takeover.
LEASE_SECONDS = 3.0
RENEW_SECONDS = 1.0
LEADER_POLL_SECONDS = 1.0
# The leader stops acting this long before its lease lapses, by its own monotonic clock
# counted from before it sent the renewal (which the database's clock starts later): room
# for the moment between a check and the act it allows, and for the clocks' rates.
LEASE_MARGIN_SECONDS = 0.5
# The lease session's TCP: a statement on a dead link fails within about a lease (the
# kernel gives up on unacknowledged data after 3 s, on a silent peer after 1 s and two
# probes), not the 30 s of our other sessions, so no check of the lease hangs for long.
LEASE_TCP = (
    "keepalives=1 keepalives_idle=1 keepalives_interval=1 keepalives_count=2 tcp_user_timeout=3000"
)

# The lease as statements of their own (autocommit): none leaves a row lock behind on a
# session that is cut off. `now()` is the statement's start: the later end of the lease a
# renewal grants, the earlier one a takeover sees (both err on the safe side).
_TAKE = (
    "UPDATE cluster_leader AS c SET epoch = c.epoch + 1, node = %s, "
    "lease_until = now() + make_interval(secs => %s) "
    "FROM (SELECT node FROM cluster_leader WHERE id = 1) AS old "
    "WHERE c.id = 1 AND (c.lease_until IS NULL OR c.lease_until < now()) "
    "RETURNING c.epoch, old.node"
)
_RENEW = (
    "UPDATE cluster_leader SET lease_until = now() + make_interval(secs => %s) "
    "WHERE id = 1 AND epoch = %s RETURNING epoch"
)
_RELEASE = "UPDATE cluster_leader SET lease_until = NULL WHERE id = 1 AND epoch = %s"
_HOLDER = "SELECT node, epoch FROM cluster_leader WHERE id = 1"


class Executes(Protocol):
    """A psycopg connection, or the catalog's `PostgresConnection`."""

    def execute(self, sql: str, /) -> Any: ...


def lease_holds(db: Executes, epoch: int) -> bool:
    """Whether `epoch` is the current leader's and its lease is unexpired by the database's
    clock: the fencing test before once-only work.

    Inside the caller's transaction it holds the leader's row FOR SHARE until that
    transaction ends, so no takeover (nor renewal) commits meanwhile: what the transaction
    writes after a True is written under the lease of `epoch`. The price: a takeover waits
    for such a transaction (one that stalls is ended by the server after
    `idle_in_transaction_session_timeout`), so keep them short."""
    row = db.execute(
        f"SELECT epoch = {int(epoch)} AND lease_until > clock_timestamp() "
        "FROM cluster_leader WHERE id = 1 FOR SHARE"
    ).fetchone()
    return bool(row and row[0])


def _first_line(exc: Exception) -> str:
    text = redact_url(str(exc).strip())
    return text.splitlines()[0] if text else "closed"


class _SessionThread:
    """A daemon thread that keeps a session open: `_session(conn)` until it fails, then
    `_lost(exc)` and a wait that backs off, until `stop`."""

    def __init__(self, url: str, name: str, keepalives: str = KEEPALIVES) -> None:
        self.url = url
        self._keepalives = keepalives
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
                with connect(self.url, keepalives=self._keepalives) as conn:
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
    wakes every node but the one that stored it: `on_rendered` (a copy of the new
    versions, no build), else `on_change`.
    """

    def __init__(
        self,
        url: str,
        node: str,
        on_change: Callable[[], None],
        on_connect: Callable[[], None] | None = None,
        *,
        renders: Callable[[], bool] | None = None,
        on_rendered: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(url, "aggregator-catalog-listener")
        self.node = node
        self.renders = renders
        self.on_change = on_change
        self.on_connect = on_connect or on_change
        self.on_rendered = on_rendered or on_change
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
                if not self._wanted(note.payload):
                    continue
                if note.payload.startswith(RENDER_RING):
                    self.on_rendered()
                else:
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
    """Elects one node for once-only work: whoever holds the lease in `cluster_leader`.

    The leader renews its lease every `RENEW_SECONDS`; a follower takes over once the lease
    has lapsed by the database's clock, which bumps the fencing epoch. `still_leader(epoch)`
    is true only while `epoch` is current and its lease unexpired (`lease_holds`), and never
    after the leader's own deadline (`LEASE_SECONDS` from its last renewal, less a margin,
    by its monotonic clock): a leader that was paused, or is cut off from the database,
    stops acting by itself before anyone else can take over, and a stale one (resumed, or
    healed) finds the epoch moved on and steps down. Leadership survives a lost session if
    the lease is renewed in time on the next one. A stopping leader lets its lease go.
    """

    def __init__(self, url: str, node: str, on_elected: Callable[[], None] | None = None) -> None:
        super().__init__(url, "aggregator-catalog-leader", keepalives=LEASE_TCP)
        self.node = node
        self.on_elected = on_elected
        self.epoch: int | None = None
        # Monotonic: the leader acts no later than this without a renewal.
        self._valid_until = 0.0
        self._conn: psycopg.Connection[Any] | None = None  # the lease's session
        # One statement at a time on that session: a check waits no longer than the lease.
        self._use = threading.Lock()
        self._cut_off = False  # the leader's session was lost (and that was logged)

    def stop(self) -> None:
        """Give up leadership (the lease is let go, for a follower to take at once) and stop."""
        super().stop()

    @property
    def acting(self) -> bool:
        """Whether this node leads, as last seen (no query): elected, and its lease renewed
        in time by its own clock."""
        return self.epoch is not None and time.monotonic() < self._valid_until

    def still_leader(self, epoch: int) -> bool:
        """Whether `epoch` is still the current one, with an unexpired lease (check before
        each once-only action).

        Asked on the lease's own session, not a new connection per ping; never after this
        node's own deadline, even if the answer comes late."""
        if self.epoch != epoch:
            return False
        conn = self._conn
        wait = self._valid_until - time.monotonic()
        if wait <= 0 or conn is None or conn.closed:
            return False
        if not self._use.acquire(timeout=wait):
            return False  # a renewal hangs on a dead link: the lease runs out meanwhile
        try:
            holds = lease_holds(conn, epoch)
        except psycopg.Error:
            return False
        finally:
            self._use.release()
        return holds and self.epoch == epoch and time.monotonic() < self._valid_until

    def _run(self) -> None:
        super()._run()
        self.epoch = None

    def _lost(self, exc: psycopg.Error | CatalogError) -> None:
        if self.epoch is not None and not self._cut_off:
            self._cut_off = True  # said once, until a renewal gets through
            LOGGER.warning(
                "leader: %s lost its session (%s); it acts as the leader again only if it "
                "renews its lease (%g s) before another node takes it",
                self.node,
                _first_line(exc),
                LEASE_SECONDS,
            )

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
                self._try_to_take(conn)
            else:
                self._renew(conn, self.epoch)
            self._stopping.wait(LEADER_POLL_SECONDS if self.epoch is None else RENEW_SECONDS)
        epoch, self.epoch = self.epoch, None
        if epoch is not None:
            with self._use:
                conn.execute(_RELEASE, (epoch,))

    def _try_to_take(self, conn: psycopg.Connection[Any]) -> None:
        started = time.monotonic()
        row = conn.execute(_TAKE, (self.node, LEASE_SECONDS)).fetchone()
        if row is None:
            return  # the leader's lease holds
        self._valid_until = started + LEASE_SECONDS - LEASE_MARGIN_SECONDS
        self.epoch = int(row[0])
        before = row[1] or "nobody"
        LOGGER.info("leader: %s took over from %s (epoch %d)", self.node, before, self.epoch)
        if self.on_elected is not None:
            self.on_elected()  # once-only work the old leader left undone

    def _renew(self, conn: psycopg.Connection[Any], epoch: int) -> None:
        started = time.monotonic()
        with self._use:
            row = conn.execute(_RENEW, (LEASE_SECONDS, epoch)).fetchone()
            holder = None if row is not None else conn.execute(_HOLDER).fetchone()
        if row is None:
            self.epoch, self._cut_off = None, False
            node, now = holder if holder is not None else ("", epoch)
            LOGGER.warning(
                "leader: %s lost its lease to %s (epoch %d) while it was paused or cut off "
                "from the catalog; it no longer acts as the leader",
                self.node,
                node or "nobody",
                now,
            )
            return
        self._cut_off = False
        lapsed = time.monotonic() >= self._valid_until  # it refused to act meanwhile
        self._valid_until = started + LEASE_SECONDS - LEASE_MARGIN_SECONDS
        if lapsed:
            # No one took the lapsed lease: this node leads again, and does what it left.
            LOGGER.info("leader: %s renewed its lease late (epoch %d)", self.node, epoch)
            if self.on_elected is not None:
                self.on_elected()
