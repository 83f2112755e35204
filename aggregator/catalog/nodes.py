"""Node keys: how one node's file paths, feed records and settings are stored in a catalog that
several nodes share (under `<node>/`), and turned back into paths relative to its input folder.

A catalog of one node (SQLite) has the empty prefix: every key is stored as it is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from aggregator.catalog.records import FileChange
from aggregator.events import (
    ArticleAdded,
    ArticleMoved,
    ArticleRejected,
    ArticleRemoved,
    ArticleUnpublished,
    ArticleUpdated,
    ChangeEvent,
    DuplicateUrl,
)

# Where a shared catalog keeps what the renderer renders from and by (feed records, the
# cut-off, the render settings): under a name no node can have (names are letters, digits,
# '.', '_' and '-'), one set for the whole cluster, whichever node renders.
CLUSTER_KEYS = "~"


class NodeKeys:
    """The keys of one node: `node/` before each path, feed and setting it stores."""

    __slots__ = ("prefix",)

    def __init__(self, node: str | None = None) -> None:
        # None: a catalog of one node. (A shared one always has a prefix, even for "".)
        self.prefix = "" if node is None else f"{node}/"

    def stored(self, key: str) -> str:
        """A key as this node stores it."""
        return self.prefix + key

    def local(self, key: str) -> str:
        """A stored key of this node as the node knows it (other keys are kept whole)."""
        return key[len(self.prefix) :] if key.startswith(self.prefix) else key

    def where(self, column: str, *conditions: str) -> tuple[str, tuple[str, ...]]:
        """A WHERE clause (with its parameters) for `conditions` and, on a shared catalog,
        `column` within this node's keys: `node/` ≤ key < `node0` ('0' follows '/').
        Empty when there is nothing to say."""
        terms = list(conditions)
        params: tuple[str, ...] = ()
        if self.prefix:
            terms.append(f"{column} >= ? AND {column} < ?")
            params = (self.prefix, self.prefix[:-1] + "0")
        return (f" WHERE {' AND '.join(terms)}" if terms else ""), params

    def stored_changes(self, batch: Sequence[FileChange]) -> Sequence[FileChange]:
        """The batch with this node's paths as stored."""
        if not self.prefix:
            return batch
        return [dataclasses.replace(c, path=self.prefix + c.path) for c in batch]

    def local_events(self, events: list[ChangeEvent]) -> list[ChangeEvent]:
        """The events with this node's paths relative to its input folder again."""
        if not self.prefix:
            return events
        return [self._local_event(e) for e in events]

    def _local_event(self, event: ChangeEvent) -> ChangeEvent:
        local = self.local
        if isinstance(event, DuplicateUrl):
            return dataclasses.replace(
                event, winner=local(event.winner), losers=tuple(local(p) for p in event.losers)
            )
        if isinstance(
            event,
            ArticleAdded | ArticleUpdated | ArticleUnpublished | ArticleRemoved | ArticleRejected,
        ):
            return dataclasses.replace(event, source=local(event.source))
        if isinstance(event, ArticleMoved):
            return dataclasses.replace(
                event, old_source=local(event.old_source), source=local(event.source)
            )
        return event
