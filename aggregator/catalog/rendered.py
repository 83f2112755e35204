"""The cluster's rendered set, on a shared catalog: render once, copy everywhere.

One node (the leader) renders; the files it made are rows of `rendered_files` (path, bytes,
gzip sidecar; a row without bytes is a file removed), each stamped with the version of the
store that changed it. Every node copies the rows newer than its own copy mark into its own
output folder. A store is refused unless its fencing epoch is still the current one, so a
stale leader's render never reaches the set; the database's clock is the cluster's one clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aggregator.catalog.base import storage_errors
from aggregator.catalog.feeds import FeedsMixin
from aggregator.catalog.records import format_date
from aggregator.catalog.schema import RENDERED_SEQ, marks
from aggregator.errors import FencedOut
from aggregator.model import RenderedFile

if TYPE_CHECKING:
    from aggregator.catalog.postgres import PostgresConnection

# The ring's payload for a new version of the rendered set: this, then the storing node's
# name (a sync's ring is the name alone; names have no ':').
RENDER_RING = "rendered:"
COPIED_SEQ = "copied_seq"  # shared catalogs: the last rendered-set version this node copied
_FETCH = 200  # rows fetched at a time while copying (bytes: bounded memory)

# Tables only a shared catalog needs (run with the other cluster DDL; idempotent).
RENDERED_DDL = (
    "CREATE TABLE IF NOT EXISTS rendered_files ("
    ' path TEXT COLLATE "C" PRIMARY KEY, seq BIGINT NOT NULL, digest BYTEA,'
    " data BYTEA, gzipped BYTEA)",
    "CREATE INDEX IF NOT EXISTS rendered_files_seq ON rendered_files (seq)",
    "CREATE TABLE IF NOT EXISTS rendered_version ("
    " id INTEGER PRIMARY KEY CHECK (id = 1), seq BIGINT NOT NULL, epoch BIGINT NOT NULL,"
    " node TEXT NOT NULL, cutoff TEXT)",
    "INSERT INTO rendered_version (id, seq, epoch, node) VALUES (1, 0, 0, '') "
    "ON CONFLICT (id) DO NOTHING",
    # The bytes compressed with lz4, not pglz (PostgreSQL >= 14 built with it; else left as
    # they are): a drop's store of ~1.5 MB cost the server 24 ms of pglz, 5 with lz4, and
    # every node's fetch a third as much. Looked up first (an ALTER takes the table's lock)
    # and run by EXECUTE, which an older server never parses.
    "DO $$ BEGIN IF current_setting('server_version_num')::int >= 140000 THEN "
    "IF EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'rendered_files'::regclass "
    "AND attname IN ('data', 'gzipped') AND attcompression <> 'l') THEN "
    "EXECUTE 'ALTER TABLE rendered_files ALTER COLUMN data SET COMPRESSION lz4, "
    "ALTER COLUMN gzipped SET COMPRESSION lz4'; END IF; END IF; "
    "EXCEPTION WHEN feature_not_supported THEN NULL; END $$",
)


def digest(data: bytes) -> bytes:
    """What a stored file's bytes are compared by (the bytes stay in the database)."""
    return hashlib.sha256(data).digest()


@dataclass(frozen=True, slots=True)
class StoredFile:
    """One row of the rendered set: `data` None is a file the renderer removed."""

    path: str
    seq: int
    data: bytes | None
    gzipped: bytes | None


class RenderedMixin(FeedsMixin):
    """The rendered set of a shared catalog, its version, the marks, the database's clock."""

    # This node's copy mark as last read or written (None: ask the database).
    _copy_mark: int | None = None
    # The rendered set's digests as of a version (`stored_digests`), and the write
    # transaction (its number on the connection) that last stored a version.
    _digests_at: tuple[int, dict[str, bytes]] | None = None
    _stored_in: int | None = None

    @storage_errors
    def clock(self) -> datetime:
        """The catalog's time: the database server's clock on a shared catalog (the one
        clock every node's cut-off, windows and undated articles go by), else this
        machine's."""
        if not self.shared:
            return datetime.now(UTC)
        (value,) = self._db.execute("SELECT clock_timestamp()").fetchone()
        assert isinstance(value, datetime)
        return value.astimezone(UTC)

    def fenced(self, epoch: int) -> bool:
        """Inside a store's transaction: whether `epoch` is still the current leader's and
        its lease unexpired (`lease_holds`, the cluster's one fencing test). The row stays
        locked until the commit, so a takeover waits for the store or comes before it and
        refuses it."""
        from aggregator.catalog.cluster import lease_holds

        return lease_holds(self._db, epoch)

    @storage_errors
    def leader_live(self) -> bool:
        """Whether some process leads the cluster now (its lease is unexpired)."""
        return self.shared and self._backend.leader_lease_live()

    @storage_errors
    def stored_digests(self) -> dict[str, bytes]:
        """Every file of the rendered set (not the removed ones), with its bytes' digest.

        The whole set is read once; after that only the rows of the versions since (the
        renderer asks at every build: a drop's few rows, not the ~1,800 of the set). Right
        whoever stored them, and whatever rolled back: a version's rows appear in one
        snapshot at its commit, and versions commit in order (the store takes the
        cluster's write lock). Nothing is remembered inside a transaction that stored a
        version: what it sees then is its own rows too, which could still roll back."""
        seen, known = self._digests_at or (0, {})
        db = self._postgres()
        unsure = db.in_transaction and db.transactions == self._stored_in
        if unsure:
            known = dict(known)
        rows = self._binary(
            "SELECT path, seq, digest, data IS NULL FROM rendered_files WHERE seq > ? "
            "ORDER BY seq",
            (seen,),
        )
        for path, seq, value, removed in rows:
            if removed:
                known.pop(str(path), None)
            else:
                known[str(path)] = bytes(value)
            seen = int(seq)
        if not unsure:
            self._digests_at = (seen, known)
        return dict(known)

    @storage_errors
    def store_rendered(
        self, files: Mapping[str, RenderedFile], removed: Collection[str], epoch: int, node: str
    ) -> int:
        """Store new files and removals as one new version of the rendered set, if `epoch`
        is still the current one (else `FencedOut`); ring every node when it commits. Call
        it inside the transaction that also records what was rendered. The new version."""
        from aggregator.catalog.postgres import CHANNEL

        with self.transaction():  # the cluster's write lock: versions commit in order
            self._stored_in = self._postgres().transactions
            if not self.fenced(epoch):
                raise FencedOut(node, epoch)
            (version,) = self._db.execute(
                "UPDATE rendered_version SET seq = seq + 1, epoch = ?, node = ?, cutoff = ? "
                "WHERE id = 1 RETURNING seq",
                (epoch, node, _cutoff_text(self.cutoff())),
            ).fetchone()
            upsert = (
                "INSERT INTO rendered_files (path, seq, digest, data, gzipped) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (path) DO UPDATE SET seq = excluded.seq, "
                "digest = excluded.digest, data = excluded.data, gzipped = excluded.gzipped"
            )
            self._db.executemany(
                upsert,
                [
                    (path, version, digest(f.data), f.data, f.gzipped)
                    for path, f in sorted(files.items())
                ]
                + [(path, version, None, None, None) for path in sorted(removed)],
            )
            self._db.execute("SELECT pg_notify(?, ?)", (CHANNEL, RENDER_RING + node))
        return int(version)

    @storage_errors
    def ring_renderer(self) -> None:
        """Wake the renderer though no feed changed (an article this node's sync scheduled
        for later: the renderer's timer must know its date)."""
        from aggregator.catalog.postgres import CHANNEL

        self._db.execute("SELECT pg_notify(?, ?)", (CHANNEL, self._keys.prefix[:-1]))

    @storage_errors
    def rendered_version(self) -> int:
        """The newest version of the rendered set (0: nothing rendered yet)."""
        row = self._db.execute("SELECT seq FROM rendered_version WHERE id = 1").fetchone()
        return int(row[0]) if row is not None else 0

    def rendered_since(self, mark: int) -> Iterator[list[StoredFile]]:
        """The rows newer than `mark`, oldest version first, a bounded batch at a time."""
        after: tuple[int, str] = (mark, "")
        while True:
            batch = self._fetch(
                "SELECT path, seq, data, gzipped FROM rendered_files "
                "WHERE (seq, path) > (?, ?) ORDER BY seq, path LIMIT ?",
                (*after, _FETCH),
            )
            if batch:
                yield batch
            if len(batch) < _FETCH:
                return  # the last one: no round trip to find nothing more
            after = (batch[-1].seq, batch[-1].path)

    def rendered_files(self, paths: Collection[str]) -> Iterator[list[StoredFile]]:
        """The rows of `paths` (those the set has), a bounded batch at a time."""
        ordered = sorted(paths)
        for start in range(0, len(ordered), _FETCH):
            chunk = ordered[start : start + _FETCH]
            yield self._fetch(
                "SELECT path, seq, data, gzipped FROM rendered_files "
                f"WHERE path IN ({marks(len(chunk))}) ORDER BY seq, path",
                chunk,
            )

    @storage_errors
    def _fetch(self, sql: str, params: Sequence[object]) -> list[StoredFile]:
        return [
            StoredFile(
                str(p), int(s), None if d is None else bytes(d), None if g is None else bytes(g)
            )
            for p, s, d, g in self._binary(sql, params)
        ]

    def _binary(self, sql: str, params: Sequence[object]) -> Any:
        """Rows with their `bytea` columns as bytes on the wire (the rendered set is a
        shared catalog's: PostgreSQL's binary format, not twice as many hex digits)."""
        return self._postgres().fetch_binary(sql, params)

    def _postgres(self) -> PostgresConnection:
        """The connection of a shared catalog (the rendered set is only theirs)."""
        from aggregator.catalog.postgres import PostgresConnection

        db = self._db
        assert isinstance(db, PostgresConnection)
        return db

    @storage_errors
    def render_mark(self) -> int:
        """The last change-log entry the cluster's renderer rendered."""
        return int(self.meta(RENDERED_SEQ) or 0)

    @storage_errors
    def change_log_end(self) -> int:
        """The last change-log entry committed (0: none)."""
        (end,) = self._db.execute("SELECT coalesce(max(seq), 0) FROM feed_changes").fetchone()
        return int(end)

    @storage_errors
    def copy_mark(self) -> int:
        """The last version of the rendered set this node copied into its output folder.

        Read once, then remembered: only this node's process writes its mark (its name's
        claim keeps any other out), so every copy after the first asks the database
        nothing before its fetch."""
        if self._copy_mark is None:
            row = self._db.execute(
                "SELECT value FROM meta WHERE key = ?", (self._keys.stored(COPIED_SEQ),)
            ).fetchone()
            self._copy_mark = int(row[0]) if row is not None else 0
        return self._copy_mark

    @storage_errors
    def set_copy_mark(self, version: int) -> None:
        """Record that this node's output folder holds the rendered set up to `version`.

        One statement, outside any transaction committed by itself (the connection is in
        autocommit): this node's own row, which needs no lock and no BEGIN and COMMIT
        round trips around it. Remembered only once the database has it."""
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (self._keys.stored(COPIED_SEQ), str(version)),
        )
        self._copy_mark = version if not self._db.in_transaction else None


def _cutoff_text(cutoff: datetime | None) -> str | None:
    return None if cutoff is None else format_date(cutoff)
