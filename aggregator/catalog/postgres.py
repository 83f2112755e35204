"""The catalog's PostgreSQL backend: the part of the catalog that speaks psycopg.

`catalog.py` writes its SQL once, in SQLite's dialect; `PostgresConnection` runs it on
PostgreSQL, translating the few differences (placeholders, PRAGMAs, `BEGIN IMMEDIATE`, DDL
types) once per statement. Several nodes share one database: syncs are serialised by a
transaction-level advisory lock (so "newest mtime, then path" holds whatever the timing),
`ChangeListener` wakes a node when another one commits changes, and `Leadership` elects the
one node that does once-only work, with a fencing epoch.

Only the catalog stage imports this module (it is part of the catalog).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from aggregator.errors import CatalogError

LOGGER = logging.getLogger("aggregator.catalog")

# Advisory lock keys (one 64-bit namespace per database): arbitrary, fixed, distinct.
SYNC_LOCK = 0x61676772_0001  # one writer transaction at a time, cluster-wide
MIGRATE_LOCK = 0x61676772_0002  # one node migrates the schema at a time
LEADER_LOCK = 0x61676772_0003  # held by the node that does once-only work

# The NOTIFY channel a sync rings after it commits changed feeds; payload: the node's name.
CHANNEL = "aggregator_feeds"

# Reconnection backoff of the listener and the leader thread.
BACKOFF_FIRST_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 30.0
# How often a follower tries to become the leader (a dead leader is replaced this fast).
LEADER_POLL_SECONDS = 1.0

# Tables only a shared catalog needs; idempotent, so they need no schema version.
CLUSTER_DDL = (
    "CREATE TABLE IF NOT EXISTS feed_changes ("
    " seq BIGSERIAL PRIMARY KEY, feed TEXT COLLATE \"C\" NOT NULL)",
    "CREATE TABLE IF NOT EXISTS cluster_leader ("
    " id INTEGER PRIMARY KEY CHECK (id = 1), epoch BIGINT NOT NULL, node TEXT NOT NULL)",
    "INSERT INTO cluster_leader (id, epoch, node) VALUES (1, 0, '') ON CONFLICT (id) DO NOTHING",
)


def is_postgres_url(location: str) -> bool:
    """Whether a `catalog:` setting names a PostgreSQL database."""
    return location.startswith(("postgresql://", "postgres://"))


def describe(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.Error:
        return "postgresql://?"
    host = info.get("host") or "localhost"
    port = info.get("port") or "5432"
    return f"postgresql://{host}:{port}/{info.get('dbname') or ''}"


def _reason(exc: psycopg.Error, where: str) -> CatalogError:
    if isinstance(exc, psycopg.OperationalError):
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return CatalogError(
            where,
            f"cannot reach the database ({detail}); check `catalog:` / is PostgreSQL running?",
        )
    return CatalogError(where, str(exc).strip() or type(exc).__name__)


def connect(url: str) -> psycopg.Connection[Any]:
    """An autocommit connection (transactions are explicit BEGIN … COMMIT), or CatalogError."""
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        raise _reason(exc, describe(url)) from exc


# --- SQLite's dialect on PostgreSQL ---------------------------------------------------------


class _NoRows:
    """What a PRAGMA without a PostgreSQL equivalent returns."""

    def fetchone(self) -> None:
        return None

    def fetchall(self) -> list[Any]:
        return []

    def __iter__(self) -> Iterator[Any]:
        return iter(())


_COMMENT = re.compile(r"--[^\n]*")
# A plain insert (no ON CONFLICT): COPY does the same, several times faster for many rows.
_PLAIN_INSERT = re.compile(r"INSERT INTO (\w+) \(([\w, ]+)\)\s+VALUES \([?, ]+\)")
_COPY_ROWS = 64
_USER_VERSION_SET = re.compile(r"PRAGMA\s+user_version\s*=\s*(\d+)", re.IGNORECASE)


def _ddl(statement: str) -> str:
    """A CREATE statement in PostgreSQL's types: 64-bit integers (mtimes in ns), byte-order
    text (SQLite compares text by bytes; a locale collation would reorder ties)."""
    text = statement.replace("WITHOUT ROWID", "")
    # SQLite's INTEGER PRIMARY KEY is the rowid: assigned when an insert leaves it out.
    text = re.sub(r"\bINTEGER PRIMARY KEY( AUTOINCREMENT)?", "BIGSERIAL PRIMARY KEY", text)
    text = re.sub(r"\bINTEGER\b", "BIGINT", text)
    return re.sub(r"\bTEXT\b", 'TEXT COLLATE "C"', text)


class PostgresConnection:
    """The subset of `sqlite3.Connection` the catalog uses, on PostgreSQL."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.where = describe(url)
        self._conn = connect(url)
        self._sql: dict[str, str] = {}
        self._in_transaction = False

    def _ensure_schema_table(self) -> None:
        self._run(
            "CREATE TABLE IF NOT EXISTS aggregator_schema (id INTEGER PRIMARY KEY, version "
            "INTEGER NOT NULL); INSERT INTO aggregator_schema VALUES (1, 0) "
            "ON CONFLICT (id) DO NOTHING",
            None,
        )

    def _translate(self, sql: str) -> str:
        translated = self._sql.get(sql)
        if translated is None:
            text = _COMMENT.sub("", sql).strip()
            if text.upper().startswith("CREATE"):
                text = _ddl(text)
            translated = text.replace("%", "%%").replace("?", "%s")
            self._sql[sql] = translated
        return translated

    def _reconnect_if_broken(self) -> None:
        # Between transactions only: inside one, a lost connection fails the transaction.
        if self._conn.closed and not self._in_transaction:
            self._conn = connect(self.url)
            LOGGER.debug("catalog: reconnected to %s", self.where)

    def _run(self, sql: str, params: Sequence[Any] | None) -> Any:
        self._reconnect_if_broken()
        try:
            return self._conn.execute(sql, params, prepare=False if params is None else None)
        except psycopg.Error as exc:
            raise _reason(exc, self.where) from exc

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement in SQLite's dialect; a cursor (fetchone, fetchall, iteration)."""
        head = sql.lstrip()[:16].upper()
        if head.startswith("PRAGMA"):
            return self._pragma(sql)
        if head.startswith("BEGIN"):
            self._reconnect_if_broken()
            self._run("BEGIN", None)
            self._in_transaction = True
            if "IMMEDIATE" in head:
                # SQLite's single writer, cluster-wide: syncs of all nodes run one at a time.
                self._run(f"SELECT pg_advisory_xact_lock({SYNC_LOCK})", None)
            return _NoRows()
        if head.startswith(("COMMIT", "ROLLBACK")):
            self._in_transaction = False
            if head.startswith("ROLLBACK") and self._conn.closed:
                return _NoRows()  # the server already dropped the transaction with the link
            return self._run(head.split()[0], None)
        return self._run(self._translate(sql), params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement for many rows (pipelined: one round trip for all of them)."""
        rows = list(rows)
        if not rows:
            return
        self._reconnect_if_broken()
        plain = _PLAIN_INSERT.fullmatch(sql.strip()) if len(rows) >= _COPY_ROWS else None
        try:
            with self._conn.cursor() as cursor:
                if plain is not None:
                    table, columns = plain.groups()
                    with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
                else:
                    cursor.executemany(self._translate(sql), rows)
        except psycopg.Error as exc:
            raise _reason(exc, self.where) from exc

    def _pragma(self, sql: str) -> Any:
        match = _USER_VERSION_SET.search(sql)
        if match:
            return self._run(
                "UPDATE aggregator_schema SET version = %s WHERE id = 1", (int(match.group(1)),)
            )
        if "user_version" in sql:
            return self._run("SELECT version FROM aggregator_schema WHERE id = 1", None)
        return _NoRows()  # page cache, WAL, checkpoints: the server's business

    def lock_migrations(self) -> None:
        """Hold the migration lock for this session (nodes starting at once migrate once)."""
        self._run(f"SELECT pg_advisory_lock({MIGRATE_LOCK})", None)
        self._ensure_schema_table()

    def unlock_migrations(self) -> None:
        """Release `lock_migrations`, after creating what only a shared catalog needs."""
        try:
            for statement in CLUSTER_DDL:
                self._run(statement, None)
        finally:
            self._run(f"SELECT pg_advisory_unlock({MIGRATE_LOCK})", None)

    def notify(self, payload: str) -> None:
        """Ring the other nodes when the current transaction commits (never if it rolls back)."""
        self._run("SELECT pg_notify(%s, %s)", (CHANNEL, payload))

    @property
    def in_transaction(self) -> bool:
        """Whether a BEGIN is open (as `sqlite3.Connection.in_transaction`)."""
        return self._in_transaction and not self._conn.closed

    @property
    def closed(self) -> bool:
        """Whether the connection is closed or broken (a new one is made on next use)."""
        return bool(self._conn.closed)

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()


_READERS: dict[tuple[int, str], PostgresConnection] = {}


def reader(url: str) -> PostgresConnection:
    """A connection for read-only catalogs, kept for the life of this process.

    Render workers open a catalog per chunk of feeds; connecting each time (a server
    process forked per connection) cost more than the chunk's queries.
    """
    key = (os.getpid(), url)
    conn = _READERS.get(key)
    if conn is None or conn.closed:
        conn = _READERS[key] = PostgresConnection(url)
    return conn


# --- the doorbell ---------------------------------------------------------------------------


class ChangeListener:
    """Calls `on_change` when another node commits changed feeds, `on_connect` after each
    (re)connect (to catch up with what was missed, and redo what failed meanwhile).

    NOTIFY is a doorbell, not a queue: what changed is in `feed_changes`, which the build
    reads from where this node left off, so a ring missed while disconnected loses nothing.
    A lost connection is logged once; reconnection backs off from 1 s to 30 s.
    """

    def __init__(
        self,
        url: str,
        node: str,
        on_change: Callable[[], None],
        on_connect: Callable[[], None] | None = None,
    ) -> None:
        self.url = url
        self.node = node
        self.on_change = on_change
        self.on_connect = on_connect or on_change
        self.where = describe(url)
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="aggregator-catalog-listener", daemon=True
        )
        self.connected = threading.Event()

    def start(self) -> None:
        """Start listening in a thread of its own."""
        self._thread.start()

    def stop(self) -> None:
        """Stop and wait for the thread (at most about a second)."""
        self._stopping.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        delay = BACKOFF_FIRST_SECONDS
        lost = False
        where = describe(self.url)
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.connected.set()
                    if lost:
                        LOGGER.warning("catalog: reconnected to %s; catching up", where)
                        lost = False
                    delay = BACKOFF_FIRST_SECONDS
                    # Anything committed while this node was not listening is caught up now.
                    self.on_connect()
                    while not self._stopping.is_set():
                        # Each ring as it comes (the generator runs on until the timeout);
                        # the debouncer folds rings that come while a build runs.
                        for note in conn.notifies(timeout=0.5):
                            if note.payload != self.node:
                                self.on_change()
                        # notifies() returns quietly on timeout; a dead link shows here.
                        conn.execute("SELECT 1")
            except psycopg.Error as exc:
                self.connected.clear()
                if not lost:
                    LOGGER.warning(
                        "catalog: lost the connection to %s (%s); the feeds stay as they "
                        "are; reconnecting every %g-%g s",
                        where,
                        str(exc).strip().splitlines()[0] if str(exc).strip() else "closed",
                        BACKOFF_FIRST_SECONDS,
                        BACKOFF_MAX_SECONDS,
                    )
                    lost = True
                self._stopping.wait(delay)
                delay = min(BACKOFF_MAX_SECONDS, delay * 2)


# --- once-only work -------------------------------------------------------------------------


class Leadership:
    """Elects one node for once-only work: whoever holds a session advisory lock.

    Acquiring bumps a fencing epoch; `still_leader(epoch)` compares it with the stored one
    before each once-only action, so a stalled ex-leader that lost its session (and with it
    the lock) cannot act on a stale belief. A dead leader's session ends with its process,
    and a follower polling every second takes over.
    """

    def __init__(
        self, url: str, node: str, on_elected: Callable[[], None] | None = None
    ) -> None:
        self.url = url
        self.node = node
        self.on_elected = on_elected
        self.epoch: int | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="aggregator-catalog-leader", daemon=True
        )

    def start(self) -> None:
        """Start campaigning in a thread of its own."""
        self._thread.start()

    def stop(self) -> None:
        """Give up leadership (closing the session frees the lock) and stop."""
        self._stopping.set()
        self._thread.join(timeout=5)

    def still_leader(self, epoch: int) -> bool:
        """Whether `epoch` is still the current one (check before each once-only action)."""
        try:
            with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
                row = conn.execute("SELECT epoch FROM cluster_leader WHERE id = 1").fetchone()
        except psycopg.Error:
            return False
        return row is not None and int(row[0]) == epoch

    def _run(self) -> None:
        delay = BACKOFF_FIRST_SECONDS
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
                    delay = BACKOFF_FIRST_SECONDS
                    self._campaign(conn)
            except psycopg.Error:
                if self.epoch is not None:
                    LOGGER.warning("leader: %s lost its session; no longer the leader", self.node)
                    self.epoch = None
                self._stopping.wait(delay)
                delay = min(BACKOFF_MAX_SECONDS, delay * 2)
        self.epoch = None

    def _campaign(self, conn: psycopg.Connection[Any]) -> None:
        while not self._stopping.is_set():
            if self.epoch is None:
                row = conn.execute(f"SELECT pg_try_advisory_lock({LEADER_LOCK})").fetchone()
                if row is not None and row[0]:
                    previous = conn.execute(
                        "SELECT node FROM cluster_leader WHERE id = 1"
                    ).fetchone()
                    (epoch,) = conn.execute(
                        "UPDATE cluster_leader SET epoch = epoch + 1, node = %s WHERE id = 1 "
                        "RETURNING epoch",
                        (self.node,),
                    ).fetchone() or (0,)
                    self.epoch = int(epoch)
                    before = previous[0] if previous and previous[0] else "nobody"
                    LOGGER.info(
                        "leader: %s took over from %s (epoch %d)", self.node, before, self.epoch
                    )
                    if self.on_elected is not None:
                        self.on_elected()  # once-only work the old leader left undone
            else:
                conn.execute("SELECT 1")  # a dead link raises: leadership ends with it
            self._stopping.wait(LEADER_POLL_SECONDS)
