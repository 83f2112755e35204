"""What is left to write: the feeds whose items changed, the indexes, and the record of each
feed as it was written. Kept in the catalog, so a crash loses none of it.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence

from aggregator.catalog.base import storage_errors
from aggregator.catalog.meta import MetaMixin
from aggregator.catalog.records import FeedRecord, format_date
from aggregator.catalog.schema import PENDING_FEEDS, PENDING_INDEXES
from aggregator.model import FeedKey


class PendingMixin(MetaMixin):
    """Pending feeds and indexes; on a shared catalog, the backend's change log too."""

    @storage_errors
    def pending_feeds(self) -> set[FeedKey]:
        """Feeds whose items changed and that were not yet written (kept across crashes).

        On a shared catalog: this node's failed feeds, and every feed in the change log
        after the last entry this node rendered (whichever node's sync changed it).
        """
        text = self.meta(PENDING_FEEDS)
        pending = {FeedKey.parse(f) for f in json.loads(text)} if text else set()
        return self._backend.pending_feeds(pending, self)

    @storage_errors
    def add_pending(self, keys: Collection[FeedKey]) -> None:
        """Mark feeds as needing a render; stays until `finish_feeds` clears them.

        On a shared catalog the mark goes to the change log, for every node, and the other
        nodes are rung (NOTIFY) when the transaction commits; call it inside one.
        """
        if keys:
            self._backend.add_pending(keys, self)

    @storage_errors
    def finish_feeds(self, written: Sequence[FeedRecord], failed: Collection[FeedKey]) -> None:
        """Remember feeds as written; the failed ones stay pending for the next build.

        Feeds written make the indexes (which list them) pending, until `finish_indexes`.
        """
        with self.transaction(exclusive=False):  # this node's rows only: no cluster lock
            for record in written:
                self._save_feed(record)
            self.set_meta(PENDING_FEEDS, json.dumps(sorted(str(k) for k in failed)))
            self._backend.rendered(self)
            if written:
                self.set_meta(PENDING_INDEXES, "1")

    @storage_errors
    def indexes_pending(self) -> bool:
        """Whether index.opml and index.html must be written again (kept across crashes)."""
        return self.meta(PENDING_INDEXES) == "1"

    @storage_errors
    def finish_indexes(self) -> None:
        """Remember that both indexes were written."""
        self.set_meta(PENDING_INDEXES, "0")

    def _save_feed(self, record: FeedRecord) -> None:
        self._db.execute(
            "INSERT INTO feeds (feed, name, updated, guids) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (feed) DO UPDATE SET name = excluded.name, "
            "updated = excluded.updated, guids = excluded.guids",
            (
                self._render_keys.stored(str(record.key)),
                record.name,
                format_date(record.updated),
                json.dumps(record.guids),
            ),
        )

    @storage_errors
    def cluster_progress(self) -> tuple[str | None, dict[str, int]]:
        """On a shared catalog: the node last elected leader (None if none yet) and, for
        each node that ever copied, how many versions of the rendered set it is behind. On a
        catalog of one node: (None, {}). Reads only (for the metrics and `status`)."""
        if not self._keys.prefix:
            return None, {}
        (newest,) = self._db.execute("SELECT seq FROM rendered_version WHERE id = 1").fetchone()
        row = self._db.execute("SELECT node FROM cluster_leader WHERE id = 1").fetchone()
        leader = str(row[0]) if row is not None and row[0] else None
        lags: dict[str, int] = {}
        suffix = "/copied_seq"  # `rendered.COPIED_SEQ`: each node's copy of the rendered set
        for key, value in self._db.execute(
            "SELECT key, value FROM meta WHERE key LIKE ?", ("%" + suffix,)
        ):
            node = str(key).removesuffix(suffix)
            lags[node] = max(0, int(newest) - int(value or 0))
        return leader, lags
