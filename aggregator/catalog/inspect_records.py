"""What `catalog.inspect` answers with: a file, an item, a GUID ever handed out and, on a
shared catalog, the leader, as `aggregator status` and `explain` show them.

Apart from `records`, and imported by those methods only: every build opens a catalog, and
these four dataclasses cost it about 2 ms to make (bench/README.md, f18-start).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from aggregator.catalog.records import article_from_json
from aggregator.model import Article, FeedKey


@dataclass(frozen=True, slots=True)
class FileRecord:
    """An article file as the catalog knows it: what it last saw, and its last good version
    (`article_json`, None when no version parsed or it was withdrawn), and why its current
    bytes were rejected (`error`, None if they were read)."""

    path: str  # relative to this node's input; another node's file keeps `node/` before it
    size: int
    mtime_ns: int
    url: str | None
    article_json: str | None
    error: str | None

    def article(self) -> Article | None:
        """The last good version, decoded (None: none is kept)."""
        return None if self.article_json is None else article_from_json(self.article_json)


@dataclass(frozen=True, slots=True)
class ItemRecord:
    """What the feeds list for one webUrl: the file that speaks for it, its GUID and date,
    and the feeds it is a member of (dated items only show once the cut-off passes them)."""

    guid: str
    url: str
    path: str
    date: datetime
    feeds: tuple[FeedKey, ...]


@dataclass(frozen=True, slots=True)
class IdentityRecord:
    """A GUID ever handed out: the URL it was given for, its file (None once gone), and when
    it was first published."""

    guid: str
    url: str
    path: str | None
    first_published: datetime


@dataclass(frozen=True, slots=True)
class LeaderRecord:
    """On a shared catalog: the node that last took the lead, its fencing epoch, and whether
    its lease is unexpired now (False: no node leads at this moment)."""

    node: str
    epoch: int
    held: bool
