"""What is owed later: the items a cut-off releases (`falling_due`) and the WebSub pings not
yet sent (`owed_pings`).

Apart from `records`, and imported by those methods only when they have one to make: every
build opens a catalog, and these two dataclasses cost it about 1 ms to make (bench/README.md,
f18-start).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from aggregator.model import FeedKey


@dataclass(frozen=True, slots=True)
class DueItem:
    """An item whose date a cut-off crossed: it enters (or leaves) its feeds."""

    guid: str
    path: str
    title: str
    url: str
    feeds: tuple[FeedKey, ...]


@dataclass(frozen=True, slots=True)
class OwedPing:
    """A hub not yet told that `topic` (a feed file's URL) has new bytes, since `since`."""

    id: int
    hub: str
    topic: str
    since: datetime
