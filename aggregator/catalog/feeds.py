"""What the feeds list: the newest items of a feed, counts, the items a cut-off releases,
the feeds as last written, and the memberships decided again when the feed rules change.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from aggregator.catalog.base import storage_errors
from aggregator.catalog.pending import PendingMixin
from aggregator.catalog.records import (
    FeedRecord,
    article_from_json,
    format_date,
    lower,
    parse_date,
    upper,
)
from aggregator.catalog.schema import PENDING_FEEDS, PENDING_INDEXES
from aggregator.membership import FeedRules, feeds_of
from aggregator.model import Article, FeedItem, FeedKey

if TYPE_CHECKING:
    from aggregator.catalog.owed_records import DueItem


class FeedsMixin(PendingMixin):
    """Items, memberships and feed records."""

    @storage_errors
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
            "SELECT m.guid, m.date, i.path, f.article, i.modified FROM memberships m "
            "JOIN items i ON i.guid = m.guid JOIN files f ON f.path = i.path "
            "WHERE m.feed = ? AND m.date <= ? AND m.date > ? "
            "ORDER BY m.date DESC, m.guid DESC LIMIT ?",
            (str(key), upper(until), lower(since), limit),
        ).fetchall()
        items = []
        for guid, date, path, article_json, modified in rows:
            article = cache.get(path) if cache is not None else None
            if article is None:
                article = article_from_json(article_json)
                if cache is not None:
                    cache[path] = article
            edited = parse_date(modified) if modified else None
            items.append(FeedItem(guid, parse_date(date), article, edited))
        return items

    @storage_errors
    def feed_record(self, key: FeedKey) -> FeedRecord | None:
        """The feed as it was last written, or None if it never was."""
        row = self._db.execute(
            "SELECT name, updated, guids FROM feeds WHERE feed = ?",
            (self._render_keys.stored(str(key)),),
        ).fetchone()
        if row is None:
            return None
        return FeedRecord(key, row[0], parse_date(row[1]), tuple(json.loads(row[2])))

    @storage_errors
    def feed_records(self) -> list[FeedRecord]:
        """Every feed ever written, in path order."""
        where, params = self._render_keys.where("feed")
        rows = self._db.execute(
            f"SELECT feed, name, updated, guids FROM feeds{where} ORDER BY feed", params
        )
        local = self._render_keys.local
        return [
            FeedRecord(FeedKey.parse(local(f)), t, parse_date(u), tuple(json.loads(g)))
            for f, t, u, g in rows
        ]

    @storage_errors
    def feed_sizes(self) -> list[tuple[FeedKey, str, int, datetime]]:
        """Every feed ever written, in path order: (key, name, how many items it listed,
        when it was updated), what the indexes show, counted by the database rather than
        by decoding every feed's GUIDs (`feed_records`) on each build that writes one."""
        where, params = self._render_keys.where("feed")
        rows = self._db.execute(
            f"SELECT feed, name, json_array_length(guids), updated FROM feeds{where} "
            "ORDER BY feed",
            params,
        )
        local = self._render_keys.local
        return [(FeedKey.parse(local(f)), t, int(n), parse_date(u)) for f, t, n, u in rows]

    @storage_errors
    def feed_names(self) -> dict[FeedKey, str | None]:
        """Every feed ever written, in path order, with its name as last written, or None if
        it then listed nothing: what the render stage chooses by, without decoding every
        feed's GUIDs (`feed_records`) when it renders nothing. The GUIDs are stored by
        `json.dumps`, so a feed that listed nothing has exactly `[]`."""
        where, params = self._render_keys.where("feed")
        rows = self._db.execute(
            f"SELECT feed, name, guids <> '[]' FROM feeds{where} ORDER BY feed", params
        )
        local = self._render_keys.local
        return {FeedKey.parse(local(f)): name if listed else None for f, name, listed in rows}

    @storage_errors
    def feed_count(self) -> int:
        """How many feeds were ever written (this node's), without reading them."""
        where, params = self._render_keys.where("feed")
        (count,) = self._db.execute(f"SELECT count(*) FROM feeds{where}", params).fetchone()
        return int(count)

    @storage_errors
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
            (upper(until),),
        )
        counts = {FeedKey.parse(feed): int(count) for feed, count in rows}
        for key, start in (since or {}).items():
            (count,) = self._db.execute(
                "SELECT count(*) FROM memberships WHERE feed = ? AND date <= ? AND date > ?",
                (str(key), upper(until), format_date(start)),
            ).fetchone()
            counts[key] = int(count)
        return counts

    @storage_errors
    def published_count(self, until: datetime | None = None) -> int:
        """How many items the feeds list (published articles, one per webUrl), counting
        only those dated at or before `until` (the others are embargoed)."""
        (items,) = self._db.execute(
            "SELECT count(*) FROM items WHERE date <= ?", (upper(until),)
        ).fetchone()
        return int(items)

    @storage_errors
    def falling_due(self, after: datetime | None, until: datetime | None) -> list[DueItem]:
        """Items dated in (`after`, `until`]: those a cut-off moving from one to the other
        releases (or, moving back, hides again). None: no bound on that side."""
        rows = self._db.execute(
            "SELECT i.guid, i.path, i.url, i.feeds, f.article FROM items i "
            "JOIN files f ON f.path = i.path WHERE i.date > ? AND i.date <= ? ORDER BY i.date",
            (lower(after), upper(until)),
        ).fetchall()
        if not rows:  # nearly every build
            return []
        from aggregator.catalog.owed_records import DueItem

        due = []
        for guid, path, url, feeds, article_json in rows:
            title = json.loads(article_json)["title"] if article_json else url
            keys = tuple(FeedKey.parse(name) for name in feeds.split("\n") if name)
            due.append(DueItem(guid, path, title, url, keys))
        return due

    @storage_errors
    def next_due(self, after: datetime) -> datetime | None:
        """The earliest item date later than `after` (the next embargo to lift), if any."""
        (date,) = self._db.execute(
            "SELECT min(date) FROM items WHERE date > ?", (format_date(after),)
        ).fetchone()
        return None if date is None else parse_date(date)

    @storage_errors
    def lists_between(self, key: FeedKey, after: datetime, until: datetime) -> bool:
        """Whether a feed has an item dated in (`after`, `until`] (one b-tree probe)."""
        row = self._db.execute(
            "SELECT 1 FROM memberships WHERE feed = ? AND date > ? AND date <= ? LIMIT 1",
            (str(key), format_date(after), format_date(until)),
        ).fetchone()
        return row is not None

    @storage_errors
    def oldest_after(self, key: FeedKey, after: datetime) -> datetime | None:
        """The oldest date of a feed's items dated later than `after` (one b-tree probe)."""
        (date,) = self._db.execute(
            "SELECT min(date) FROM memberships WHERE feed = ? AND date > ?",
            (str(key), format_date(after)),
        ).fetchone()
        return None if date is None else parse_date(date)

    @storage_errors
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

    @storage_errors
    def forget_feeds(self, keys: Collection[FeedKey]) -> None:
        """Drop feeds that no longer exist (a config feed removed): their record, their
        memberships (already none after `reassign_feeds`) and any pending render."""
        if not keys:
            return
        names = {str(k) for k in keys}
        with self.transaction():
            self._db.executemany(
                "DELETE FROM feeds WHERE feed = ?", [(self._render_keys.stored(n),) for n in names]
            )
            self._db.executemany("DELETE FROM memberships WHERE feed = ?", [(n,) for n in names])
            pending = {str(k) for k in self.pending_feeds()} - names
            self.set_meta(PENDING_FEEDS, json.dumps(sorted(pending)))
            self.set_meta(PENDING_INDEXES, "1")  # they list the feeds removed
