"""A sync batch's rows: the file and item rows it reads, what each of its two rounds decided
(`FilesDecided`, `ItemsDecided`), and the SQL that writes a decision (`write_files`,
`write_items`).

`SyncBatch` (sync.py) decides; this module only holds and writes the result, so the
decisions can be read without the SQL and the SQL checked without the decisions.
"""

from __future__ import annotations

from collections.abc import Sequence
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


def write_files(db: Connection, files: FilesDecided) -> None:
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


def write_items(db: Connection, items: ItemsDecided) -> None:
    """Write what `decide_items` decided."""
    identity_rows, item_rows, member_rows = (
        items.identity_rows,
        items.item_rows,
        items.member_rows,
    )
    db.executemany("DELETE FROM items WHERE guid = ?", items.listed)
    db.executemany(
        "DELETE FROM memberships WHERE feed = ? AND date = ? AND guid = ?",
        items.memberships_gone,
    )
    # Identities first give up the paths their articles left, so paths stay unique.
    db.executemany(
        "UPDATE identities SET path = NULL WHERE path = ? AND guid != ?",
        [(r[2], r[0]) for r in identity_rows],
    )
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
    db.executemany("INSERT INTO memberships (feed, date, guid) VALUES (?, ?, ?)", member_rows)
