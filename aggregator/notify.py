"""Change events → sinks. The first sink is the log: one line per change.

A sink is any callable taking one event. A sink that raises is logged and skipped; it never
breaks a build, and the other sinks still get every event.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import fields
from datetime import datetime
from typing import Any

from aggregator.model import (
    ArticleAdded,
    ArticleRejected,
    ArticleReleased,
    ArticleRemoved,
    ArticleScheduled,
    ArticleUnpublished,
    ArticleUpdated,
    BuildFinished,
    ChangeEvent,
    DuplicateUrl,
    FeedKey,
    FeedUnchanged,
    FeedWritten,
    HubPinged,
    HubPingFailed,
    WriteFailed,
)

Sink = Callable[[ChangeEvent], None]

LOGGER = logging.getLogger("aggregator")


def _feeds(keys: Sequence[FeedKey]) -> str:
    return ", ".join(str(k) for k in keys) or "no feed"


def describe(event: ChangeEvent) -> str:
    """The log line of an event: what changed, which file, which article, which feeds."""
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
            line = f"updated {event.source}: {event.title!r} in {_feeds(event.feeds)}"
            if event.entered:
                line += f"; entered {_feeds(event.entered)}"
            if event.left:
                line += f"; left {_feeds(event.left)}"
            return line
        case ArticleUnpublished():
            return f"unpublished {event.source}: {event.title!r} left {_feeds(event.feeds)}"
        case ArticleRemoved():
            return f"removed {event.source}: {event.title!r} left {_feeds(event.feeds)}"
        case ArticleRejected():
            kept = "; its last good version stays listed" if event.kept_previous else ""
            return f"rejected {event.source}: {event.reason}{kept}"
        case DuplicateUrl():
            return (
                f"duplicate webUrl {event.url}: listed from {event.winner} (newest), "
                f"not from {', '.join(event.losers)}"
            )
        case FeedWritten():
            return (
                f"feed written {event.feed}: {event.added} added, {event.updated} updated, "
                f"{event.removed} removed, {event.items} items"
            )
        case FeedUnchanged():
            return f"feed unchanged {event.feed}"
        case WriteFailed():
            return f"write failed {event.path}: {event.reason}"
        case BuildFinished():
            return (
                f"build finished in {event.seconds:.3f} s: {event.read} read, "
                f"{event.published} published, {event.rejected} rejected, "
                f"{event.written} feeds written, {event.unchanged} unchanged"
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


def to_record(event: ChangeEvent) -> dict[str, Any]:
    """The event as plain JSON-ready data: `event` (its kind) and its fields."""
    record: dict[str, Any] = {"event": event.kind}
    for f in fields(event):
        record[f.name] = _plain(getattr(event, f.name))
    return record


def _plain(value: object) -> object:
    if isinstance(value, FeedKey):
        return str(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _level(event: ChangeEvent) -> int:
    if isinstance(event, HubPingFailed):
        return logging.ERROR if event.given_up else logging.WARNING
    if isinstance(event, ArticleRejected | WriteFailed):
        return logging.WARNING
    if isinstance(event, DuplicateUrl):
        return logging.WARNING
    if isinstance(event, FeedUnchanged):
        return logging.DEBUG
    return logging.INFO


# Item-level events: one line each for a live change, counted in a catch-up summary.
_ITEM_EVENTS = (
    ArticleAdded,
    ArticleScheduled,
    ArticleReleased,
    ArticleUpdated,
    ArticleUnpublished,
    ArticleRemoved,
    FeedWritten,
    FeedUnchanged,
)


class LogSink:
    """Logs each event as one line; the event's data rides along for JSON logs."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger

    def __call__(self, event: ChangeEvent) -> None:
        level = _level(event)
        # A cold build makes one event per article: format only what will be shown.
        if self.logger.isEnabledFor(level):
            self.logger.log(level, describe(event), extra={"change": to_record(event)})

    def catch_up(self, events: Sequence[ChangeEvent]) -> None:
        """The daemon's first scan, which publishes whatever changed while it was stopped:
        one summary line instead of one per article and feed (a cold start on 2,000 files
        made 1,662 lines); problems (rejections, clashes, failed writes) keep their lines."""
        counts = {kind.kind: 0 for kind in _ITEM_EVENTS}
        finished = []
        for event in events:
            if isinstance(event, _ITEM_EVENTS):
                counts[event.kind] += 1
            elif isinstance(event, BuildFinished):
                finished.append(event)
            else:
                self(event)
        if self.logger.isEnabledFor(logging.INFO):
            fields = {
                "added": counts["article_added"],
                "updated": counts["article_updated"],
                "unpublished": counts["article_unpublished"],
                "removed": counts["article_removed"],
                "released": counts["article_released"],
                "scheduled": counts["article_scheduled"],
                "feeds_written": counts["feed_written"],
                "feeds_unchanged": counts["feed_unchanged"],
            }
            message = (
                "catch-up scan: {added} added, {updated} updated, {unpublished} unpublished, "
                "{removed} removed, {released} released, {scheduled} scheduled; "
                "{feeds_written} feeds written, {feeds_unchanged} unchanged "
                "(each change is logged from now on)"
            ).format(**fields)
            self.logger.info(message, extra={"change": {"event": "catch_up", **fields}})
        for event in finished:
            self(event)


def log_sink(logger: logging.Logger = LOGGER) -> LogSink:
    """A sink that logs each event as one line (and can summarise a catch-up scan)."""
    return LogSink(logger)


def lifecycle(event: str, **fields: object) -> dict[str, Any]:
    """`extra=` for a daemon lifecycle log line (watching, stopping, stopped): the JSON
    formatter gives it an `event` field like a change's, so log shippers can match it."""
    return {"change": {"event": event, **fields}}


class Notifier:
    """Hands every event to every sink, in order; a failing sink is logged, never raised."""

    def __init__(self, sinks: Iterable[Sink] = ()) -> None:
        self.sinks = list(sinks) or [log_sink()]

    def publish(self, events: Iterable[ChangeEvent], *, catch_up: bool = False) -> None:
        """Deliver a build's events. `catch_up`: the daemon's first scan; log sinks then
        write a summary, other sinks still get every event."""
        events = list(events)
        for sink in self.sinks:
            if catch_up and isinstance(sink, LogSink):
                try:
                    sink.catch_up(events)
                except Exception:
                    LOGGER.exception("notification sink %r failed on the catch-up", sink)
                continue
            for event in events:
                try:
                    sink(event)
                except Exception:
                    LOGGER.exception("notification sink %r failed on %s", sink, event.kind)


class JsonFormatter(logging.Formatter):
    """JSON lines: time, level, message, and a change event's fields when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created).astimezone().isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        change = getattr(record, "change", None)
        if isinstance(change, dict):
            data.update(change)
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


def configure_logging(level: str, fmt: str) -> None:
    """Log to stderr as plain text or JSON lines (systemd's journal takes either)."""
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
