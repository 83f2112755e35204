"""The catalog: the SQLite file that remembers articles between runs.

It is the only state. It knows every article file (size, mtime, last good version), the
permanent GUID of every article ever published, which items each feed lists, and what each
feed looked like when it was last written. `Catalog.sync` applies one batch of file changes
and answers which feeds they touched; `Catalog.newest` answers what a feed lists now.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from aggregator.errors import CatalogError
from aggregator.events import (
    ArticleAdded,
    ArticleRejected,
    ArticleRemoved,
    ArticleScheduled,
    ArticleUnpublished,
    ArticleUpdated,
    ChangeEvent,
    DuplicateUrl,
)
from aggregator.membership import DEFAULT_RULES, FeedRules, feeds_of
from aggregator.model import Article, FeedItem, FeedKey, Image, Provider, RelatedLink
from aggregator.reading import FileStat

T = TypeVar("T")
P = ParamSpec("P")
R = TypeVar("R")

LOGGER = logging.getLogger("aggregator.catalog")

# The page cache, in KiB: enough for a daemon's small syncs, whose memory must stay flat.
_CACHE_KIB = 16 * 1024
# Big syncs insert hundreds of thousands of rows into several b-trees at once: a large page
# cache keeps them in memory while they run (measured at 100,000 articles: -2.5 s).
_BULK_CACHE_KIB = 256 * 1024
_BULK_CHANGES = 5000

# SQLite's limit on bound parameters is 32766 on current builds but 999 on old ones.
_CHUNK = 900

_MIGRATIONS: dict[int, str] = {
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
}
SCHEMA_VERSION = max(_MIGRATIONS)
# Every table a catalog of SCHEMA_VERSION has, and the columns each must have.
_TABLES = {
    "meta": ("key", "value"),
    "files": ("path", "size", "mtime_ns", "url", "article", "error"),
    "identities": ("guid", "url", "path", "first_published"),
    "items": ("guid", "url", "path", "date", "fingerprint", "feeds"),
    "memberships": ("feed", "date", "guid"),
    "feeds": ("feed", "name", "updated", "guids"),
}


# --- Article <-> JSON ---------------------------------------------------------------------
# The catalog owns its storage format; nothing else reads these strings.


def format_date(value: datetime) -> str:
    """A UTC datetime as the catalog's text: fixed width, so it sorts in date order."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def parse_date(text: str) -> datetime:
    """Inverse of `format_date`."""
    return datetime.fromisoformat(text)


def article_to_json(article: Article) -> str:
    """The stored form of an article's last good version."""
    data: dict[str, Any] = {
        "source": article.source,
        "url": article.url,
        "title": article.title,
        "excerpt": article.excerpt,
        "published": article.published,
        "published_at": format_date(article.published_at) if article.published_at else None,
        "provider": [article.provider.name, article.provider.domain] if article.provider else None,
        "topics": list(article.topics),
        "images": [[i.url, i.width, i.height] for i in article.images],
        "related": [
            [r.title, r.url, r.provider, format_date(r.published_at) if r.published_at else None]
            for r in article.related
        ],
    }
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def article_from_json(text: str) -> Article:
    """Inverse of `article_to_json`."""
    data = json.loads(text)
    provider = data["provider"]
    return Article(
        source=data["source"],
        url=data["url"],
        title=data["title"],
        excerpt=data["excerpt"],
        published=data["published"],
        published_at=parse_date(data["published_at"]) if data["published_at"] else None,
        provider=Provider(provider[0], provider[1]) if provider else None,
        topics=tuple(data["topics"]),
        images=tuple(Image(u, w, h) for u, w, h in data["images"]),
        related=tuple(
            RelatedLink(t, u, p, parse_date(d) if d else None) for t, u, p, d in data["related"]
        ),
    )


@lru_cache(maxsize=8192)  # few distinct feeds, named once per article each
def _feed_name(key: FeedKey) -> str:
    return str(key)


def _fingerprint(article_json: str) -> str:
    return hashlib.blake2b(article_json.encode(), digest_size=12).hexdigest()


@dataclass(frozen=True, slots=True)
class StoredArticle:
    """An article as the catalog keeps it: its JSON, and the few facts a sync needs.

    Made where the file is read (a worker process, for big builds), so the main process
    never decodes the JSON of an article it only stores.
    """

    url: str
    title: str
    published: bool
    date: str | None  # `format_date` of its publishedDateTime
    feeds: tuple[str, ...]  # `str` of each FeedKey it belongs in
    json: str
    fingerprint: str

    @classmethod
    def of(
        cls, article: Article, article_json: str | None = None, rules: FeedRules = DEFAULT_RULES
    ) -> StoredArticle:
        """The stored form of a parsed article (`article_json` if already made); `rules`
        say which feeds exist."""
        text = article_json if article_json is not None else article_to_json(article)
        return cls(
            url=article.url,
            title=article.title,
            published=article.published,
            date=format_date(article.published_at) if article.published_at else None,
            feeds=tuple(_feed_name(k) for k in feeds_of(article, rules)),
            json=text,
            fingerprint=_fingerprint(text),
        )

    @classmethod
    def from_json(cls, text: str, rules: FeedRules = DEFAULT_RULES) -> StoredArticle:
        """The stored form of a catalog row's JSON."""
        return cls.of(article_from_json(text), text, rules)


# --- what a sync takes and gives ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileChange:
    """One article file as a build found it.

    `stat is None` means the file is gone. Otherwise exactly one of `article` (it parsed)
    and `error` (why it was rejected) is set. `withdrawn`: the rejected file says it is not
    published, so its last good version leaves the feeds instead of staying listed.
    """

    path: str
    stat: FileStat | None
    article: StoredArticle | None = None
    error: str | None = None
    withdrawn: bool = False


@dataclass(slots=True)
class SyncResult:
    """What one batch of file changes did to the catalog."""

    events: list[ChangeEvent] = field(default_factory=list)
    dirty_feeds: set[FeedKey] = field(default_factory=set)
    changed_guids: set[str] = field(default_factory=set)
    rejected: int = 0


@dataclass(frozen=True, slots=True)
class _FileRow:
    path: str
    mtime_ns: int
    url: str | None
    article_json: str | None
    stored: StoredArticle | None = None  # when this batch read the file

    def stored_form(self, rules: FeedRules) -> StoredArticle:
        assert self.article_json is not None
        return self.stored or StoredArticle.from_json(self.article_json, rules)


@dataclass(frozen=True, slots=True)
class _ItemRow:
    guid: str
    url: str
    path: str
    date: str
    fingerprint: str
    feeds: str  # the feeds it is listed in, one per line
    article_json: str | None  # the version listed, for the title of a leaving article


@dataclass(frozen=True, slots=True)
class DueItem:
    """An item whose date a cut-off crossed: it enters (or leaves) its feeds."""

    guid: str
    path: str
    title: str
    url: str
    feeds: tuple[FeedKey, ...]


@dataclass(frozen=True, slots=True)
class FeedRecord:
    """A feed as it was last written; `name` is its topic's or provider's name."""

    key: FeedKey
    name: str
    updated: datetime
    guids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class OwedPing:
    """A hub not yet told that `topic` (a feed file's URL) has new bytes, since `since`."""

    id: int
    hub: str
    topic: str
    since: datetime


def _chunks(values: Collection[T]) -> Iterator[list[T]]:
    items = list(values)
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _marks(n: int) -> str:
    return ",".join("?" * n)


class Connection(Protocol):
    """What the catalog needs of a database connection: the subset of `sqlite3.Connection`
    it uses. `catalog_postgres.PostgresConnection` gives the same on PostgreSQL."""

    @property
    def in_transaction(self) -> bool: ...

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Any: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Any: ...

    def close(self) -> None: ...


def is_shared(location: Path | str) -> bool:
    """Whether a catalog location is a PostgreSQL URL (shared by nodes), not a SQLite file."""
    return isinstance(location, str) and location.startswith(("postgresql://", "postgres://"))


def _storage_errors(
    method: Callable[Concatenate[Catalog, P], R],
) -> Callable[Concatenate[Catalog, P], R]:
    """Turn SQLite's errors (and undecodable stored JSON) into a `CatalogError` that says
    what to do: the catalog's public methods are its boundary; nothing above sees sqlite3.
    (PostgreSQL's errors are turned into `CatalogError` by its connection adapter.)"""

    def wrapper(self: Catalog, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise CatalogError(self.where, _storage_reason(exc)) from exc
        except json.JSONDecodeError as exc:
            raise CatalogError(self.where, _damaged(f"a stored record: {exc}")) from exc

    functools.update_wrapper(wrapper, method)
    return wrapper


class Catalog:
    """An open catalog. One writer at a time (the build lock sees to that; on PostgreSQL,
    also a transaction-level advisory lock shared by every node).

    `location` is the SQLite file, or a `postgresql://` URL. On PostgreSQL, `node` names
    this machine: its file paths and feed records are stored under `<node>/`, so nodes share
    articles and GUIDs but each has its own files and its own output. The paths given to and
    returned by the methods are always relative to this node's input folder.
    """

    _db: Connection

    def __init__(
        self,
        location: Path | str,
        *,
        readonly: bool = False,
        node: str = "",
        rules: FeedRules = DEFAULT_RULES,
    ) -> None:
        self.rules = rules
        self.location = str(location)  # what a worker process opens again
        # The SQLite file; a shared catalog has none (its messages name `where` instead).
        self.path = Path(location) if not is_shared(location) else Path(node or "catalog")
        self.where = self.location  # for messages: the file, or the URL without password
        self._prefix = ""
        self._shared = is_shared(location)
        self._pending_upto = 0
        if self._shared:
            self._open_shared(self.location, node, readonly=readonly)
            return
        path = self.path
        try:
            if readonly:
                # Worker processes that render feeds only read; WAL lets them read while
                # nothing else writes, without taking any write lock.
                uri = f"file:{path.resolve()}?mode=ro"
                self._db = sqlite3.connect(uri, uri=True, isolation_level=None)
                return
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
            # Checkpoints run in a thread after each sync (see `_checkpoint`), not inside
            # the commit of the sync, which would make the build wait for them.
            self._db.execute("PRAGMA wal_autocheckpoint=0")
            self._checkpointer: threading.Thread | None = None
            self._migrate()
            # A damaged file must fail here, with what to do, not halfway through a build.
            missing = schema_problems(self._db)
            if missing:
                raise CatalogError(str(path), _damaged("; ".join(missing)))
        except sqlite3.Error as exc:
            self._close_quietly()
            raise CatalogError(str(path), _storage_reason(exc)) from exc
        except CatalogError:
            self._close_quietly()
            raise
        except OSError as exc:
            raise CatalogError(str(path), f"cannot create its folder: {exc.strerror}") from exc

    def _open_shared(self, url: str, node: str, *, readonly: bool) -> None:
        # Imported here: a SQLite user never loads psycopg (an optional extra).
        from aggregator.catalog.postgres import PostgresConnection, reader

        db = reader(url) if readonly else PostgresConnection(url)
        self._db = db
        self._postgres = db
        self.where = db.where
        self._prefix = f"{node}/"
        self._node = node
        self._kept_open = readonly  # the process's reader connection, reused by the next
        if readonly:
            return
        db.lock_migrations()
        try:
            self._migrate()
        finally:
            db.unlock_migrations()

    @property
    def shared(self) -> bool:
        """Whether several nodes share this catalog (PostgreSQL)."""
        return self._shared

    def _close_quietly(self) -> None:
        db = getattr(self, "_db", None)
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                db.close()

    def close(self) -> None:
        """Close the file; the catalog cannot be used afterwards."""
        self._join_checkpoint()
        if not getattr(self, "_kept_open", False):
            self._db.close()

    def _checkpoint(self) -> None:
        """Copy the write-ahead log into the database file, in a thread of its own.

        A big sync leaves tens of MB in the log; copying them takes a fifth of a second
        that the build can spend rendering instead (render workers only read).
        """
        if self._shared:
            return
        self._join_checkpoint()

        def run() -> None:
            try:
                with contextlib.closing(sqlite3.connect(self.path, isolation_level=None)) as db:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error as exc:  # the next one catches up; nothing is lost
                LOGGER.debug("catalog checkpoint failed: %s", exc)

        self._checkpointer = threading.Thread(target=run, name="aggregator-checkpoint")
        self._checkpointer.start()

    def _join_checkpoint(self) -> None:
        thread = getattr(self, "_checkpointer", None)
        if thread is not None:
            thread.join()
            self._checkpointer = None

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _migrate(self) -> None:
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise CatalogError(
                self.where,
                f"made by a newer aggregator (schema {version}, this one knows "
                f"{SCHEMA_VERSION}); upgrade, or "
                + (
                    "use an empty database to start over"
                    if self._shared
                    else "delete the state folder to start over"
                ),
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            with self.transaction():
                for statement in _MIGRATIONS[target].split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {target}")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE … COMMIT, or ROLLBACK on any error: all of a sync or none.

        SQLite errors become a `CatalogError` naming the real cause: some (a full disk)
        roll the transaction back themselves, and a second ROLLBACK would fail with "no
        transaction is active", hiding it.
        """
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise CatalogError(self.where, _storage_reason(exc)) from exc
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException as exc:
            if self._db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise CatalogError(self.where, _storage_reason(exc)) from exc
            raise

    # --- reads -------------------------------------------------------------------------

    @_storage_errors
    def meta(self, key: str) -> str | None:
        """A stored setting of the catalog itself (e.g. what the feeds were rendered with).

        On a shared catalog, settings are this node's own (`<node>/key`): what it rendered,
        with what, and up to where.
        """
        row = self._db.execute(
            "SELECT value FROM meta WHERE key = ?", (self._prefix + key,)
        ).fetchone()
        return None if row is None else str(row[0])

    @_storage_errors
    def set_meta(self, key: str, value: str) -> None:
        """Store a catalog setting (inside or outside a transaction)."""
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (self._prefix + key, value),
        )

    @_storage_errors
    def file_signatures(self) -> dict[str, str]:
        """The `FileStat.signature` the catalog last saw for every known file."""
        if self._prefix:
            n = len(self._prefix)
            rows = self._db.execute(
                "SELECT path, size || ':' || mtime_ns FROM files WHERE path >= ? AND path < ?",
                self._prefix_range(),
            )
            return {path[n:]: signature for path, signature in rows}
        return dict(self._db.execute("SELECT path, size || ':' || mtime_ns FROM files"))

    def _prefix_range(self) -> tuple[str, str]:
        """Bounds of this node's keys: `node/` ≤ key < `node0` ('0' follows '/')."""
        return self._prefix, self._prefix[:-1] + "0"

    @_storage_errors
    def file_stat(self, path: str) -> FileStat | None:
        """The size and mtime last seen for one file, or None if it is not known."""
        row = self._db.execute(
            "SELECT size, mtime_ns FROM files WHERE path = ?", (self._prefix + path,)
        ).fetchone()
        return None if row is None else FileStat(row[0], row[1])

    @_storage_errors
    def newest(
        self,
        key: FeedKey,
        limit: int,
        cache: dict[str, Article] | None = None,
        *,
        until: datetime | None = None,
        since: datetime | None = None,
    ) -> list[FeedItem]:
        """The newest `limit` items of a feed, newest first (ties broken by GUID).

        Only items dated at or before `until` (the build's cut-off: later ones are
        embargoed) and after `since` (the feed's time window), when given.
        """
        rows = self._db.execute(
            "SELECT m.guid, m.date, i.path, f.article FROM memberships m "
            "JOIN items i ON i.guid = m.guid JOIN files f ON f.path = i.path "
            "WHERE m.feed = ? AND m.date <= ? AND m.date > ? "
            "ORDER BY m.date DESC, m.guid DESC LIMIT ?",
            (str(key), _upper(until), _lower(since), limit),
        ).fetchall()
        items = []
        for guid, date, path, article_json in rows:
            article = cache.get(path) if cache is not None else None
            if article is None:
                article = article_from_json(article_json)
                if cache is not None:
                    cache[path] = article
            items.append(FeedItem(guid=guid, date=parse_date(date), article=article))
        return items

    @_storage_errors
    def feed_record(self, key: FeedKey) -> FeedRecord | None:
        """The feed as it was last written, or None if it never was."""
        row = self._db.execute(
            "SELECT name, updated, guids FROM feeds WHERE feed = ?", (self._prefix + str(key),)
        ).fetchone()
        if row is None:
            return None
        return FeedRecord(key, row[0], parse_date(row[1]), tuple(json.loads(row[2])))

    @_storage_errors
    def feed_records(self) -> list[FeedRecord]:
        """Every feed ever written, in path order."""
        if self._prefix:
            rows = self._db.execute(
                "SELECT feed, name, updated, guids FROM feeds WHERE feed >= ? AND feed < ? "
                "ORDER BY feed",
                self._prefix_range(),
            )
        else:
            rows = self._db.execute("SELECT feed, name, updated, guids FROM feeds ORDER BY feed")
        n = len(self._prefix)
        return [
            FeedRecord(FeedKey.parse(f[n:]), t, parse_date(u), tuple(json.loads(g)))
            for f, t, u, g in rows
        ]

    @_storage_errors
    def membership_counts(
        self,
        until: datetime | None = None,
        since: Mapping[FeedKey, datetime] | None = None,
    ) -> dict[FeedKey, int]:
        """How many items each feed covers in all (a feed lists only the newest of them):
        those dated at or before `until` (the build's cut-off), and after `since[feed]`
        for a feed with a time window."""
        rows = self._db.execute(
            "SELECT feed, count(*) FROM memberships WHERE date <= ? GROUP BY feed",
            (_upper(until),),
        )
        counts = {FeedKey.parse(feed): int(count) for feed, count in rows}
        for key, start in (since or {}).items():
            (count,) = self._db.execute(
                "SELECT count(*) FROM memberships WHERE feed = ? AND date <= ? AND date > ?",
                (str(key), _upper(until), format_date(start)),
            ).fetchone()
            counts[key] = int(count)
        return counts

    @_storage_errors
    def published_count(self, until: datetime | None = None) -> int:
        """How many items the feeds list (published articles, one per webUrl), counting
        only those dated at or before `until` (the others are embargoed)."""
        (items,) = self._db.execute(
            "SELECT count(*) FROM items WHERE date <= ?", (_upper(until),)
        ).fetchone()
        return int(items)

    @_storage_errors
    def falling_due(self, after: datetime | None, until: datetime | None) -> list[DueItem]:
        """Items dated in (`after`, `until`]: those a cut-off moving from one to the other
        releases (or, moving back, hides again). None: no bound on that side."""
        rows = self._db.execute(
            "SELECT i.guid, i.path, i.url, i.feeds, f.article FROM items i "
            "JOIN files f ON f.path = i.path WHERE i.date > ? AND i.date <= ? ORDER BY i.date",
            (_lower(after), _upper(until)),
        )
        due = []
        for guid, path, url, feeds, article_json in rows:
            title = json.loads(article_json)["title"] if article_json else url
            keys = tuple(FeedKey.parse(name) for name in feeds.split("\n") if name)
            due.append(DueItem(guid, path, title, url, keys))
        return due

    @_storage_errors
    def next_due(self, after: datetime) -> datetime | None:
        """The earliest item date later than `after` (the next embargo to lift), if any."""
        (date,) = self._db.execute(
            "SELECT min(date) FROM items WHERE date > ?", (format_date(after),)
        ).fetchone()
        return None if date is None else parse_date(date)

    @_storage_errors
    def lists_between(self, key: FeedKey, after: datetime, until: datetime) -> bool:
        """Whether a feed has an item dated in (`after`, `until`] (one b-tree probe)."""
        row = self._db.execute(
            "SELECT 1 FROM memberships WHERE feed = ? AND date > ? AND date <= ? LIMIT 1",
            (str(key), format_date(after), format_date(until)),
        ).fetchone()
        return row is not None

    @_storage_errors
    def oldest_after(self, key: FeedKey, after: datetime) -> datetime | None:
        """The oldest date of a feed's items dated later than `after` (one b-tree probe)."""
        (date,) = self._db.execute(
            "SELECT min(date) FROM memberships WHERE feed = ? AND date > ?",
            (str(key), format_date(after)),
        ).fetchone()
        return None if date is None else parse_date(date)

    @_storage_errors
    def rejected_files(self) -> list[tuple[str, str]]:
        """(path, reason) of every file whose current bytes were rejected."""
        rows = list(
            self._db.execute("SELECT path, error FROM files WHERE error IS NOT NULL ORDER BY path")
        )
        if self._prefix:
            n = len(self._prefix)
            return [(p[n:], e) for p, e in rows if p.startswith(self._prefix)]
        return rows

    # --- writes ------------------------------------------------------------------------

    @_storage_errors
    def reassign_feeds(self, rules: FeedRules) -> set[FeedKey]:
        """Decide every listed item's feeds again under `rules` (the config's feeds changed);
        returns the feeds that gained or lost items, which are also marked pending.

        Every item's last good version is in the catalog, so no file is read again.
        """
        self.rules = rules
        dirty: set[str] = set()
        with self.transaction():
            rows = self._db.execute(
                "SELECT i.guid, i.date, i.feeds, f.article FROM items i "
                "JOIN files f ON f.path = i.path"
            ).fetchall()
            item_updates = []
            removed: list[tuple[str, str, str]] = []
            added: list[tuple[str, str, str]] = []
            for guid, date, feeds, article_json in rows:
                old = [name for name in feeds.split("\n") if name]
                new = [str(k) for k in feeds_of(article_from_json(article_json), rules)]
                if old == new:
                    continue
                item_updates.append(("\n".join(new), guid))
                removed.extend((name, date, guid) for name in set(old) - set(new))
                added.extend((name, date, guid) for name in set(new) - set(old))
                dirty.update(set(old) ^ set(new))
            self._db.executemany("UPDATE items SET feeds = ? WHERE guid = ?", item_updates)
            self._db.executemany(
                "DELETE FROM memberships WHERE feed = ? AND date = ? AND guid = ?", removed
            )
            self._db.executemany(
                "INSERT INTO memberships (feed, date, guid) VALUES (?, ?, ?)", sorted(added)
            )
            keys = {FeedKey.parse(name) for name in dirty}
            self.add_pending(keys)
        return keys

    @_storage_errors
    def forget_feeds(self, keys: Collection[FeedKey]) -> None:
        """Drop feeds that no longer exist (a config feed removed): their record, their
        memberships (already none after `reassign_feeds`) and any pending render."""
        if not keys:
            return
        names = {str(k) for k in keys}
        with self.transaction():
            self._db.executemany(
                "DELETE FROM feeds WHERE feed = ?", [(self._prefix + n,) for n in names]
            )
            self._db.executemany("DELETE FROM memberships WHERE feed = ?", [(n,) for n in names])
            pending = {str(k) for k in self.pending_feeds()} - names
            self.set_meta("pending_feeds", json.dumps(sorted(pending)))
            self.set_meta("pending_indexes", "1")  # they list the feeds removed

    @_storage_errors
    def pending_feeds(self) -> set[FeedKey]:
        """Feeds whose items changed and that were not yet written (kept across crashes).

        On a shared catalog: this node's failed feeds, and every feed in the change log
        after the last entry this node rendered (whichever node's sync changed it).
        """
        text = self.meta("pending_feeds")
        pending = {FeedKey.parse(f) for f in json.loads(text)} if text else set()
        if self._shared:
            done = int(self.meta("rendered_seq") or 0)
            upto = done
            for feed, seq in self._db.execute(
                "SELECT feed, max(seq) FROM feed_changes WHERE seq > ? GROUP BY feed", (done,)
            ):
                pending.add(FeedKey.parse(feed))
                upto = max(upto, int(seq))
            self._pending_upto = upto
        return pending

    @_storage_errors
    def add_pending(self, keys: Collection[FeedKey]) -> None:
        """Mark feeds as needing a render; stays until `finish_feeds` clears them.

        On a shared catalog the mark goes to the change log, for every node, and the other
        nodes are rung (NOTIFY) when the transaction commits; call it inside one.
        """
        if keys and self._shared:
            self._db.executemany(
                "INSERT INTO feed_changes (feed) VALUES (?)", [(str(k),) for k in sorted(keys)]
            )
            self._postgres.notify(self._node)
        elif keys:
            pending = {str(k) for k in self.pending_feeds()} | {str(k) for k in keys}
            self.set_meta("pending_feeds", json.dumps(sorted(pending)))

    @_storage_errors
    def finish_feeds(self, written: Sequence[FeedRecord], failed: Collection[FeedKey]) -> None:
        """Remember feeds as written; the failed ones stay pending for the next build.

        Feeds written make the indexes (which list them) pending, until `finish_indexes`.
        """
        with self.transaction():
            for record in written:
                self._save_feed(record)
            self.set_meta("pending_feeds", json.dumps(sorted(str(k) for k in failed)))
            if self._shared:
                # Up to what `pending_feeds` saw: later changes stay pending.
                self.set_meta("rendered_seq", str(self._pending_upto))
            if written:
                self.set_meta("pending_indexes", "1")

    @_storage_errors
    def indexes_pending(self) -> bool:
        """Whether index.opml and index.html must be written again (kept across crashes)."""
        return self.meta("pending_indexes") == "1"

    @_storage_errors
    def finish_indexes(self) -> None:
        """Remember that both indexes were written."""
        self.set_meta("pending_indexes", "0")

    def owe_pings(self, pings: Collection[tuple[str, str]], since: datetime) -> None:
        """Record that each (hub, topic) must be pinged; replaces an older obligation."""
        if not pings:
            return
        with self.transaction():
            for hub, topic in pings:
                self._db.execute(
                    "DELETE FROM pending_pings WHERE hub = ? AND topic = ?", (hub, topic)
                )
                self._db.execute(
                    "INSERT INTO pending_pings (hub, topic, since) VALUES (?, ?, ?)",
                    (hub, topic, format_date(since)),
                )

    def owed_pings(self) -> list[OwedPing]:
        """Every ping still owed, oldest first."""
        rows = self._db.execute("SELECT id, hub, topic, since FROM pending_pings ORDER BY id")
        return [OwedPing(i, h, t, parse_date(s)) for i, h, t, s in rows]

    def forget_pings(self, ids: Collection[int]) -> None:
        """Drop owed pings that were sent (or given up); unknown ids are ignored."""
        if not ids:
            return
        with self.transaction():
            for chunk in _chunks(ids):
                self._db.execute(
                    f"DELETE FROM pending_pings WHERE id IN ({_marks(len(chunk))})", chunk
                )

    def _save_feed(self, record: FeedRecord) -> None:
        self._db.execute(
            "INSERT INTO feeds (feed, name, updated, guids) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (feed) DO UPDATE SET name = excluded.name, "
            "updated = excluded.updated, guids = excluded.guids",
            (
                self._prefix + str(record.key),
                record.name,
                format_date(record.updated),
                json.dumps(record.guids),
            ),
        )

    @_storage_errors
    def sync(
        self,
        batches: Iterable[Sequence[FileChange]],
        now: Callable[[], datetime],
        *,
        expected: int = 0,
        cutoff: datetime | None = None,
    ) -> SyncResult:
        """Apply file changes; say which articles entered, changed or left which feeds.

        The changes come in batches so that a caller can apply one while it still reads
        the next; all batches run in one transaction: a failure leaves the catalog as it
        was. `now` is asked only for the first-published time of a never-seen article.
        `expected` (how many changes are coming) lets a big sync use a big page cache.
        `cutoff`: items dated later are embargoed: said `scheduled`, and no feed is
        marked for them (None: no embargo).
        """
        bulk = expected >= _BULK_CHANGES
        if bulk:
            self._db.execute(f"PRAGMA cache_size=-{_BULK_CACHE_KIB}")
        try:
            return self._sync(batches, now, cutoff, bulk=bulk)
        finally:
            if bulk:
                self._db.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
                self._db.execute("PRAGMA shrink_memory")

    def _sync(
        self,
        batches: Iterable[Sequence[FileChange]],
        now: Callable[[], datetime],
        cutoff: datetime | None,
        *,
        bulk: bool = False,
    ) -> SyncResult:
        if self._shared and not bulk:
            # The transaction holds the cluster-wide write lock: the daemon's batches are
            # read first, so that other nodes do not wait on this one's parsing. A bulk
            # sync (a cold build) keeps reading while it writes, which saves more.
            batches = list(batches)
        total = SyncResult()
        with self.transaction():
            for batch in batches:
                result = _Sync(self._db, now, self.rules, cutoff).run(self._stored_paths(batch))
                total.events.extend(result.events)
                total.dirty_feeds |= result.dirty_feeds
                total.changed_guids |= result.changed_guids
                total.rejected += result.rejected
            # Recorded with the changes themselves, so a crash before the feeds are
            # written cannot leave them stale forever.
            self.add_pending(total.dirty_feeds)
        self._checkpoint()
        if self._prefix:
            total.events = [self._local_event(e) for e in total.events]
        return total

    def _stored_paths(self, batch: Sequence[FileChange]) -> Sequence[FileChange]:
        """The batch with this node's paths as stored (`<node>/<path>` when shared)."""
        if not self._prefix:
            return batch
        return [dataclasses.replace(c, path=self._prefix + c.path) for c in batch]

    def _local_event(self, event: ChangeEvent) -> ChangeEvent:
        """An event with this node's paths relative to its input folder again."""
        n = len(self._prefix)

        def local(path: str) -> str:
            return path[n:] if path.startswith(self._prefix) else path

        if isinstance(event, DuplicateUrl):
            return dataclasses.replace(
                event, winner=local(event.winner), losers=tuple(local(p) for p in event.losers)
            )
        if isinstance(
            event,
            ArticleAdded | ArticleUpdated | ArticleUnpublished | ArticleRemoved | ArticleRejected,
        ):
            return dataclasses.replace(event, source=local(event.source))
        return event


class _Sync:
    """One batch: load what the changes touch, decide winners and GUIDs, write, diff."""

    def __init__(
        self,
        db: Connection,
        now: Callable[[], datetime],
        rules: FeedRules,
        cutoff: datetime | None,
    ) -> None:
        self.db = db
        self.now = now
        self.rules = rules
        self.cutoff = _upper(cutoff)
        self.result = SyncResult()
        self._keys: dict[str, FeedKey] = {}

    def _select(self, sql: str, values: Collection[Any]) -> list[Any]:
        rows: list[Any] = []
        for chunk in _chunks(values):
            rows.extend(self.db.execute(sql.format(marks=_marks(len(chunk))), chunk))
        return rows

    def run(self, changes: Sequence[FileChange]) -> SyncResult:
        result = self.result
        changes = self._recordable(changes)
        paths = {c.path for c in changes}
        old_files = {
            r[0]: _FileRow(*r)
            for r in self._select(
                "SELECT path, mtime_ns, url, article FROM files WHERE path IN ({marks})", paths
            )
        }

        # The file rows as they will be after this batch.
        new_files: dict[str, _FileRow | None] = {}
        affected_urls: set[str] = set()
        for change in changes:
            old = old_files.get(change.path)
            if old is not None and old.url is not None:
                affected_urls.add(old.url)
            if change.stat is None:
                new_files[change.path] = None
            elif change.article is not None:
                stored = change.article
                new_files[change.path] = _FileRow(
                    change.path, change.stat.mtime_ns, stored.url, stored.json, stored
                )
                affected_urls.add(stored.url)
            else:
                result.rejected += 1
                # The last good version stays listed until the file is fixed or deleted,
                # unless what could be read of the file says it is not published: a
                # takedown wins over any mistake saved with it.
                kept = old is not None and old.article_json is not None and not change.withdrawn
                result.events.append(
                    ArticleRejected(change.path, change.error or "rejected", kept_previous=kept)
                )
                new_files[change.path] = _FileRow(
                    change.path,
                    change.stat.mtime_ns,
                    old.url if old and kept else None,
                    old.article_json if old and kept else None,
                )

        # Other files that share a URL with a changed one compete for the same item.
        rivals: dict[str, list[_FileRow]] = {}
        for row in self._select(
            "SELECT path, mtime_ns, url, article FROM files WHERE url IN ({marks})", affected_urls
        ):
            if row[0] not in paths:
                rivals.setdefault(row[2], []).append(_FileRow(*row))
        for row in new_files.values():
            if row is not None and row.url is not None:
                rivals.setdefault(row.url, []).append(row)

        before = self._items_before(affected_urls, paths)
        after = self._winners(affected_urls, rivals)
        self._write_files(changes, new_files)
        self._apply_items(before, after, new_files)
        return result

    def _recordable(self, changes: Sequence[FileChange]) -> Sequence[FileChange]:
        """The changes whose path SQLite can store; the others are reported as rejected.

        A file name that is not valid UTF-8 reaches us with lone surrogates in it
        (`os.fsdecode`): it cannot be a key of the catalog, so it is rejected, unrecorded,
        at every build until it is renamed, and the other files are not held back by it.
        """
        if all(_storable(c.path) for c in changes):
            return changes
        kept = []
        for change in changes:
            if _storable(change.path):
                kept.append(change)
            elif change.stat is not None:
                self.result.rejected += 1
                shown = change.path.encode("utf-8", "backslashreplace").decode("utf-8")
                self.result.events.append(
                    ArticleRejected(
                        shown,
                        "the file name is not valid UTF-8, so it cannot be recorded:"
                        " rename the file (it is rejected at every build until then)",
                    )
                )
        return kept

    def _items_before(self, urls: Collection[str], paths: Collection[str]) -> dict[str, _ItemRow]:
        columns = "i.guid, i.url, i.path, i.date, i.fingerprint, i.feeds, f.article"
        source = "items i LEFT JOIN files f ON f.path = i.path"
        rows = self._select(f"SELECT {columns} FROM {source} WHERE i.url IN ({{marks}})", urls)
        rows += self._select(f"SELECT {columns} FROM {source} WHERE i.path IN ({{marks}})", paths)
        return {r[0]: _ItemRow(*r) for r in rows}

    def _winners(
        self, urls: Collection[str], rivals: dict[str, list[_FileRow]]
    ) -> dict[str, tuple[_FileRow, StoredArticle]]:
        """url → the file that speaks for it (newest mtime; then first path), if published."""
        winners: dict[str, tuple[_FileRow, StoredArticle]] = {}
        for url in urls:
            candidates = [r for r in rivals.get(url, ()) if r.article_json is not None]
            if not candidates:
                continue
            candidates.sort(key=lambda r: (-r.mtime_ns, r.path))
            winner = candidates[0]
            if len(candidates) > 1:
                self.result.events.append(
                    DuplicateUrl(url, winner.path, tuple(r.path for r in candidates[1:]))
                )
            stored = winner.stored_form(self.rules)
            if stored.published:
                winners[url] = (winner, stored)
        return winners

    def _write_files(
        self, changes: Sequence[FileChange], new_files: dict[str, _FileRow | None]
    ) -> None:
        gone = [(path,) for path, row in new_files.items() if row is None]
        self.db.executemany("DELETE FROM files WHERE path = ?", gone)
        self.db.executemany("UPDATE identities SET path = NULL WHERE path = ?", gone)
        upserts = []
        for change in changes:
            row = new_files[change.path]
            if row is None or change.stat is None:
                continue
            upserts.append(
                (
                    row.path,
                    change.stat.size,
                    change.stat.mtime_ns,
                    row.url,
                    row.article_json,
                    change.error if change.article is None else None,
                )
            )
        self.db.executemany(
            "INSERT INTO files (path, size, mtime_ns, url, article, error) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (path) DO UPDATE SET size = excluded.size, "
            "mtime_ns = excluded.mtime_ns, url = excluded.url, article = excluded.article, "
            "error = excluded.error",
            upserts,
        )

    def _assign_guids(
        self, before: dict[str, _ItemRow], after: dict[str, tuple[_FileRow, StoredArticle]]
    ) -> dict[str, str]:
        """url → GUID. A GUID, once given, stays with its article through edits and moves."""
        guids: dict[str, str] = {}
        taken: set[str] = set()
        by_path = dict(
            self._select(
                "SELECT path, guid FROM identities WHERE path IN ({marks})",
                [row.path for row, _ in after.values()],
            )
        )
        # 1. The same file had a GUID: it is the same article, whatever its URL says now.
        for url, (row, _) in after.items():
            guid = by_path.get(row.path)
            if guid is not None and guid not in taken:
                guids[url] = guid
                taken.add(guid)
        # 2. The same URL was listed from another file (a duplicate now wins it).
        by_url = {item.url: item.guid for item in before.values()}
        for url in after:
            guid = by_url.get(url)
            if url not in guids and guid is not None and guid not in taken:
                guids[url] = guid
                taken.add(guid)
        pending = [url for url in after if url not in guids]
        if not pending:
            return guids
        # GUIDs already given that a new article's URL would collide with.
        used = {
            guid
            for (guid,) in self._select(
                "SELECT guid FROM identities WHERE guid IN ({marks})", pending
            )
        }
        orphans: dict[str, list[str]] = {}
        for guid, url in self._select(
            "SELECT guid, url FROM identities WHERE path IS NULL AND url IN ({marks}) "
            "ORDER BY first_published",
            pending,
        ):
            orphans.setdefault(url, []).append(guid)
        for url in pending:
            # 3. A file that left with this URL came back (moved, or restored).
            guid = next((g for g in orphans.get(url, ()) if g not in taken), None)
            if guid is None:
                # 4. New: the URL itself, the id readers expect, unless some article had it.
                guid = self._mint(url, taken, used)
            guids[url] = guid
            taken.add(guid)
        return guids

    def _mint(self, url: str, taken: set[str], used: set[str]) -> str:
        """The URL itself if free, else `url#2`, `url#3`, … (an id must never be reused)."""
        if url not in taken and url not in used:
            return url
        n = 2
        while True:
            candidate = f"{url}#{n}"
            if (
                candidate not in taken
                and not self.db.execute(
                    "SELECT 1 FROM identities WHERE guid = ?", (candidate,)
                ).fetchone()
            ):
                return candidate
            n += 1

    def _key(self, name: str) -> FeedKey:
        key = self._keys.get(name)
        if key is None:
            key = self._keys[name] = FeedKey.parse(name)
        return key

    def _apply_items(
        self,
        before: dict[str, _ItemRow],
        after: dict[str, tuple[_FileRow, StoredArticle]],
        new_files: dict[str, _FileRow | None],
    ) -> None:
        result = self.result
        guids = self._assign_guids(before, after)
        after_by_guid = {guids[url]: pair for url, pair in after.items()}

        old_feeds = {guid: set(item.feeds.split("\n")) for guid, item in before.items()}

        first_published = dict(
            self._select(
                "SELECT guid, first_published FROM identities WHERE guid IN ({marks})",
                after_by_guid,
            )
        )
        now_text = format_date(self.now())

        identity_rows = []
        item_rows = []
        member_rows: list[tuple[str, str, str]] = []
        dirty: set[str] = set()
        for guid, (row, stored) in after_by_guid.items():
            first = first_published.get(guid, now_text)
            date = stored.date or first
            identity_rows.append((guid, stored.url, row.path, first))
            item_rows.append(
                (guid, stored.url, row.path, date, stored.fingerprint, "\n".join(stored.feeds))
            )
            member_rows.extend((name, date, guid) for name in stored.feeds)
            old = before.get(guid)
            old_set = old_feeds.get(guid, set())
            keys = tuple(self._key(name) for name in stored.feeds)
            if old is not None and (
                old.fingerprint == stored.fingerprint and old.date == date and old.path == row.path
            ):
                continue  # touched, not changed: no feed needs rendering
            was_listed = old is not None and old.date <= self.cutoff
            if date > self.cutoff:
                # Embargoed: in no feed until its date (the build that crosses it says so).
                due = parse_date(date)
                result.events.append(
                    ArticleScheduled(row.path, stored.title, stored.url, due, keys)
                )
            elif not was_listed:
                result.events.append(ArticleAdded(row.path, stored.title, stored.url, keys))
            else:
                entered = tuple(self._key(n) for n in stored.feeds if n not in old_set)
                left = tuple(self._key(n) for n in sorted(old_set.difference(stored.feeds)))
                result.events.append(
                    ArticleUpdated(row.path, stored.title, stored.url, keys, entered, left)
                )
            result.changed_guids.add(guid)
            if date <= self.cutoff:
                dirty.update(stored.feeds)
            if was_listed:
                dirty.update(old_set)

        gone_guids = []
        for guid, old in before.items():
            if guid in after_by_guid:
                continue
            gone_guids.append((guid,))
            names = sorted(old_feeds.get(guid, ())) if old.date <= self.cutoff else []
            keys = tuple(self._key(name) for name in names)  # an embargoed item left none
            dirty.update(names)
            result.changed_guids.add(guid)
            title = json.loads(old.article_json)["title"] if old.article_json else old.url
            if old.path in new_files and new_files[old.path] is None:
                result.events.append(ArticleRemoved(old.path, title, old.url, keys))
            else:
                result.events.append(ArticleUnpublished(old.path, title, old.url, keys))
        result.dirty_feeds.update(self._key(name) for name in dirty)

        # Inserts in key order touch each index page once per batch, not once per row.
        identity_rows.sort()
        item_rows.sort()
        member_rows.sort()
        # Only items listed before can have rows (a GUID new to `after` has none yet).
        listed = [(guid,) for guid in before]
        self.db.executemany("DELETE FROM items WHERE guid = ?", listed)
        self.db.executemany(
            "DELETE FROM memberships WHERE feed = ? AND date = ? AND guid = ?",
            [(feed, item.date, guid) for guid, item in before.items() for feed in old_feeds[guid]],
        )
        # Identities first give up the paths their articles left, so paths stay unique.
        self.db.executemany(
            "UPDATE identities SET path = NULL WHERE path = ? AND guid != ?",
            [(r[2], r[0]) for r in identity_rows],
        )
        self.db.executemany(
            "INSERT INTO identities (guid, url, path, first_published) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (guid) DO UPDATE SET url = excluded.url, path = excluded.path",
            identity_rows,
        )
        self.db.executemany(
            "INSERT INTO items (guid, url, path, date, fingerprint, feeds) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            item_rows,
        )
        self.db.executemany(
            "INSERT INTO memberships (feed, date, guid) VALUES (?, ?, ?)", member_rows
        )


# Bounds of date ranges as the catalog's text: every stored date sorts between them.
_NO_UPPER = "9999"
_NO_LOWER = ""


def _upper(value: datetime | None) -> str:
    return _NO_UPPER if value is None else format_date(value)


def _lower(value: datetime | None) -> str:
    return _NO_LOWER if value is None else format_date(value)


_REBUILD_ADVICE = (
    "run `aggregator catalog check` to see what is wrong and `aggregator catalog rebuild` "
    "to make a new catalog from the article files (it keeps the GUIDs it can still read)"
)


def _damaged(detail: str) -> str:
    return f"the catalog is damaged ({detail}); {_REBUILD_ADVICE}"


def _storable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _storage_reason(exc: sqlite3.Error) -> str:
    """Storage errors a user can act on, said so that they can."""
    message = str(exc)
    code = getattr(exc, "sqlite_errorcode", None)
    if code == sqlite3.SQLITE_FULL or ("disk" in message and "full" in message):
        return (
            "the disk holding the catalog is full; free some space (nothing was changed: the "
            "next build does the work again)"
        )
    if "locked" in message or "busy" in message:
        return "the database is locked by another process; wait for it or stop it"
    if (
        "not a database" in message
        or "malformed" in message
        or "no such table" in message
        or "no such column" in message
        or "decode" in message
        or code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
    ):
        return _damaged(message)
    if "readonly" in message or "unable to open" in message:
        return f"cannot open it for writing ({message}); check the state folder's permissions"
    if "disk I/O" in message:
        return f"the disk failed to read or write it ({message}); check the disk and its space"
    return message


def schema_problems(db: sqlite3.Connection) -> list[str]:
    """What the catalog's schema lacks (tables, columns), in words; empty if complete."""
    problems = []
    for table, columns in _TABLES.items():
        present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if not present:
            problems.append(f"no such table: {table}")
            continue
        lacking = [c for c in columns if c not in present]
        if lacking:
            problems.append(f"table {table} lacks column(s) {', '.join(lacking)}")
    return problems


def check_catalog(path: Path) -> list[str]:
    """Everything wrong with a catalog file (SQLite's integrity check, then the schema);
    an empty list means it is sound. Reads only; never changes the file."""
    if not path.exists():
        return [f"{path} does not exist (the next build makes a new one)"]
    try:
        with contextlib.closing(
            sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True, isolation_level=None)
        ) as db:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                return [f"made by a newer aggregator (schema {version}); upgrade to check it"]
            problems = [
                str(row[0]) for row in db.execute("PRAGMA integrity_check") if str(row[0]) != "ok"
            ]
            problems += schema_problems(db)
            if not problems:
                # Reading every stored text catches bytes that are not UTF-8.
                for table, columns in _TABLES.items():
                    for _ in db.execute(f"SELECT {', '.join(columns)} FROM {table}"):
                        pass
            return problems
    except sqlite3.Error as exc:
        return [str(exc)]


@dataclass(frozen=True, slots=True)
class Salvage:
    """What `rebuild_catalog` kept from a damaged catalog."""

    moved_to: Path | None
    identities: int
    feeds: int
    problems: tuple[str, ...]


def rebuild_catalog(path: Path, stamp: str) -> Salvage:
    """Replace a (damaged) catalog with a new one holding what can still be read of it.

    The GUIDs (`identities`) are carried over, so articles keep their ids; so are the feed
    records, and every feed is marked pending, so a feed that now lists nothing is written
    empty rather than left stale. Everything else comes back from the article files at the
    next full build. The new catalog is made beside the old one and renamed into place
    after the old one is moved aside (as `<name>.damaged-<stamp>`): a crash leaves one or
    the other, never neither. The caller holds the build lock.
    """
    identities: list[tuple[Any, ...]] = []
    feeds: list[tuple[Any, ...]] = []
    problems: list[str] = []
    if path.exists():
        identities = _salvage_rows(path, "identities", problems)
        feeds = _salvage_rows(path, "feeds", problems)
    fresh = path.with_name(f"{path.name}.new")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{fresh}{suffix}").unlink(missing_ok=True)
    catalog = Catalog(fresh)
    try:
        with catalog.transaction():
            catalog._db.executemany(
                "INSERT OR IGNORE INTO identities (guid, url, path, first_published) "
                "VALUES (?, ?, ?, ?)",
                identities,
            )
            catalog._db.executemany(
                "INSERT OR IGNORE INTO feeds (feed, name, updated, guids) VALUES (?, ?, ?, ?)",
                feeds,
            )
            catalog.set_meta("pending_feeds", json.dumps(sorted({str(f[0]) for f in feeds})))
            catalog.set_meta("pending_indexes", "1")
    finally:
        catalog.close()  # the last connection: its write-ahead log is merged and removed
    moved_to = None
    if path.exists():
        moved_to = path.with_name(f"{path.name}.damaged-{stamp}")
        # The log first: a new catalog must never find an old log beside it.
        for suffix in ("-wal", "-shm", ""):
            source = Path(f"{path}{suffix}")
            if source.exists():
                os.replace(source, Path(f"{moved_to}{suffix}"))
    os.replace(fresh, path)
    return Salvage(moved_to, len(identities), len(feeds), tuple(problems))


def _salvage_rows(path: Path, table: str, problems: list[str]) -> list[tuple[Any, ...]]:
    """The rows of `table` that a damaged file still gives, in order, up to the first bad
    one; rows whose values are not all text are skipped."""
    rows: list[tuple[Any, ...]] = []
    query = f"SELECT {', '.join(_TABLES[table])} FROM {table}"
    try:
        with contextlib.closing(
            sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True, isolation_level=None)
        ) as db:
            cursor = db.execute(query)
            while True:
                try:
                    row = cursor.fetchone()
                except sqlite3.Error as exc:
                    problems.append(f"{table}: stopped reading at a bad row ({exc})")
                    break
                if row is None:
                    break
                if all(isinstance(v, str) or v is None for v in row):
                    rows.append(tuple(row))
    except sqlite3.Error as exc:
        problems.append(f"{table}: unreadable ({exc})")
    return rows
