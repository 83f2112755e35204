"""The catalog's schema: the versioned migrations, the tables and columns a sound catalog has,
the meta keys, and what the catalog needs of a database connection (the `Connection` Protocol,
statements chunked under the bound-parameter limit).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

# SQLite's limit on bound parameters is 32766 on current builds but 999 on old ones.
_CHUNK = 900

MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    -- Every article file seen: what decides a re-read, and the last version that parsed.
    CREATE TABLE files (
        path TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        url TEXT,
        article TEXT,
        error TEXT
    );
    CREATE INDEX files_url ON files (url) WHERE url IS NOT NULL;
    -- Covers the scan of a build with nothing to do, which must not page through every
    -- article's JSON to learn sizes and mtimes.
    CREATE INDEX files_stat ON files (path, size, mtime_ns);
    CREATE INDEX files_rejected ON files (path, error) WHERE error IS NOT NULL;
    -- Every GUID ever handed out. `path` is NULL once its file is gone (kept for a return).
    CREATE TABLE identities (
        guid TEXT PRIMARY KEY,
        url TEXT NOT NULL,
        path TEXT UNIQUE,
        first_published TEXT NOT NULL
    );
    CREATE INDEX identities_url ON identities (url);
    -- What the feeds list: one row per published webUrl, from the winning file.
    CREATE TABLE items (
        guid TEXT PRIMARY KEY,
        url TEXT NOT NULL UNIQUE,
        path TEXT NOT NULL UNIQUE,
        date TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        feeds TEXT NOT NULL
    );
    -- Which feeds list which items. The key is the whole row, in the order a feed is
    -- read (newest first, scanned backwards): one b-tree, so a cold build of 100,000
    -- articles inserts its 300,000 rows into one tree, not three.
    CREATE TABLE memberships (
        feed TEXT NOT NULL,
        date TEXT NOT NULL,
        guid TEXT NOT NULL,
        PRIMARY KEY (feed, date, guid)
    ) WITHOUT ROWID;
    -- Each feed as last written: its topic or provider name, date and items.
    CREATE TABLE feeds (
        feed TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        updated TEXT NOT NULL,
        guids TEXT NOT NULL
    );
    """,
    # Embargo: what falls due between two builds' cut-offs, and the next due date.
    2: """
    CREATE INDEX items_date ON items (date);
    """,
    # WebSub pings owed: one row per (hub, topic) whose new bytes the hub was not yet told
    # of. A new change of the topic replaces the row (a new id, never reused), so a ping in
    # flight for older bytes cannot clear the obligation for newer ones.
    3: """
    CREATE TABLE pending_pings (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        hub TEXT NOT NULL,
        topic TEXT NOT NULL,
        since TEXT NOT NULL,
        UNIQUE (hub, topic)
    );
    """,
    # When an item last changed in a way readers see (title, link, summary, image, related
    # links): NULL until it is edited after it was first listed. Kept on the identity too,
    # which `catalog rebuild` carries over, so an edit's date outlives the items table.
    4: """
    ALTER TABLE items ADD COLUMN modified TEXT;
    ALTER TABLE identities ADD COLUMN modified TEXT;
    """,
}
SCHEMA_VERSION = max(MIGRATIONS)
# Every table a catalog of SCHEMA_VERSION has, and the columns each must have.
TABLES = {
    "meta": ("key", "value"),
    "files": ("path", "size", "mtime_ns", "url", "article", "error"),
    "identities": ("guid", "url", "path", "first_published", "modified"),
    "items": ("guid", "url", "path", "date", "fingerprint", "feeds", "modified"),
    "memberships": ("feed", "date", "guid"),
    "feeds": ("feed", "name", "updated", "guids"),
}

# Meta keys the catalog itself keeps (the pipeline's own are in `aggregator.catalog.meta`).
PENDING_FEEDS = "pending_feeds"  # JSON list of the feeds not yet written
PENDING_INDEXES = "pending_indexes"  # "1" while the indexes must be written again
RENDERED_SEQ = "rendered_seq"  # shared catalogs: the last feed change this node rendered


def chunks(values: Collection[T]) -> Iterator[list[T]]:
    """`values` in lists short enough to bind as one statement's parameters."""
    items = list(values)
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def marks(n: int) -> str:
    """`n` placeholders, comma-separated."""
    return ",".join("?" * n)


class Connection(Protocol):
    """What the catalog needs of a database connection: the subset of `sqlite3.Connection`
    it uses. `aggregator.catalog.postgres.PostgresConnection` gives the same on PostgreSQL."""

    @property
    def in_transaction(self) -> bool: ...

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Any: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Any: ...

    def close(self) -> None: ...


class Meta(Protocol):
    """The catalog's settings, as a backend reads and writes them (the `Catalog` is one)."""

    def meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...


_REBUILD_ADVICE = (
    "run `aggregator catalog check` to see what is wrong and `aggregator catalog rebuild` "
    "to make a new catalog from the article files (it keeps the GUIDs it can still read)"
)


def damaged(detail: str) -> str:
    """The advice for a catalog whose schema or records are damaged."""
    return f"the catalog is damaged ({detail}); {_REBUILD_ADVICE}"


def schema_problems(db: Connection) -> list[str]:
    """What the catalog's schema lacks (tables, columns), in words; empty if complete.
    (SQLite only: it reads `PRAGMA table_info`.)"""
    problems = []
    for table, columns in TABLES.items():
        present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if not present:
            problems.append(f"no such table: {table}")
            continue
        lacking = [c for c in columns if c not in present]
        if lacking:
            problems.append(f"table {table} lacks column(s) {', '.join(lacking)}")
    return problems
