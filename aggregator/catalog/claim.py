"""A node's name is exclusive: `NodeClaim` holds it for the life of a process that writes a
shared catalog, so two processes started with one name (a copied config, one host name on two
containers) cannot take each other's files for their own.

The claim is a session advisory lock keyed by the name, on a connection of its own, plus a
`cluster_nodes` row (host, pid, since when, a token) that names the holder in the refusal. A
crashed holder's session ends with its process, freeing the name; a paused one (SIGSTOP,
a frozen VM: the kernel still answers keepalives) is ended by the server once its session
sat idle for `IDLE_SESSION`, which the heartbeat keeps a live holder's from doing. The token
fences: every write transaction checks that the row still holds this process's token, so a
holder that was cut off and whose name was taken over stops instead of writing as the new one.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg

from aggregator.catalog.pgconnect import connect, where_is
from aggregator.catalog.schema import Connection
from aggregator.errors import CatalogError, NodeNameInUse

LOGGER = logging.getLogger("aggregator.catalog")

CLAIM_DDL = (
    "CREATE TABLE IF NOT EXISTS cluster_nodes ("
    ' name TEXT COLLATE "C" PRIMARY KEY, host TEXT NOT NULL, pid BIGINT NOT NULL,'
    " started TEXT NOT NULL, token TEXT NOT NULL)"
)
# The server ends a claim session idle this long (PostgreSQL ≥ 14): a paused holder's name
# frees after it. The heartbeat keeps a live holder's session busier than that.
IDLE_SESSION = "30s"
HEARTBEAT_SECONDS = 5.0
_KEY = "SELECT hashtextextended('aggregator node ' || %s, 0)"


def _holder(conn: psycopg.Connection[Any], node: str) -> str:
    row = conn.execute(
        "SELECT host, pid, started FROM cluster_nodes WHERE name = %s", (node,)
    ).fetchone()
    if row is None:
        return "another process"
    host, pid, started = row
    return f"host {host} (pid {pid}, since {started})"


class NodeClaim:
    """This process's hold on the name `node` in the catalog at `url` (see the module)."""

    def __init__(self, url: str, node: str) -> None:
        self.url = url
        self.node = node
        self.where = where_is(url)
        self.app_name = f"aggregator node {node}"
        self.token = uuid.uuid4().hex
        self.host = socket.gethostname()
        self.started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._lost: NodeNameInUse | None = None
        self._conn = self._take()
        self._thread = threading.Thread(
            target=self._beat, name="aggregator-node-claim", daemon=True
        )
        self._thread.start()

    def _session(self) -> psycopg.Connection[Any]:
        conn = connect(self.url)
        try:
            # Unless the URL's options chose one; NULL: PostgreSQL < 14 has no such setting.
            row = conn.execute("SELECT current_setting('idle_session_timeout', true)").fetchone()
            if row is not None and row[0] == "0":
                conn.execute(f"SET idle_session_timeout = '{IDLE_SESSION}'")
            # Which session holds which name, for an operator reading pg_stat_activity.
            conn.execute("SELECT set_config('application_name', %s, false)", (self.app_name,))
        except psycopg.Error:
            conn.close()
            raise
        return conn

    def _try_lock(self, conn: psycopg.Connection[Any]) -> bool:
        row = conn.execute(f"SELECT pg_try_advisory_lock(({_KEY}))", (self.node,)).fetchone()
        return bool(row and row[0])

    def _take(self) -> psycopg.Connection[Any]:
        """The claim's session, holding the name; NodeNameInUse if a live process holds it."""
        conn = self._session()
        try:
            if not self._try_lock(conn):
                raise NodeNameInUse(
                    self.node,
                    f"is already running on {_holder(conn, self.node)}, on the shared catalog "
                    f"{self.where}; give this process a name of its own (`node:` in the "
                    "config, or --node NAME), or stop that one first",
                )
            before = conn.execute(
                "SELECT host, pid, started FROM cluster_nodes WHERE name = %s", (self.node,)
            ).fetchone()
            conn.execute(
                "INSERT INTO cluster_nodes (name, host, pid, started, token) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (name) DO UPDATE SET "
                "host = EXCLUDED.host, pid = EXCLUDED.pid, started = EXCLUDED.started, "
                "token = EXCLUDED.token",
                (self.node, self.host, os.getpid(), self.started, self.token),
            )
        except psycopg.Error as exc:
            conn.close()
            raise CatalogError(
                self.where, f"cannot claim the node name {self.node}: {exc}"
            ) from exc
        except BaseException:
            conn.close()
            raise
        if before is not None:
            LOGGER.debug(
                "node %s: name taken over from a process that is gone (host %s, pid %s, since %s)",
                self.node,
                *before,
            )
        return conn

    @property
    def lost(self) -> NodeNameInUse | None:
        """Why this process no longer holds its name (it must stop), or None."""
        return self._lost

    def _taken_over(self, by: str) -> None:
        self._lost = NodeNameInUse(
            self.node,
            f"was taken over by {by} while this process was cut off from the catalog "
            f"{self.where} (paused, or partitioned, for more than {IDLE_SESSION}); this "
            "process stops: its files are now that one's",
        )
        LOGGER.error("%s", self._lost)

    def check(self, db: Connection) -> None:
        """Inside a write transaction: raise NodeNameInUse unless the name is still ours."""
        if self._lost is None:
            row = db.execute(
                "SELECT token, host, pid, started FROM cluster_nodes WHERE name = ?", (self.node,)
            ).fetchone()
            if row is not None and row[0] != self.token:
                self._taken_over(f"host {row[1]} (pid {row[2]}, since {row[3]})")
        if self._lost is not None:
            raise self._lost

    def _beat(self) -> None:
        while not self._stopping.wait(HEARTBEAT_SECONDS):
            try:
                with self._lock:
                    self._conn.execute("SELECT 1")
            except psycopg.Error:
                self._reclaim()
            if self._lost is not None:
                return

    def _reclaim(self) -> None:
        """The claim's session died (the server restarted, or ended it while this process
        was paused): hold the name again if no one took it meanwhile."""
        try:
            conn = self._session()
        except CatalogError:
            return  # the database is away: the next beat tries again
        try:
            locked = self._try_lock(conn)
            row = conn.execute(
                "SELECT token, host, pid, started FROM cluster_nodes WHERE name = %s",
                (self.node,),
            ).fetchone()
            if row is not None and row[0] != self.token:
                self._taken_over(f"host {row[1]} (pid {row[2]}, since {row[3]})")
            elif not locked:
                # Our old session lingers on the server (a broken link it has not noticed
                # yet) and still holds the lock: try again at the next beat.
                conn.close()
                return
        except psycopg.Error:
            conn.close()
            return
        if self._lost is not None:
            conn.close()
            return
        with self._lock:
            self._conn.close()
            self._conn = conn
        LOGGER.info("node %s: the name's claim session was lost; held again", self.node)

    def release(self) -> None:
        """Let the name go (closing the session frees the lock)."""
        self._stopping.set()
        self._thread.join(timeout=5)
        # Not under the lock: a heartbeat stuck on a dead link must not hold a stop up.
        self._conn.close()
