"""Subscriber counts that feed readers report in their User-Agent, parsed, kept per feed path
and reader, and written to `<state>/subscribers.json` now and then for `aggregator status`.

The formats (docs/serving.md cites where they are documented)::

    Feedly/1.0 (+http://www.feedly.com/fetcher.html; 143 subscribers; feed-id=…)
    Mozilla/5.0 (compatible; inoreader.com; 114 subscribers)
    NewsBlur Feed Fetcher - 27 subscribers - https://www.newsblur.com/site/…
    Feedbin feed-id:1697787 - 102 subscribers
    Mozilla/5.0 (compatible; theoldreader.com; 1 subscribers; feed-id=cead6c…)
    Mozilla/5.0 (compatible; BazQux/2.4; +https://bazqux.com/fetcher; 1 subscribers)
    Feedfetcher-Google; (+http://www.google.com/feedfetcher.html; 4 subscribers; feed-id=…)
    Dreamwidth Studios (webmaster@dreamwidth.org; for https://…; 2 readers)

The parser is a few `str.find` calls over at most `MAX_AGENT` characters: linear time, no
regular expression to backtrack on a hostile header. The reader is the first product token
(`Feedly`), or the first token of a `(compatible; …)` comment when that is `Mozilla`;
a service that reports several groups for one URL tells them apart by a feed id, so each
(path, reader, feed id) keeps its latest count, and `status` adds the groups up.

Written at most every `subscribers_seconds`, atomically (temp file, fsync, rename), from a
thread: a request never waits on a disk. At most `MAX_ENTRIES` are kept, so a client making
up reader names cannot grow the file without bound.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

LOGGER = logging.getLogger("aggregator.serve")

FILE_NAME = "subscribers.json"
FORMAT_VERSION = 1
MAX_AGENT = 1024  # characters of a User-Agent looked at
MAX_ENTRIES = 10_000
_MAX_DIGITS = 9
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
_MAX_NAME = 64
_COUNT_WORDS = (" subscribers", " subscriber", " readers")
_FEED_ID_MARKS = ("feed-id=", "feed-id:", "feedid:", "feedid=")


@dataclass(frozen=True, slots=True)
class SubscriberReport:
    """What one User-Agent says: the reader, its subscriber count, the feed id (or "")."""

    reader: str
    subscribers: int
    feed_id: str = ""


@dataclass(frozen=True, slots=True)
class SubscriberCount:
    """One stored count: a feed path, the reader, its feed id, the count and when it was
    last reported (UTC)."""

    path: str
    reader: str
    feed_id: str
    subscribers: int
    seen: datetime


def _token(text: str, start: int) -> str:
    """The run of name characters of `text` from `start` (at most `_MAX_NAME`)."""
    end = start
    limit = min(len(text), start + _MAX_NAME)
    while end < limit and text[end] in _NAME_CHARS:
        end += 1
    return text[start:end]


def _count(agent: str) -> int | None:
    """The number just before ` subscribers` (or ` readers`), else None."""
    for word in _COUNT_WORDS:
        at = agent.find(word)
        while at != -1:
            start = at
            while start > 0 and at - start < _MAX_DIGITS and agent[start - 1].isdigit():
                start -= 1
            # A whole number: not the tail of a version ("8.5.0 subscribers").
            whole = start == 0 or agent[start - 1] in " (;,-"
            if start < at and whole and agent[start:at].isascii():
                return int(agent[start:at])
            at = agent.find(word, at + len(word))
    return None


def _reader(agent: str) -> str:
    name = _token(agent, 0)
    if name == "Mozilla":
        at = agent.find("(compatible;")
        if at == -1:
            return ""
        start = at + len("(compatible;")
        while start < len(agent) and agent[start] == " ":
            start += 1
        name = _token(agent, start)
    return name


def _feed_id(agent: str) -> str:
    lowered = agent.lower()
    for mark in _FEED_ID_MARKS:
        at = lowered.find(mark)
        if at != -1:
            start = at + len(mark)
            while start < len(agent) and agent[start] == " ":
                start += 1
            return _token(agent, start)
    return ""


def parse_subscribers(agent: str) -> SubscriberReport | None:
    """The subscriber report in a User-Agent, or None when it has none."""
    agent = agent[:MAX_AGENT]
    if "subscriber" not in agent and " readers" not in agent:
        return None  # nearly every request: one scan in C
    count = _count(agent)
    if count is None:
        return None
    reader = _reader(agent)
    if not reader:
        return None
    return SubscriberReport(reader, count, _feed_id(agent))


def _utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


class SubscriberLedger:
    """The latest count per (path, reader, feed id), written to `<state>/subscribers.json`
    at most every `interval` seconds by `flush` (the server's timer calls it in a thread).

    `record` is called in the event loop and only updates a dict under a lock.
    """

    def __init__(self, state: Path, interval: float) -> None:
        self.path = state / FILE_NAME
        self.interval = interval
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._counts: dict[tuple[str, str, str], tuple[int, float]] = {}
        self._dirty = False
        self._full_warned = False
        self._failing = False
        for count in read_subscribers(state):
            key = (count.path, count.reader, count.feed_id)
            self._counts[key] = (count.subscribers, count.seen.timestamp())

    def record(self, path: str, report: SubscriberReport) -> None:
        key = (path, report.reader, report.feed_id)
        with self._lock:
            if key not in self._counts and len(self._counts) >= MAX_ENTRIES:
                if not self._full_warned:
                    self._full_warned = True
                    LOGGER.warning(
                        "subscriber counts: %d (path, reader) pairs kept already; new ones "
                        "are ignored until %s is cleared",
                        MAX_ENTRIES,
                        self.path,
                    )
                return
            self._counts[key] = (report.subscribers, time.time())
            self._dirty = True

    def counts(self) -> list[SubscriberCount]:
        with self._lock:
            items = sorted(self._counts.items())
        return [
            SubscriberCount(path, reader, feed_id, n, datetime.fromtimestamp(seen, UTC))
            for (path, reader, feed_id), (n, seen) in items
        ]

    def flush(self) -> None:
        """Write the file if anything changed since the last write (atomically)."""
        with self._write_lock:
            with self._lock:
                if not self._dirty:
                    return
                self._dirty = False
                items = sorted(self._counts.items())
            data = {
                "version": FORMAT_VERSION,
                "written": _utc(time.time()),
                "counts": [
                    {
                        "path": path,
                        "reader": reader,
                        "feed_id": feed_id,
                        "subscribers": n,
                        "seen": _utc(seen),
                    }
                    for (path, reader, feed_id), (n, seen) in items
                ],
            }
            try:
                _write_atomically(self.path, json.dumps(data, indent=1).encode() + b"\n")
            except OSError as exc:
                with self._lock:
                    self._dirty = True  # tried again at the next tick
                if not self._failing:
                    LOGGER.warning(
                        "cannot write the subscriber counts to %s: %s; they are kept in "
                        "memory and written once the state folder is writable",
                        self.path,
                        exc.strerror or exc,
                    )
                self._failing = True
                return
            if self._failing:
                LOGGER.info("subscriber counts written to %s again", self.path)
            self._failing = False


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def read_subscribers(state: Path) -> list[SubscriberCount]:
    """The counts `serve` last wrote to `<state>/subscribers.json` ([] if none, or if the file
    cannot be read: a warning says why). Safe beside a running server: the file is replaced
    whole."""
    path = state / FILE_NAME
    try:
        data = json.loads(path.read_bytes())
        return [
            SubscriberCount(
                str(c["path"]),
                str(c["reader"]),
                str(c.get("feed_id", "")),
                int(c["subscribers"]),
                datetime.fromisoformat(str(c["seen"]).replace("Z", "+00:00")),
            )
            for c in data["counts"]
        ]
    except FileNotFoundError:
        return []
    except (OSError, ValueError, KeyError, TypeError) as exc:
        LOGGER.warning(
            "ignoring the subscriber counts in %s (%s: %s); the server writes a new file",
            path,
            type(exc).__name__,
            exc,
        )
        return []
