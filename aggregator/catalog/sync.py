"""One batch of file changes applied to the catalog: which file speaks for each webUrl, which
GUID each item keeps, what entered or left which feed, and the rows that says to write.

`SyncBatch` decides without writing (it only reads what the changes touch) and then writes,
in two rounds: the files first, then the items, whose GUIDs depend on the files written.
The rows each round decides, and the SQL that writes them, are `rows.py`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from aggregator.catalog.records import (
    FileChange,
    StoredArticle,
    SyncResult,
    format_date,
    parse_date,
    upper,
    visible_part,
)
from aggregator.catalog.rows import (
    FileRow,
    FilesDecided,
    ItemRow,
    ItemsDecided,
    SyncRun,
    Winners,
    write_files,
    write_items,
)
from aggregator.catalog.schema import Connection, chunks, marks
from aggregator.events import (
    ArticleAdded,
    ArticleMoved,
    ArticleRejected,
    ArticleRemoved,
    ArticleScheduled,
    ArticleUnpublished,
    ArticleUpdated,
    DuplicateUrl,
)
from aggregator.membership import FeedRules
from aggregator.model import FeedKey


class SyncBatch:
    """One batch: load what the changes touch, decide winners and GUIDs, write, diff.

    `decide_files` and `decide_items` only read (and fill `result`); the module's
    `write_files` and `write_items` run the SQL they decided.
    """

    def __init__(
        self,
        db: Connection,
        now: Callable[[], datetime],
        rules: FeedRules,
        cutoff: datetime | None,
        run: SyncRun,
    ) -> None:
        self.db = db
        self.run_state = run  # what the sync's batches share
        self.now = now
        self.rules = rules
        self.cutoff = upper(cutoff)
        self.result = SyncResult()
        self._keys: dict[str, FeedKey] = {}

    def _select(self, table: str, sql: str, keys: Collection[str]) -> list[Any]:
        """Rows of `sql` for `keys`, in `table` ("files"; "items", for identities too)."""
        rows: list[Any] = []
        for chunk in chunks(self.run_state.could_be_stored(table, keys)):
            rows.extend(self.db.execute(sql.format(marks=marks(len(chunk))), chunk))
        return rows

    def run(self, changes: Sequence[FileChange]) -> SyncResult:
        """Decide and write the batch (files, then items); what it did."""
        files = self.decide_files(changes)
        write_files(self.db, files, self.run_state)
        write_items(self.db, self.decide_items(files), self.run_state)
        return self.result

    def decide_files(self, changes: Sequence[FileChange]) -> FilesDecided:
        """The files after the batch, and who wins each webUrl they touch."""
        result = self.result
        changes = recordable(changes, result)
        paths = {c.path for c in changes}
        old_files = {
            r[0]: FileRow(*r)
            for r in self._select(
                "files",
                "SELECT path, mtime_ns, url, article FROM files WHERE path IN ({marks})",
                paths,
            )
        }

        # The file rows as they will be after this batch.
        new_files: dict[str, FileRow | None] = {}
        affected_urls: set[str] = set()
        for change in changes:
            old = old_files.get(change.path)
            if old is not None and old.url is not None:
                affected_urls.add(old.url)
            if change.stat is None:
                new_files[change.path] = None
            elif change.article is not None:
                stored = change.article
                new_files[change.path] = FileRow(
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
                new_files[change.path] = FileRow(
                    change.path,
                    change.stat.mtime_ns,
                    old.url if old and kept else None,
                    old.article_json if old and kept else None,
                )

        # Other files that share a URL with a changed one compete for the same item.
        rivals: dict[str, list[FileRow]] = {}
        for row in self._select(
            "files",
            "SELECT path, mtime_ns, url, article FROM files WHERE url IN ({marks})",
            affected_urls,
        ):
            if row[0] not in paths:
                rivals.setdefault(row[2], []).append(FileRow(*row))
        for row in new_files.values():
            if row is not None and row.url is not None:
                rivals.setdefault(row.url, []).append(row)

        before = self._items_before(affected_urls, paths)
        return FilesDecided(changes, new_files, before, self._winners(affected_urls, rivals))

    def _items_before(self, urls: Collection[str], paths: Collection[str]) -> dict[str, ItemRow]:
        columns = "i.guid, i.url, i.path, i.date, i.fingerprint, i.feeds, f.article, i.modified"
        source = "items i LEFT JOIN files f ON f.path = i.path"
        rows = self._select(
            "items", f"SELECT {columns} FROM {source} WHERE i.url IN ({{marks}})", urls
        )
        rows += self._select(
            "items", f"SELECT {columns} FROM {source} WHERE i.path IN ({{marks}})", paths
        )
        return {r[0]: ItemRow(*r) for r in rows}

    def _winners(self, urls: Collection[str], rivals: dict[str, list[FileRow]]) -> Winners:
        """url → the file that speaks for it (newest mtime; then first path), if published."""
        winners: Winners = {}
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

    def _assign_guids(self, before: dict[str, ItemRow], after: Winners) -> dict[str, str]:
        """url → GUID. A GUID, once given, stays with its article through edits and moves."""
        guids: dict[str, str] = {}
        taken: set[str] = set()
        by_path = dict(
            self._select(
                "items",
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
                "items", "SELECT guid FROM identities WHERE guid IN ({marks})", pending
            )
        }
        orphans: dict[str, list[str]] = {}
        for guid, url in self._select(
            "items",
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
                guid = mint(url, taken, used, self._guid_taken)
            guids[url] = guid
            taken.add(guid)
        return guids

    def _guid_taken(self, guid: str) -> bool:
        return bool(
            self._select("items", "SELECT 1 FROM identities WHERE guid IN ({marks})", [guid])
        )

    def _key(self, name: str) -> FeedKey:
        key = self._keys.get(name)
        if key is None:
            key = self._keys[name] = FeedKey.parse(name)
        return key

    def _left(
        self,
        guid: str,
        old: ItemRow,
        old_feeds: dict[str, set[str]],
        new_files: dict[str, FileRow | None],
    ) -> list[str]:
        """An item listed before that no file speaks for now: its event (removed with its
        file, else unpublished); the feeds it left, to render again."""
        names = sorted(old_feeds.get(guid, ())) if old.date <= self.cutoff else []
        keys = tuple(self._key(name) for name in names)  # an embargoed item left none
        self.result.changed_guids.add(guid)
        title = json.loads(old.article_json)["title"] if old.article_json else old.url
        if old.path in new_files and new_files[old.path] is None:
            self.result.events.append(ArticleRemoved(old.path, title, old.url, keys))
        else:
            self.result.events.append(ArticleUnpublished(old.path, title, old.url, keys))
        return names

    def decide_items(self, files: FilesDecided) -> ItemsDecided:
        """The GUIDs of the winners, the events of what entered, changed or left a feed, the
        feeds to render again, and the item rows to write."""
        before, after, new_files = files.before, files.after, files.new_files
        result = self.result
        guids = self._assign_guids(before, after)
        after_by_guid = {guids[url]: pair for url, pair in after.items()}

        old_feeds = {guid: set(item.feeds.split("\n")) for guid, item in before.items()}

        known = {
            guid: (first, modified)
            for guid, first, modified in self._select(
                "items",
                "SELECT guid, first_published, modified FROM identities WHERE guid IN ({marks})",
                after_by_guid,
            )
        }
        now_text = format_date(self.now())

        identity_rows: list[tuple[str, str, str, str, str | None]] = []
        item_rows: list[tuple[str, str, str, str, str, str, str | None]] = []
        member_rows: list[tuple[str, str, str]] = []
        dirty: set[str] = set()
        for guid, (row, stored) in after_by_guid.items():
            first, known_modified = known.get(guid, (now_text, None))
            date = stored.date or first
            old = before.get(guid)
            modified = edited_at(old, row, stored) if old is not None else known_modified
            identity_rows.append((guid, stored.url, row.path, first, modified))
            item_rows.append(
                (
                    guid,
                    stored.url,
                    row.path,
                    date,
                    stored.fingerprint,
                    "\n".join(stored.feeds),
                    modified,
                )
            )
            member_rows.extend((name, date, guid) for name in stored.feeds)
            old_set = old_feeds.get(guid, set())
            keys = tuple(self._key(name) for name in stored.feeds)
            if old is not None and (
                old.fingerprint == stored.fingerprint and old.date == date and old.path == row.path
            ):
                continue  # touched, not changed: no feed needs rendering
            was_listed = old is not None and old.date <= self.cutoff
            if was_listed and old is not None and old.path != row.path and date <= self.cutoff:
                # The same article (its webUrl, so its GUID) under another path: a move.
                result.events.append(moved(self._key, old.path, row.path, stored, old_set))
            elif date > self.cutoff:
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

        for guid, old in before.items():
            if guid not in after_by_guid:
                dirty.update(self._left(guid, old, old_feeds, new_files))
        result.dirty_feeds.update(self._key(name) for name in dirty)

        # Inserts in key order touch each index page once per batch, not once per row.
        identity_rows.sort()
        item_rows.sort()
        member_rows.sort()
        return ItemsDecided(
            # Only items listed before can have rows (a GUID new to `after` has none yet).
            listed=[(guid,) for guid in before],
            memberships_gone=[
                (feed, item.date, guid) for guid, item in before.items() for feed in old_feeds[guid]
            ],
            identity_rows=identity_rows,
            item_rows=item_rows,
            member_rows=member_rows,
        )


def moved(
    key: Callable[[str], FeedKey],
    old_path: str,
    path: str,
    stored: StoredArticle,
    old_feeds: set[str],
) -> ArticleMoved:
    """The event of an article listed under another path now (`key`: a feed's name parsed)."""
    return ArticleMoved(
        old_path,
        path,
        stored.title,
        stored.url,
        tuple(key(n) for n in stored.feeds),
        tuple(key(n) for n in stored.feeds if n not in old_feeds),
        tuple(key(n) for n in sorted(old_feeds.difference(stored.feeds))),
    )


def recordable(changes: Sequence[FileChange], result: SyncResult) -> Sequence[FileChange]:
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
            result.rejected += 1
            shown = change.path.encode("utf-8", "backslashreplace").decode("utf-8")
            result.events.append(
                ArticleRejected(
                    shown,
                    "the file name is not valid UTF-8, so it cannot be recorded:"
                    " rename the file (it is rejected at every build until then)",
                )
            )
    return kept


def edited_at(old: ItemRow, row: FileRow, stored: StoredArticle) -> str | None:
    """The item's `modified` after this sync: unchanged unless what a reader sees of it
    (`visible_part`) changed, and then the edited file's mtime, at least a whole second
    after the item's previous date or edit (so readers that trust Atom `<updated>` always
    see it move forward, even when a copy kept an older mtime).

    From the data only, never a clock: the row is shared by every node of a cluster, and
    the same files give the same value at every build."""
    if old.fingerprint == stored.fingerprint or old.article_json is None:
        return old.modified
    if visible_part(old.article_json) == visible_part(stored.json):
        return old.modified
    previous = parse_date(max(old.date, old.modified or ""))
    floor = previous.replace(microsecond=0) + timedelta(seconds=1)
    mtime = datetime.fromtimestamp(row.mtime_ns // 1_000_000_000, UTC)
    return format_date(max(mtime, floor))


def _storable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def mint(url: str, taken: set[str], used: set[str], guid_taken: Callable[[str], bool]) -> str:
    """The URL itself if free, else `url#2`, `url#3`, … (an id must never be reused).

    `taken`: given in this batch; `used`: known to be given before; `guid_taken` asks the
    catalog about any other candidate."""
    if url not in taken and url not in used:
        return url
    n = 2
    while True:
        candidate = f"{url}#{n}"
        if candidate not in taken and not guid_taken(candidate):
            return candidate
        n += 1
