"""A sync batch's rows: the file and item rows it reads, what each of its two rounds decided
(`FilesDecided`, `ItemsDecided`), the SQL that writes a decision (`write_files`,
`write_items`), and what the batches of one sync share (`SyncRun`: the membership rows held
back until it ends, the keys a sync that began on an empty catalog wrote).

`SyncBatch` (sync.py) decides; this module only holds and writes the result, so the
decisions can be read without the SQL and the SQL checked without the decisions.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from aggregator.catalog.records import FileChange, StoredArticle
from aggregator.catalog.schema import Connection
from aggregator.membership import FeedRules


@dataclass(frozen=True, slots=True)
class FileRow:
    path: str
    mtime_ns: int
    url: str | None
    article_json: str | None
    stored: StoredArticle | None = None  # when this batch read the file

    def stored_form(self, rules: FeedRules) -> StoredArticle:
        assert self.article_json is not None
        return self.stored or StoredArticle.from_json(self.article_json, rules)


@dataclass(frozen=True, slots=True)
class ItemRow:
    guid: str
    url: str
    path: str
    date: str
    fingerprint: str
    feeds: str  # the feeds it is listed in, one per line
    article_json: str | None  # the version listed, for the title of a leaving article
    modified: str | None = None  # when readers last saw it change (None: never edited)


Winners = dict[str, tuple[FileRow, StoredArticle]]


@dataclass(slots=True)
class FilesDecided:
    """The first round: the file rows as they will be, the items listed before, the winners."""

    changes: Sequence[FileChange]
    new_files: dict[str, FileRow | None]  # None: the file is gone
    before: dict[str, ItemRow]  # guid -> the item as listed before this batch
    after: Winners  # url -> the file that speaks for it, if published


@dataclass(slots=True)
class ItemsDecided:
    """The second round: the rows to write (each sorted: inserts in key order touch each
    index page once per batch, not once per row)."""

    listed: list[tuple[str]]  # items listed before: their rows go
    memberships_gone: list[tuple[str, str, str]]
    identity_rows: list[tuple[str, str, str, str, str | None]]
    item_rows: list[tuple[str, str, str, str, str, str, str | None]]
    member_rows: list[tuple[str, str, str]]


def write_files(db: Connection, files: FilesDecided, run: SyncRun) -> None:
    """Write the file rows (and free the identities of files gone)."""
    changes, new_files = files.changes, files.new_files
    gone = [(path,) for path, row in new_files.items() if row is None]
    db.executemany("DELETE FROM files WHERE path = ?", gone)
    db.executemany("UPDATE identities SET path = NULL WHERE path = ?", gone)
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
    db.executemany(
        "INSERT INTO files (path, size, mtime_ns, url, article, error) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (path) DO UPDATE SET size = excluded.size, "
        "mtime_ns = excluded.mtime_ns, url = excluded.url, article = excluded.article, "
        "error = excluded.error",
        upserts,
    )
    run.wrote("files", (key for row in upserts for key in row[::3]))  # path, url


class MemberRows:
    """The membership rows a sync adds, held back and inserted in long sorted runs: at most
    `limit` rows at a time, and the rest as it ends.

    Each batch's rows fall all over the one b-tree (hundreds of feeds, dates of every year),
    so inserted batch by batch each row cost a walk to a random leaf, more the bigger the
    tree: a cold build of 100,000 articles spent a sixth of its sync there. A long sorted
    run visits the leaves in order. Nothing reads memberships while a sync runs, so holding
    them back changes no decision; a row a later batch takes away again is dropped here.
    """

    __slots__ = ("_added", "_gone")
    # 100,000 rows held take about 10 MB (the whole of a 300,000-article sync's: 70 MB).
    limit = 100_000

    def __init__(self) -> None:
        self._added: list[tuple[str, str, str]] = []
        # Rows taken away since they were last added (held back, or already stored).
        self._gone: set[tuple[str, str, str]] = set()

    def add(self, db: Connection, rows: list[tuple[str, str, str]]) -> None:
        if self._gone:
            self._gone.difference_update(rows)
        self._added.extend(rows)
        if len(self._added) >= self.limit:
            self.write(db)

    def remove(self, db: Connection, rows: list[tuple[str, str, str]]) -> None:
        """Take rows away: from the table (stored before this sync), and from those held."""
        db.executemany("DELETE FROM memberships WHERE feed = ? AND date = ? AND guid = ?", rows)
        self._gone.update(rows)

    def write(self, db: Connection) -> None:
        """Insert the rows held (each once: a row added, removed and added again is one)."""
        added, gone = self._added, self._gone
        added.sort()  # batch by batch already sorted: the sort merges the runs
        rows = [r for i, r in enumerate(added) if r not in gone and (i == 0 or r != added[i - 1])]
        db.executemany("INSERT INTO memberships (feed, date, guid) VALUES (?, ?, ?)", rows)
        self._added, self._gone = [], set()


class SyncRun:
    """What the batches of one sync share: the memberships held back until it ends, and, for
    a sync that began with no files, items or identities (a first build), every key it wrote.

    Such a sync can find in those tables only what it wrote itself, so a lookup of any other
    key (a new article's path, URL or GUID: at a first build, nearly all of them) is skipped
    rather than sent: each was a walk to a random leaf of an index, more the bigger it grew.
    """

    __slots__ = ("_written", "members")

    def __init__(self, db: Connection) -> None:
        self.members = MemberRows()
        empty = not any(
            db.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone()
            for table in ("files", "items", "identities")
        )
        # Per table ("files"; "items", whose keys are its identities' too): paths, URLs and
        # GUIDs together, as a superset of each column's keys is enough.
        self._written: dict[str, set[str]] | None = (
            {"files": set(), "items": set()} if empty else None
        )

    def could_be_stored(self, table: str, keys: Collection[str]) -> Collection[str]:
        """The keys among `keys` that a lookup in `table` ("files", or "items" for items
        and identities) could find: all of them, unless the sync began on empty tables."""
        if self._written is None:
            return keys
        written = self._written[table]
        return [k for k in keys if k in written]

    def wrote(self, table: str, keys: Iterable[str | None]) -> None:
        if self._written is not None:
            self._written[table].update(k for k in keys if k is not None)


def write_items(db: Connection, items: ItemsDecided, run: SyncRun) -> None:
    """Write what `decide_items` decided (the memberships are held by `run`)."""
    identity_rows, item_rows = items.identity_rows, items.item_rows
    db.executemany("DELETE FROM items WHERE guid = ?", items.listed)
    run.members.remove(db, items.memberships_gone)
    # Identities first give up the paths their articles left, so paths stay unique.
    held = set(run.could_be_stored("items", [r[2] for r in identity_rows]))
    db.executemany(
        "UPDATE identities SET path = NULL WHERE path = ? AND guid != ?",
        [(r[2], r[0]) for r in identity_rows if r[2] in held],
    )
    # An identity's and its item's keys are the same: its GUID, URL and path.
    run.wrote("items", (key for row in identity_rows for key in row[:3]))
    db.executemany(
        "INSERT INTO identities (guid, url, path, first_published, modified) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (guid) DO UPDATE SET url = excluded.url, "
        "path = excluded.path, modified = excluded.modified",
        identity_rows,
    )
    db.executemany(
        "INSERT INTO items (guid, url, path, date, fingerprint, feeds, modified) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        item_rows,
    )
    run.members.add(db, items.member_rows)
