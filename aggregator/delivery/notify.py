"""Change events → sinks. The first sink is the log: one line per change.

A sink is any callable taking one event. A sink that raises is logged and skipped; it never
breaks a build, and the other sinks still get every event. An event's own line (its words
and level) is `lines.py`; here, how the log groups them.

WebSub ping results are the exception to one line per event: a hub that is down fails every
topic, so the log renders a hub's state instead (`_HubLog`): for `aggregator build`, one
line per hub and reason with the count; for the daemon, one line when a hub starts failing,
a summary at most every `HUB_SUMMARY_SECONDS` while it fails, one line when it recovers.
Each ping keeps its own line at DEBUG (with the event's data, for JSON logs).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aggregator.delivery.advice import write_advice
from aggregator.delivery.lines import line_level, log_line
from aggregator.delivery.logs import to_record
from aggregator.delivery.moves import move_groups, move_summary
from aggregator.events import (
    ArticleAdded,
    ArticleMoved,
    ArticleReleased,
    ArticleRemoved,
    ArticleScheduled,
    ArticleUnpublished,
    ArticleUpdated,
    BuildFinished,
    ChangeEvent,
    FeedUnchanged,
    FeedWritten,
    HubPinged,
    HubPingFailed,
    WriteFailed,
)
from aggregator.words import counted

Sink = Callable[[ChangeEvent], None]

LOGGER = logging.getLogger("aggregator")

# While a hub keeps failing, the daemon's log says so at most this often.
HUB_SUMMARY_SECONDS = 300.0
# Topics named in a hub line (the rest are counted).
HUB_EXAMPLES = 2


# Item-level events: one line each for a live change, counted in a catch-up summary.
_ITEM_EVENTS = (
    ArticleAdded,
    ArticleScheduled,
    ArticleReleased,
    ArticleUpdated,
    ArticleMoved,
    ArticleUnpublished,
    ArticleRemoved,
    FeedWritten,
    FeedUnchanged,
)


class LogSink:
    """Logs each event as one line; the event's data rides along for JSON logs.

    WebSub ping results are rendered per hub (`_HubLog`): each ping's own line is DEBUG.
    `live`: the daemon's sink, whose ping results come one at a time and are retried;
    `hub_summary_seconds`: how often it summarises a hub that keeps failing.
    """

    def __init__(
        self,
        logger: logging.Logger,
        *,
        live: bool = False,
        hub_summary_seconds: float = HUB_SUMMARY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self._hubs = _HubLog(logger, live, hub_summary_seconds, clock)

    def __call__(self, event: ChangeEvent) -> None:
        if isinstance(event, HubPinged | HubPingFailed):
            self._hubs.render([event])
        else:
            self._line(event)

    def publish(self, events: Sequence[ChangeEvent]) -> None:
        """A batch of events: the ping results among them are rendered together, and so
        are the failed writes."""
        pings: list[HubPinged | HubPingFailed] = []
        failed: list[WriteFailed] = []
        moved: list[ArticleMoved] = []
        for event in events:
            if isinstance(event, HubPinged | HubPingFailed):
                pings.append(event)
            elif isinstance(event, WriteFailed):
                failed.append(event)
            elif isinstance(event, ArticleMoved):
                moved.append(event)
            else:
                self._line(event)
        self._moves(moved)
        self._write_failures(failed)
        if pings:
            self._hubs.render(pings)

    def _moves(self, moved: Sequence[ArticleMoved]) -> None:
        """A folder renamed is one line, each file's at DEBUG; a file alone keeps its own."""
        for (old, new), group in move_groups(moved).items():
            if len(group) == 1 and not group[0].entered and not group[0].left:
                self._line(group[0])
                continue
            if self.logger.isEnabledFor(logging.DEBUG):
                for event in group:
                    self.logger.debug(log_line(event), extra={"change": to_record(event)})
            message, data = move_summary(old, new, group)
            self.logger.info(message, extra={"change": data})

    def _write_failures(self, failed: Sequence[WriteFailed]) -> None:
        """One line per reason: a full disk fails every file of a build the same way (three
        per feed), and the daemon retries, so one line per file was a screenful per try."""
        if self.logger.isEnabledFor(logging.DEBUG):
            for event in failed:
                self.logger.debug(log_line(event), extra={"change": to_record(event)})
        by_reason: dict[str, list[str]] = {}
        for event in failed:
            by_reason.setdefault(event.reason, []).append(event.path)
        for reason, paths in by_reason.items():
            count = counted(len(paths), "output file")
            self.logger.warning(
                f"cannot write {count} ({reason}): {_examples(paths)}; the previous files "
                f"stay. {write_advice(reason)}; the next build (the daemon retries by "
                "itself) writes them",
                extra={"change": {"event": "writes_failed", "reason": reason, "files": len(paths)}},
            )

    def _line(self, event: ChangeEvent) -> None:
        level = line_level(event)
        # A cold build makes one event per article: format only what will be shown.
        if self.logger.isEnabledFor(level):
            self.logger.log(level, log_line(event), extra={"change": to_record(event)})

    def catch_up(self, events: Sequence[ChangeEvent]) -> None:
        """The daemon's first scan, which publishes whatever changed while it was stopped:
        one summary line instead of one per article and feed (a cold start on 2,000 files
        made 1,662 lines); problems (rejections, clashes, failed writes) keep theirs."""
        counts = {kind.kind: 0 for kind in _ITEM_EVENTS}
        finished = []
        for event in events:
            if isinstance(event, _ITEM_EVENTS):
                counts[event.kind] += 1
            elif isinstance(event, BuildFinished):
                finished.append(event)
            elif not isinstance(event, HubPinged | HubPingFailed | WriteFailed):
                self(event)
        self._write_failures([e for e in events if isinstance(e, WriteFailed)])
        if self.logger.isEnabledFor(logging.INFO):
            fields = {
                "added": counts["article_added"],
                "updated": counts["article_updated"],
                "moved": counts["article_moved"],
                "unpublished": counts["article_unpublished"],
                "removed": counts["article_removed"],
                "released": counts["article_released"],
                "scheduled": counts["article_scheduled"],
                "feeds_written": counts["feed_written"],
                "feeds_unchanged": counts["feed_unchanged"],
            }
            message = (
                "catch-up scan: {added} added, {updated} updated, {moved} moved, "
                "{unpublished} unpublished, "
                "{removed} removed, {released} released, {scheduled} scheduled; "
                "{feeds} written, {feeds_unchanged} unchanged "
                "(each change is logged from now on)"
            ).format(**fields, feeds=counted(fields["feeds_written"], "feed"))
            self.logger.info(message, extra={"change": {"event": "catch_up", **fields}})
        for event in finished:
            self(event)
        pings = [e for e in events if isinstance(e, HubPinged | HubPingFailed)]
        if pings:
            self._hubs.render(pings)


def log_sink(logger: logging.Logger = LOGGER, **options: Any) -> LogSink:
    """A sink that logs each event as one line (and can summarise a catch-up scan);
    `options` go to `LogSink`."""
    return LogSink(logger, **options)


def _examples(topics: Sequence[str]) -> str:
    shown = ", ".join(topics[:HUB_EXAMPLES])
    return f"e.g. {shown}" if len(topics) > HUB_EXAMPLES else shown


def _pings(count: int) -> str:
    return counted(count, "ping")


def _failing(hub: str, reason: str) -> str:
    """ "hub X unreachable (why)" or "hub X failed (HTTP 500 …)"."""
    unreachable = "cannot reach the hub: "
    if reason.startswith(unreachable):
        return f"WebSub hub {hub} unreachable ({reason.removeprefix(unreachable)})"
    return f"WebSub hub {hub} failed ({reason})"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"


@dataclass
class _HubTrouble:
    """A hub the daemon's pings are failing at: what is owed to it, counts since the line."""

    reason: str
    since: float
    logged: float
    owed: set[str] = field(default_factory=set)
    tries: int = 0
    sent: int = 0
    given_up: int = 0


class _HubLog:
    """Renders ping results per hub, not per ping (a hub that is down fails every topic).

    `live` (the daemon, whose ping jobs report one result at a time and retry failures):
    a failure moves the hub into a state: failing (one line; the first give-up, an hour on,
    one more), still failing (a summary at most every `summary_seconds`), reachable again
    (one line, once nothing it failed is owed any more). Otherwise (`aggregator build`, one
    batch per run) failures and successes are counted per batch, hub and reason.
    Ping threads render concurrently: the state is behind a lock.
    """

    def __init__(
        self,
        logger: logging.Logger,
        live: bool,
        summary_seconds: float,
        clock: Callable[[], float],
    ) -> None:
        self.logger = logger
        self.live = live
        self.summary_seconds = summary_seconds
        self.clock = clock
        self._trouble: dict[str, _HubTrouble] = {}
        self._lock = threading.Lock()

    def _log(self, level: int, message: str, event: str, **data: object) -> None:
        if self.logger.isEnabledFor(level):
            self.logger.log(level, message, extra={"change": {"event": event, **data}})

    def render(self, events: Sequence[HubPinged | HubPingFailed]) -> None:
        """Log a batch of ping results: per-ping lines at DEBUG, hub lines as above."""
        if self.logger.isEnabledFor(logging.DEBUG):
            for event in events:
                self.logger.debug(log_line(event), extra={"change": to_record(event)})
        sent: dict[str, list[str]] = {}
        owed: dict[tuple[str, str], list[str]] = {}
        given_up: dict[tuple[str, str], list[str]] = {}
        with self._lock:
            for event in events:
                if isinstance(event, HubPinged):
                    if not (self.live and self._sent(event)):
                        sent.setdefault(event.hub, []).append(event.topic)
                elif self.live:
                    self._failed(event)
                elif event.given_up:
                    given_up.setdefault((event.hub, event.reason), []).append(event.topic)
                else:
                    owed.setdefault((event.hub, event.reason), []).append(event.topic)
        for hub, topics in sent.items():
            self._log(
                logging.INFO,
                f"WebSub hub {hub}: {_pings(len(topics))} sent ({_examples(topics)})",
                "hub_pings_sent",
                hub=hub,
                sent=len(topics),
            )
        for (hub, reason), topics in owed.items():
            self._log(
                logging.WARNING,
                f"{_failing(hub, reason)}: {_pings(len(topics))} owed ({_examples(topics)}), "
                "sent at the next run (aggregator build or run)",
                "hub_pings_owed",
                hub=hub,
                reason=reason,
                owed=len(topics),
            )
        for (hub, reason), topics in given_up.items():
            self._log(
                logging.ERROR,
                f"{_failing(hub, reason)}: {_pings(len(topics))} given up "
                f"({_examples(topics)}): their changes are over an hour old",
                "hub_pings_given_up",
                hub=hub,
                reason=reason,
                given_up=len(topics),
            )

    def _failed(self, event: HubPingFailed) -> None:
        now = self.clock()
        trouble = self._trouble.get(event.hub)
        if trouble is None:
            trouble = self._trouble[event.hub] = _HubTrouble(event.reason, now, now)
            self._log(
                logging.WARNING,
                f"{_failing(event.hub, event.reason)}: its pings are owed and retried with "
                f"backoff (first: {event.topic}); summarised every "
                f"{_duration(self.summary_seconds)} while it fails",
                "hub_failing",
                hub=event.hub,
                reason=event.reason,
            )
        trouble.reason = event.reason
        trouble.tries += 1
        if event.given_up:
            # Not a recovery even when nothing failed is owed any more: other pings may be
            # out, and the hub is still failing as far as anyone knows.
            trouble.owed.discard(event.topic)
            trouble.given_up += 1
            if trouble.given_up == 1:
                self._log(
                    logging.ERROR,
                    f"{_failing(event.hub, event.reason)}: giving up its pings whose change "
                    "is over an hour old (counted in the summaries)",
                    "hub_giving_up",
                    hub=event.hub,
                    reason=event.reason,
                )
            return
        trouble.owed.add(event.topic)
        if now - trouble.logged >= self.summary_seconds:
            self._log(
                logging.WARNING,
                f"{_failing(event.hub, event.reason)} for {_duration(now - trouble.since)}: "
                f"{_pings(len(trouble.owed))} owed, {trouble.tries} failed tries and "
                f"{trouble.given_up} given up since the last line",
                "hub_still_failing",
                hub=event.hub,
                reason=event.reason,
                owed=len(trouble.owed),
                tries=trouble.tries,
                given_up=trouble.given_up,
            )
            trouble.logged = now
            trouble.tries = 0

    def _sent(self, event: HubPinged) -> bool:
        """Count a success at a failing hub; False when the hub was not failing."""
        trouble = self._trouble.get(event.hub)
        if trouble is None:
            return False
        trouble.owed.discard(event.topic)
        trouble.sent += 1
        if not trouble.owed:
            self._settle(event.hub, trouble, self.clock())
        return True

    def _settle(self, hub: str, trouble: _HubTrouble, now: float) -> None:
        """Nothing the hub failed is owed any more, and the last result was a success."""
        del self._trouble[hub]
        given_up = f", {trouble.given_up} given up" if trouble.given_up else ""
        self._log(
            logging.INFO,
            f"WebSub hub {hub} reachable again after {_duration(now - trouble.since)}: "
            f"{_pings(trouble.sent)} sent{given_up}",
            "hub_recovered",
            hub=hub,
            sent=trouble.sent,
            given_up=trouble.given_up,
        )


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
            if isinstance(sink, LogSink):
                try:
                    sink.publish(events)
                except Exception:
                    LOGGER.exception("notification sink %r failed on a batch", sink)
                continue
            for event in events:
                try:
                    sink(event)
                except Exception:
                    LOGGER.exception("notification sink %r failed on %s", sink, event.kind)
