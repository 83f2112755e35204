"""What a build shows when: the embargo cut-off (an item dated later is not listed yet) and
the time windows of windowed feeds (an item older than the window is no longer listed).

`Visibility` marks the feeds the clock alone changed since the last build, and says when that
next happens, so the daemon can build then.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from aggregator.catalog import Catalog
from aggregator.events import ArticleReleased
from aggregator.model import FeedKey
from aggregator.output import PlanSettings

if TYPE_CHECKING:
    from aggregator.catalog import DueItem


class Visibility:
    """The embargo and the windows of one catalog, under one set of settings."""

    def __init__(self, catalog: Catalog, settings: PlanSettings, *, embargo: bool) -> None:
        self.catalog = catalog
        self.settings = settings
        self.embargo = embargo

    def until(self, now: datetime) -> datetime | None:
        """The latest date visible at the cut-off `now` (None: every date, no embargo)."""
        return now if self.embargo else None

    def window_starts(self, now: datetime) -> dict[FeedKey, datetime]:
        """The oldest date each windowed feed lists at the cut-off `now`."""
        return {key: now - length for key, length in self.settings.windows()}

    def advance(self, now: datetime, synced: set[str]) -> list[ArticleReleased]:
        """Mark the feeds whose visible items differ between the last build's cut-off and
        this one's: embargoed items that fell due, items that aged out of a window.

        Stored as pending with the new cut-off in one transaction, so a crash cannot lose a
        release. Returns a `released` event for each item that fell due (not for those
        this build's sync already reported).
        """
        catalog = self.catalog
        previous = catalog.cutoff()
        embargo_before = catalog.embargo()
        # Before the first build of this version every item was listed, whatever its date.
        visible_before = previous if embargo_before and previous is not None else None
        visible_now = self.until(now)
        dirty: set[FeedKey] = set()
        released: list[ArticleReleased] = []
        if visible_before != visible_now:
            low, high = _ordered(visible_before, visible_now)
            for item in catalog.falling_due(low, high):
                dirty.update(item.feeds)
                if high == visible_now and item.guid not in synced:
                    released.append(_released(item))
        for key, length in self.settings.windows():
            if previous is None or catalog.lists_between(
                key, min(previous, now) - length, max(previous, now) - length
            ):
                dirty.add(key)
        with catalog.transaction():
            catalog.add_pending(dirty)
            catalog.set_cutoff(now)
            catalog.set_embargo(self.embargo)
        return released

    def next_due(self, now: datetime) -> datetime | None:
        """When a feed next changes by the clock alone: the next embargoed date, or the
        next item to age out of a windowed feed."""
        candidates = []
        if self.embargo:
            candidates.append(self.catalog.next_due(now))
        for key, length in self.settings.windows():
            oldest = self.catalog.oldest_after(key, now - length)
            if oldest is not None:
                candidates.append(oldest + length)
        return min((c for c in candidates if c is not None), default=None)


def _ordered(a: datetime | None, b: datetime | None) -> tuple[datetime | None, datetime | None]:
    """(earlier, later); None is the end of time (no embargo: everything visible)."""
    if a is None:
        return b, None
    if b is None:
        return a, None
    return min(a, b), max(a, b)


def _released(item: DueItem) -> ArticleReleased:
    return ArticleReleased(item.path, item.title, item.url, item.feeds)
