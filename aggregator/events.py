"""Change events: immutable, hashable values. A build returns them in order; the notifier
turns them into log lines and the WebSub dispatcher into pings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from aggregator.model import FeedKey


@dataclass(frozen=True, slots=True)
class ArticleAdded:
    """A published article entered feeds for the first time (or again after it had left)."""

    kind: ClassVar[str] = "article_added"
    source: str
    title: str
    url: str
    feeds: tuple[FeedKey, ...]


@dataclass(frozen=True, slots=True)
class ArticleScheduled:
    """A published article dated in the future: held back from every feed until `due`.

    Also said when an edit moves a listed article's date into the future (it leaves its
    feeds until then).
    """

    kind: ClassVar[str] = "article_scheduled"
    source: str
    title: str
    url: str
    due: datetime
    feeds: tuple[FeedKey, ...]


@dataclass(frozen=True, slots=True)
class ArticleReleased:
    """A scheduled article's date came: it entered its feeds (readers see it as new)."""

    kind: ClassVar[str] = "article_released"
    source: str
    title: str
    url: str
    feeds: tuple[FeedKey, ...]


@dataclass(frozen=True, slots=True)
class ArticleUpdated:
    """A published article changed; `entered`/`left` list the feeds it moved into or out of."""

    kind: ClassVar[str] = "article_updated"
    source: str
    title: str
    url: str
    feeds: tuple[FeedKey, ...]
    entered: tuple[FeedKey, ...] = ()
    left: tuple[FeedKey, ...] = ()


@dataclass(frozen=True, slots=True)
class ArticleUnpublished:
    """An article's file now says `published: false` (or no longer says true): it left feeds."""

    kind: ClassVar[str] = "article_unpublished"
    source: str
    title: str
    url: str
    feeds: tuple[FeedKey, ...]


@dataclass(frozen=True, slots=True)
class ArticleRemoved:
    """An article's file was deleted (or moved out of the input): it left its feeds."""

    kind: ClassVar[str] = "article_removed"
    source: str
    title: str
    url: str
    feeds: tuple[FeedKey, ...]


@dataclass(frozen=True, slots=True)
class ArticleMoved:
    """An article's file was renamed or moved within the input (same webUrl, so same GUID):
    `entered`/`left` list the feeds it moved into or out of (none when only the path moved)."""

    kind: ClassVar[str] = "article_moved"
    old_source: str
    source: str
    title: str
    url: str
    feeds: tuple[FeedKey, ...]
    entered: tuple[FeedKey, ...] = ()
    left: tuple[FeedKey, ...] = ()


@dataclass(frozen=True, slots=True)
class ArticleRejected:
    """A file could not be read as an article. Its last good version (if any) stays listed."""

    kind: ClassVar[str] = "article_rejected"
    source: str
    reason: str
    kept_previous: bool = False


@dataclass(frozen=True, slots=True)
class DuplicateUrl:
    """Two files give the same webUrl: one item is listed, from the newest file."""

    kind: ClassVar[str] = "duplicate_url"
    url: str
    winner: str
    losers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FeedWritten:
    """A feed's files were rewritten; counts are items added, updated and removed."""

    kind: ClassVar[str] = "feed_written"
    feed: FeedKey
    added: int
    updated: int
    removed: int
    items: int


@dataclass(frozen=True, slots=True)
class FeedUnchanged:
    """A feed was re-rendered and its bytes were the same: nothing was written."""

    kind: ClassVar[str] = "feed_unchanged"
    feed: FeedKey


@dataclass(frozen=True, slots=True)
class WriteFailed:
    """An output file could not be written; the previous file is intact."""

    kind: ClassVar[str] = "write_failed"
    path: str
    reason: str


@dataclass(frozen=True, slots=True)
class SourceUnreadable:
    """A folder below the input folder (`path`; "" is the input folder itself), or a file in
    it, could not be listed or looked at (no permission, a failing mount, the folder missing):
    nothing below it was withdrawn, the `kept` article files the catalog knew there stay
    listed as they were. A build that says this is not a full success."""

    kind: ClassVar[str] = "source_unreadable"
    path: str
    reason: str
    kept: int


@dataclass(frozen=True, slots=True)
class BuildFinished:
    """One build is over: what it read and wrote, and how long it took."""

    kind: ClassVar[str] = "build_finished"
    seconds: float
    read: int
    published: int
    rejected: int
    written: int
    unchanged: int


@dataclass(frozen=True, slots=True)
class HubPinged:
    """A WebSub hub accepted the news that a topic (one feed file's URL) has new bytes."""

    kind: ClassVar[str] = "hub_pinged"
    hub: str
    topic: str
    status: int


@dataclass(frozen=True, slots=True)
class HubPingFailed:
    """A hub could not be told. `retry_seconds`: when the next try comes (None: at the next
    run, or never when `given_up`, which happens once the change is an hour old)."""

    kind: ClassVar[str] = "hub_ping_failed"
    hub: str
    topic: str
    reason: str
    attempts: int
    retry_seconds: float | None = None
    given_up: bool = False


ChangeEvent = (
    ArticleAdded
    | ArticleMoved
    | ArticleScheduled
    | ArticleReleased
    | ArticleUpdated
    | ArticleUnpublished
    | ArticleRemoved
    | ArticleRejected
    | DuplicateUrl
    | FeedWritten
    | FeedUnchanged
    | WriteFailed
    | SourceUnreadable
    | BuildFinished
    | HubPinged
    | HubPingFailed
)


def pair_moves(events: Sequence[ChangeEvent]) -> list[ChangeEvent]:
    """`events` with each removal paired with an addition of the same webUrl (a file moved,
    its removal and its addition seen in two batches of one build) said as one `ArticleMoved`,
    in the addition's place; everything else as it was, in its order."""
    removed = {e.url: e for e in events if isinstance(e, ArticleRemoved)}
    added = {e.url for e in events if isinstance(e, ArticleAdded) and e.url in removed}
    if not added:
        return list(events)
    paired: list[ChangeEvent] = []
    for event in events:
        if isinstance(event, ArticleRemoved) and event.url in added:
            continue
        if isinstance(event, ArticleAdded) and event.url in added:
            old = removed[event.url]
            entered = tuple(k for k in event.feeds if k not in old.feeds)
            left = tuple(k for k in old.feeds if k not in event.feeds)
            paired.append(
                ArticleMoved(
                    old.source, event.source, event.title, event.url, event.feeds, entered, left
                )
            )
        else:
            paired.append(event)
    return paired
