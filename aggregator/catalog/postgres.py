"""The catalog's PostgreSQL backend: one catalog shared by several nodes, in SQLite's dialect.

The catalog writes its SQL once, in SQLite's dialect; `PostgresConnection` runs it on
PostgreSQL, translating the few differences (placeholders, DDL types) once per statement.
`PostgresBackend` serialises the nodes' writes with a transaction-level advisory lock (so
"newest mtime, then path" holds whatever the timing), keeps the pending feeds in a change log
the cluster's renderer reads (`aggregator.catalog.rendered` keeps what it renders), and rings
the other nodes (NOTIFY) when a sync commits. The threads that
listen for those rings and elect a leader are in `aggregator.catalog.cluster`.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Collection, Iterable, Iterator, Sequence
from typing import Any, ClassVar

import psycopg

from aggregator.catalog.base import Backend
from aggregator.catalog.claim import CLAIM_DDL, NodeClaim
from aggregator.catalog.pgconnect import connect, is_bug, reason, where_is
from aggregator.catalog.records import FileChange
from aggregator.catalog.rendered import RENDERED_DDL
from aggregator.catalog.schema import RENDERED_SEQ, Meta
from aggregator.errors import AggregatorError, CatalogError
from aggregator.model import FeedKey

LOGGER = logging.getLogger("aggregator.catalog")

# Advisory lock keys (one 64-bit namespace per database): arbitrary, fixed, distinct.
SYNC_LOCK = 0x61676772_0001  # one writer transaction at a time, cluster-wide
MIGRATE_LOCK = 0x61676772_0002  # one node migrates the schema at a time
# (0x61676772_0003 was the leader lock, before the lease: never reuse it.)

# The NOTIFY channel a sync rings after it commits changed feeds; payload: the node's name.
CHANNEL = "aggregator_feeds"

# Tables only a shared catalog needs; idempotent, so they need no schema version.
CLUSTER_DDL = (
    "CREATE TABLE IF NOT EXISTS feed_changes ("
    ' seq BIGSERIAL PRIMARY KEY, feed TEXT COLLATE "C" NOT NULL)',
    "CREATE TABLE IF NOT EXISTS cluster_leader ("
    " id INTEGER PRIMARY KEY CHECK (id = 1), epoch BIGINT NOT NULL, node TEXT NOT NULL)",
    "INSERT INTO cluster_leader (id, epoch, node) VALUES (1, 0, '') ON CONFLICT (id) DO NOTHING",
    # The leader's lease (`aggregator.catalog.cluster`), added to a catalog made before it;
    # looked up first, for no ALTER to queue for the table's lock at every node's start.
    "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = "
    "'cluster_leader'::regclass AND attname = 'lease_until' AND NOT attisdropped) THEN "
    "ALTER TABLE cluster_leader ADD COLUMN lease_until TIMESTAMPTZ; END IF; END $$",
    # The last change-log entry pruned (`RosterMixin.prune_changes`): a node whose mark is
    # older missed entries, and renders every feed.
    "CREATE TABLE IF NOT EXISTS feed_changes_pruned ("
    " id INTEGER PRIMARY KEY CHECK (id = 1), upto BIGINT NOT NULL)",
    "INSERT INTO feed_changes_pruned (id, upto) VALUES (1, 0) ON CONFLICT (id) DO NOTHING",
    CLAIM_DDL,
    *RENDERED_DDL,
)


# --- SQLite's dialect on PostgreSQL ---------------------------------------------------------


class _NoRows:
    """What a statement the server has nothing to say to returns."""

    def fetchone(self) -> None:
        return None

    def fetchall(self) -> list[Any]:
        return []

    def __iter__(self) -> Iterator[Any]:
        return iter(())


_COMMENT = re.compile(r"--[^\n]*")
# SQLite's JSON functions take text; PostgreSQL's take json (the columns are text in both).
_JSON_OF_TEXT = re.compile(r"\bjson_array_length\((\w+)\)")
# A plain insert (no ON CONFLICT): COPY does the same, several times faster for many rows.
_PLAIN_INSERT = re.compile(r"INSERT INTO (\w+) \(([\w, ]+)\)\s+VALUES \([?, ]+\)")
_COPY_ROWS = 64


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
        self.where = where_is(url)
        self._conn = connect(url)
        self._sql: dict[str, str] = {}
        self._in_transaction = False
        # Write transactions begun on this connection: tells one from the next (what the
        # rendered set's digests may remember: `RenderedMixin.stored_digests`).
        self.transactions = 0

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
            text = _JSON_OF_TEXT.sub(r"json_array_length(\1::json)", text)
            translated = text.replace("%", "%%").replace("?", "%s")
            self._sql[sql] = translated
        return translated

    def _reconnect_if_broken(self) -> None:
        # Between transactions only: inside one, a lost connection fails the transaction.
        if self._conn.closed and not self._in_transaction:
            self._conn = connect(self.url)
            LOGGER.debug("catalog: reconnected to %s", self.where)

    def _run(self, sql: str, params: Sequence[Any] | None, *, binary: bool = False) -> Any:
        self._reconnect_if_broken()
        try:
            return self._conn.execute(
                sql, params, prepare=False if params is None else None, binary=binary
            )
        except psycopg.Error as exc:
            if is_bug(exc):
                raise
            raise reason(exc, self.where) from exc

    def begin_write(self, *, exclusive: bool = True) -> None:
        """BEGIN; `exclusive`: holding SQLite's single writer cluster-wide, so that the syncs
        of all nodes (and anything else that writes shared rows or the change log) run one
        at a time (the lock goes with the transaction). A transaction that writes only this
        node's own rows need not wait for the other nodes."""
        self._reconnect_if_broken()
        self._run("BEGIN", None)
        self._in_transaction = True
        self.transactions += 1
        if exclusive:
            try:
                self._run(f"SELECT pg_advisory_xact_lock({SYNC_LOCK})", None)
            except BaseException:  # lock_timeout, a lost link: no transaction stays open
                self.rollback_quietly()
                raise

    def rollback_quietly(self) -> None:
        """End the open transaction, if the link still has one, on the way out of a failure
        that says more."""
        try:
            self.execute("ROLLBACK")
        except (psycopg.Error, CatalogError):
            self._in_transaction = False

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement in SQLite's dialect; a cursor (fetchone, fetchall, iteration)."""
        head = sql.lstrip()[:16].upper()
        if head.startswith(("COMMIT", "ROLLBACK")) and not head.startswith("ROLLBACK TO"):
            self._in_transaction = False
            if head.startswith("ROLLBACK") and self._conn.closed:
                return _NoRows()  # the server already dropped the transaction with the link
            return self._run(head.split()[0], None)
        return self._run(self._translate(sql), params)

    def fetch_binary(self, sql: str, params: Sequence[Any]) -> Any:
        """`execute`, with the results in PostgreSQL's binary format: a `bytea` column
        arrives as its bytes, where the text format sends twice as many hex digits that the
        server encodes and the client decodes (the rendered set's copies: a few MB a drop)."""
        return self._run(self._translate(sql), params, binary=True)

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
            if is_bug(exc):
                raise
            raise reason(exc, self.where) from exc

    def schema_version(self) -> int:
        """The migration the database is at (its own table: PostgreSQL has no user_version)."""
        row = self._run("SELECT version FROM aggregator_schema WHERE id = 1", None).fetchone()
        return int(row[0]) if row else 0

    def set_schema_version(self, version: int) -> None:
        """Record a migration (inside its transaction)."""
        self._run("UPDATE aggregator_schema SET version = %s WHERE id = 1", (version,))

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
        """Whether a BEGIN is open (as `sqlite3.Connection.in_transaction`). A link the
        server closed has none: it rolled back (the next statement reconnects)."""
        if self._in_transaction and self._conn.closed:
            self._in_transaction = False
        return self._in_transaction

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


class PostgresBackend(Backend):
    """A catalog shared by the nodes of a cluster. `node` names this machine (its keys are
    stored under `<node>/`, see `NodeKeys`); a read-only one reuses the process's reader."""

    shared: ClassVar[bool] = True
    start_over: ClassVar[str] = "use an empty database to start over"
    errors: ClassVar[tuple[type[Exception], ...]] = (psycopg.Error,)
    quiet: ClassVar[tuple[type[Exception], ...]] = (psycopg.Error, CatalogError)
    begin_read: ClassVar[str] = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
    db: PostgresConnection

    def __init__(self, url: str, node: str, *, readonly: bool) -> None:
        self.db = reader(url) if readonly else PostgresConnection(url)
        self.where = self.db.where
        self._node = node
        self._kept_open = readonly  # the process's reader connection, reused by the next
        self._pending_upto = 0
        self._claim: NodeClaim | None = None
        if readonly:
            return
        try:
            self.db.lock_migrations()
            try:
                self.migrate()
            finally:
                self.db.unlock_migrations()
            # A writer holds its node's name for as long as it is open: only one process
            # may write `<node>/` rows (see claim.py).
            self._claim = NodeClaim(url, node)
        except BaseException:
            self.close_quietly()  # the migration's error says more than a close could
            raise

    def begin_write(self, *, exclusive: bool = True) -> None:
        self.db.begin_write(exclusive=exclusive)
        if self._claim is not None:
            try:
                self._claim.check(self.db)
            except BaseException:
                self.db.rollback_quietly()
                raise

    def lock_shared(self) -> None:
        self.db.execute(f"SELECT pg_advisory_xact_lock({SYNC_LOCK})")

    def identity_lost(self) -> AggregatorError | None:
        return None if self._claim is None else self._claim.lost

    def storage_error(self, exc: Exception) -> CatalogError | None:
        assert isinstance(exc, psycopg.Error)
        return None if is_bug(exc) else reason(exc, self.where)

    def schema_version(self) -> int:
        return self.db.schema_version()

    def set_schema_version(self, version: int) -> None:
        self.db.set_schema_version(version)

    def pending_feeds(self, stored: set[FeedKey], meta: Meta) -> set[FeedKey]:
        """The renderer's failed feeds, and every feed in the change log after the cluster's
        render mark (whichever node's sync changed it): the meta keys are the cluster's."""
        pending = set(stored)
        done = int(meta.meta(RENDERED_SEQ) or 0)
        upto = done
        for feed, seq in self.db.execute(
            "SELECT feed, max(seq) FROM feed_changes WHERE seq > ? GROUP BY feed", (done,)
        ):
            pending.add(FeedKey.parse(feed))
            upto = max(upto, int(seq))
        self._pending_upto = upto
        # Read after the log: a prune that committed before the log was read shows here.
        row = self.db.execute("SELECT upto FROM feed_changes_pruned WHERE id = 1").fetchone()
        pruned = int(row[0]) if row is not None else 0
        if done < pruned:
            LOGGER.info(
                "catalog: the cluster's render mark (%d) is older than the change-log entries "
                "pruned (up to %d); rendering every feed",
                done,
                pruned,
            )
            pending |= self._every_feed()
        return pending

    def _every_feed(self) -> set[FeedKey]:
        """Every feed that lists something, or that any node ever wrote (a feed emptied by
        an entry this node missed must be written empty too)."""
        feeds = self.db.execute(
            "SELECT feed FROM memberships UNION "
            "SELECT substr(feed, strpos(feed, '/') + 1) FROM feeds"  # `<node>/<feed>`
        )
        return {FeedKey.parse(str(f)) for (f,) in feeds}

    def add_pending(self, keys: Collection[FeedKey], meta: Meta) -> None:
        """The mark goes to the change log, for every node, and the other nodes are rung
        (NOTIFY) when the transaction commits; call it inside one."""
        self.db.executemany(
            "INSERT INTO feed_changes (feed) VALUES (?)", [(str(k),) for k in sorted(keys)]
        )
        self.db.notify(self._node)

    def rendered(self, meta: Meta) -> None:
        # Up to what `pending_feeds` saw: later changes stay pending.
        meta.set_meta(RENDERED_SEQ, str(self._pending_upto))

    def leader_lease_live(self) -> bool:
        # By the database's clock, as every node judges it.
        row = self.db.execute(
            "SELECT coalesce(lease_until > now(), false) FROM cluster_leader WHERE id = 1"
        ).fetchone()
        return bool(row and row[0])

    def batches(
        self, batches: Iterable[Sequence[FileChange]], *, bulk: bool
    ) -> Iterable[Sequence[FileChange]]:
        # The transaction holds the cluster-wide write lock: every batch is read (parsed)
        # before it begins, so that the lock is held for the SQL alone, never while files
        # are read: a cold build on one node must not stall every other node's ingest, and
        # a session idle inside its transaction is a stalled one (the server ends it).
        return list(batches)

    def close(self) -> None:
        try:
            if not self._kept_open:
                self.db.close()
        finally:
            if self._claim is not None:  # last: no write of ours can follow its release
                self._claim.release()
                self._claim = None
