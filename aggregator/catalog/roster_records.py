"""What the roster of a shared catalog answers: a node as `nodes` lists it, what
`remove_self` did, the change log's extent.

Apart from `roster`, and imported by those methods only: every build opens a catalog, and
these three dataclasses cost it about 1 ms to make.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class NodeRecord:
    """One node a shared catalog knows. `host`, `pid`, `since`: the last process that held
    its name (live or not); `mark`: the last change-log entry it rendered (None: never
    rendered), `lag`: how many entries it is behind."""

    name: str
    live: bool
    host: str | None
    pid: int | None
    since: str | None
    files: int
    items: int
    mark: int | None
    lag: int | None
    leader: bool


@dataclass(frozen=True, slots=True)
class NodeRemoved:
    """What `remove_self` did: the node's file rows removed, its items that left every
    feed (no other node has them), those now listed from another node's file, the feeds
    marked for a render on every node."""

    name: str
    files: int
    withdrawn: int
    kept: int
    feeds: int


@dataclass(frozen=True, slots=True)
class ChangeLog:
    """The change log: how many entries it keeps, the first and last (None: empty), and
    the last entry pruned (0: none yet)."""

    entries: int
    first: int | None
    last: int | None
    pruned: int
