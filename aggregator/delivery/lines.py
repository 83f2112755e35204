"""One change event as one log line: its words (`log_line`) and its level (`line_level`).

What changed, which file, which article, which feeds; outside strings made safe by
`logs.shown`. How lines are grouped (moves, failed writes, hubs, a catch-up) is `notify.py`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from aggregator.delivery.logs import shown, shown_paths
from aggregator.events import (
    ArticleAdded,
    ArticleMoved,
    ArticleRejected,
    ArticleReleased,
    ArticleRemoved,
    ArticleScheduled,
    ArticleUnpublished,
    ArticleUpdated,
    BuildFinished,
    ChangeEvent,
    DuplicateUrl,
    FeedUnchanged,
    FeedWritten,
    HubPinged,
    HubPingFailed,
    SourceUnreadable,
    WriteFailed,
)
from aggregator.model import FeedKey
from aggregator.words import counted


def _feeds(keys: Sequence[FeedKey]) -> str:
    return ", ".join(str(k) for k in keys) or "no feed"


def _crossed(entered: Sequence[FeedKey], left: Sequence[FeedKey]) -> str:
    """The feeds an edit or a move made an article enter and leave, as a line's suffix."""
    return (f"; entered {_feeds(entered)}" if entered else "") + (
        f"; left {_feeds(left)}" if left else ""
    )


def log_line(event: ChangeEvent) -> str:
    """The log line of an event: what changed, which file, which article, which feeds."""
    if hasattr(event, "source"):
        event = shown_paths(event)
    match event:
        case ArticleAdded():
            return f"added {event.source}: {event.title!r} to {_feeds(event.feeds)}"
        case ArticleScheduled():
            return (
                f"scheduled {event.source}: {event.title!r} for "
                f"{event.due.isoformat().replace('+00:00', 'Z')}, then in {_feeds(event.feeds)}"
            )
        case ArticleReleased():
            return f"released {event.source}: {event.title!r} to {_feeds(event.feeds)}"
        case ArticleUpdated():
            return (
                f"updated {event.source}: {event.title!r} in {_feeds(event.feeds)}"
                + _crossed(event.entered, event.left)
            )
        case ArticleMoved():
            return f"moved {event.old_source} to {event.source}: {event.title!r}" + _crossed(
                event.entered, event.left
            )
        case ArticleUnpublished():
            return f"unpublished {event.source}: {event.title!r} left {_feeds(event.feeds)}"
        case ArticleRemoved():
            return f"removed {event.source}: {event.title!r} left {_feeds(event.feeds)}"
        case ArticleRejected():
            kept = "; its last good version stays listed" if event.kept_previous else ""
            return f"rejected {event.source}: {event.reason}{kept}"
        case DuplicateUrl():
            return (
                f"duplicate webUrl {shown(event.url)}: listed from {shown(event.winner)} "
                f"(newest), not from {', '.join(shown(p) for p in event.losers)}"
            )
        case FeedWritten():
            return (
                f"feed written {event.feed}: {event.added} added, {event.updated} updated, "
                f"{event.removed} removed, {counted(event.items, 'item')}"
            )
        case FeedUnchanged():
            return f"feed unchanged {event.feed}"
        case WriteFailed():
            return f"write failed {shown(event.path)}: {shown(event.reason)}"
        case SourceUnreadable():
            where = f"folder {shown(event.path)}" if event.path else "the input folder"
            return (
                f"cannot list {where}: {shown(event.reason)}; its {event.kept} article file(s) "
                "stay listed as they were (a folder that cannot be listed is not a deleted "
                "one). Fix its permissions or mount; the next full scan picks up what changed"
            )
        case BuildFinished():
            return (
                f"build finished in {event.seconds:.3f} s: {event.read} read, "
                f"{event.published} published, {event.rejected} rejected, "
                f"{counted(event.written, 'feed')} written, {event.unchanged} unchanged"
            )
        case HubPinged():
            return f"hub pinged {event.hub}: {event.topic} (HTTP {event.status})"
        case HubPingFailed():
            line = f"hub ping failed {event.hub}: {event.topic}: {event.reason}"
            tries = "1 try" if event.attempts == 1 else f"{event.attempts} tries"
            if event.given_up:
                return f"{line}; given up after {tries} (the change is over an hour old)"
            if event.retry_seconds is not None:
                return f"{line}; retrying in {event.retry_seconds:g} s ({tries} so far)"
            return f"{line}; owed until the next run (aggregator build or run)"
    raise TypeError(f"not a change event: {event!r}")  # pragma: no cover


def line_level(event: ChangeEvent) -> int:
    """The level an event's own line is logged at: problems WARNING or ERROR, an
    unchanged feed DEBUG, the rest INFO."""
    if isinstance(event, ArticleRejected | WriteFailed):
        return logging.WARNING
    if isinstance(event, SourceUnreadable):
        return logging.ERROR
    if isinstance(event, DuplicateUrl):
        return logging.WARNING
    if isinstance(event, FeedUnchanged):
        return logging.DEBUG
    return logging.INFO
