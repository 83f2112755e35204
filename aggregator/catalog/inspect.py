"""Reading the catalog to explain it: one read-only snapshot, the records of files, items and
GUIDs by path or URL, an item's position in a feed, the items waiting for their date, and on a
shared catalog the leader. Nothing here writes; `aggregator status` and `explain` use it
beside a running daemon.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING

from aggregator.catalog.base import CatalogBase, storage_errors
from aggregator.catalog.records import format_date, lower, parse_date, upper
from aggregator.model import FeedKey

if TYPE_CHECKING:
    from aggregator.catalog.inspect_records import (
        FileRecord,
        IdentityRecord,
        ItemRecord,
        LeaderRecord,
    )

_FILE_COLUMNS = "path, size, mtime_ns, url, article, error"


class InspectMixin(CatalogBase):
    """Read-only questions about single articles and the daemon's catalog-side state."""

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """Read everything inside one read-only transaction: every answer is of the same
        moment, and nothing is locked against the writer (SQLite: a WAL read snapshot;
        PostgreSQL: REPEATABLE READ READ ONLY)."""
        with self._backend.boundary():
            self._db.execute(self._backend.begin_read)
        try:
            yield
        finally:
            with contextlib.suppress(*self._backend.quiet):
                self._db.execute("ROLLBACK")

    def _file(self, row: tuple[str, int, int, str | None, str | None, str | None]) -> FileRecord:
        from aggregator.catalog.inspect_records import FileRecord

        path, size, mtime_ns, url, article, error = row
        return FileRecord(self._keys.local(path), int(size), int(mtime_ns), url, article, error)

    @storage_errors
    def file_record(self, path: str) -> FileRecord | None:
        """One article file of this node (its path relative to the input), if known."""
        row = self._db.execute(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE path = ?", (self._keys.stored(path),)
        ).fetchone()
        return None if row is None else self._file(row)

    @storage_errors
    def files_with_url(self, url: str) -> list[FileRecord]:
        """Every file (of any node) whose last good version has this webUrl."""
        rows = self._db.execute(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE url = ? ORDER BY path", (url,)
        )
        return [self._file(row) for row in rows]

    @storage_errors
    def item_of(self, url: str) -> ItemRecord | None:
        """What the feeds list for a webUrl, if anything."""
        row = self._db.execute(
            "SELECT guid, url, path, date, feeds FROM items WHERE url = ?", (url,)
        ).fetchone()
        if row is None:
            return None
        from aggregator.catalog.inspect_records import ItemRecord

        guid, url, path, date, feeds = row
        keys = tuple(FeedKey.parse(name) for name in feeds.split("\n") if name)
        return ItemRecord(guid, url, self._keys.local(path), parse_date(date), keys)

    @storage_errors
    def identities(
        self, *, path: str | None = None, url: str | None = None
    ) -> list[IdentityRecord]:
        """The GUIDs handed out for a file of this node or for a webUrl, oldest first."""
        from aggregator.catalog.inspect_records import IdentityRecord

        rows = self._db.execute(
            "SELECT guid, url, path, first_published FROM identities "
            "WHERE path = ? OR url = ? ORDER BY first_published, guid",
            (None if path is None else self._keys.stored(path), url),
        )
        local = self._keys.local
        return [
            IdentityRecord(g, u, None if p is None else local(p), parse_date(f))
            for g, u, p, f in rows
        ]

    @storage_errors
    def position(
        self,
        key: FeedKey,
        date: datetime,
        guid: str,
        *,
        until: datetime | None,
        since: datetime | None,
    ) -> int:
        """Where an item stands in a feed (1: the newest) among the items visible at the
        cut-off `until` and after the window start `since`, in the order `newest` reads."""
        when = format_date(date)
        (before,) = self._db.execute(
            "SELECT count(*) FROM memberships WHERE feed = ? AND date <= ? AND date > ? "
            "AND (date > ? OR (date = ? AND guid > ?))",
            (str(key), upper(until), lower(since), when, when, guid),
        ).fetchone()
        return int(before) + 1

    @storage_errors
    def scheduled(self, after: datetime, limit: int) -> list[tuple[datetime, str, str, str]]:
        """The next `limit` items dated after `after` (embargoed until then), soonest first:
        (date, path, title, url)."""
        rows = self._db.execute(
            "SELECT i.date, i.path, i.url, f.article FROM items i "
            "JOIN files f ON f.path = i.path WHERE i.date > ? ORDER BY i.date, i.guid LIMIT ?",
            (format_date(after), limit),
        )
        found = []
        for date, path, url, article_json in rows:
            title = json.loads(article_json)["title"] if article_json else url
            found.append((parse_date(date), self._keys.local(path), str(title), url))
        return found

    @storage_errors
    def scheduled_count(self, after: datetime) -> int:
        """How many items are dated after `after`."""
        (count,) = self._db.execute(
            "SELECT count(*) FROM items WHERE date > ?", (format_date(after),)
        ).fetchone()
        return int(count)

    @storage_errors
    def leader(self) -> LeaderRecord | None:
        """The cluster's leader (None on SQLite, or before any node led)."""
        from aggregator.catalog.inspect_records import LeaderRecord

        if not self.shared:
            return None
        row = self._db.execute("SELECT node, epoch FROM cluster_leader WHERE id = 1").fetchone()
        if row is None or not row[0]:
            return None
        return LeaderRecord(str(row[0]), int(row[1]), self._backend.leader_lease_live())
