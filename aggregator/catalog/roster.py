"""The nodes of a shared catalog over their whole life: `nodes` lists every node the catalog
knows (live or not, its files and items, its copy mark of the rendered set), `remove_self`
takes this catalog's node out in one transaction (`aggregator node retire | forget`), and
`prune_changes` trims the change log once the cluster's renderer is past an entry.

A node's name is claimed by its writer (see `aggregator.catalog.claim`), so a `Catalog`
opened with a stopped node's name is the only writer of that node's rows while it removes
them: the node cannot start meanwhile, and a live node cannot be removed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from aggregator.catalog.base import storage_errors
from aggregator.catalog.files import FilesMixin
from aggregator.catalog.records import FileChange
from aggregator.catalog.rendered import COPIED_SEQ
from aggregator.catalog.schema import RENDERED_SEQ

if TYPE_CHECKING:
    from aggregator.catalog.roster_records import ChangeLog, NodeRecord, NodeRemoved

LOGGER = logging.getLogger("aggregator.catalog")

# Change-log rows deleted per transaction, and transactions per `prune_changes`: each
# DELETE is short (no long lock; the syncs' inserts never wait for it), and what is left
# goes at the next maintenance run.
PRUNE_BATCH = 5000
PRUNE_BATCHES = 20

# The name lock of `claim.py` as pg_locks shows a session advisory lock on a bigint key:
# in two 32-bit halves (classid, objid), objsubid 1.
_LIVE = (
    "EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted "
    "AND l.objsubid = 1 AND l.database = (SELECT oid FROM pg_database "
    "WHERE datname = current_database()) AND ((l.classid::bigint << 32) | l.objid::bigint) "
    "= hashtextextended('aggregator node ' || {name}, 0))"
)


class RosterMixin(FilesMixin):
    """The nodes of a shared catalog: list, remove, and prune the change log behind them."""

    @storage_errors
    def nodes(self) -> list[NodeRecord]:
        """Every node the shared catalog knows, by name (empty on SQLite: one node)."""
        if not self.shared:
            return []
        from aggregator.catalog.roster_records import NodeRecord

        db = self._db
        (newest,) = db.execute("SELECT seq FROM rendered_version WHERE id = 1").fetchone()
        leader_row = db.execute("SELECT node FROM cluster_leader WHERE id = 1").fetchone()
        leads = str(leader_row[0]) if leader_row and leader_row[0] else None
        leader_live = leads is not None and self._backend.leader_lease_live()
        claims = {
            str(name): (bool(live), str(host), int(pid), str(since))
            for name, host, pid, since, live in db.execute(
                "SELECT name, host, pid, started, " + _LIVE.format(name="name") + " "
                "FROM cluster_nodes"
            )
        }
        files = dict(db.execute("SELECT split_part(path, '/', 1), count(*) FROM files GROUP BY 1"))
        items = dict(db.execute("SELECT split_part(path, '/', 1), count(*) FROM items GROUP BY 1"))
        suffix = "/" + COPIED_SEQ
        marks = {
            str(key).removesuffix(suffix): int(value or 0)
            for key, value in db.execute(
                "SELECT key, value FROM meta WHERE right(key, ?) = ?", (len(suffix), suffix)
            )
        }
        records = []
        for name in sorted({*claims, *files, *items, *marks}):
            live, host, pid, since = claims.get(name, (False, None, None, None))
            mark = marks.get(name)
            records.append(
                NodeRecord(
                    name,
                    live,
                    host,
                    pid,
                    since,
                    int(files.get(name, 0)),
                    int(items.get(name, 0)),
                    mark,
                    None if mark is None else max(0, int(newest) - mark),
                    leader_live and name == leads,
                )
            )
        return records

    @storage_errors
    def remove_self(self, now: Callable[[], datetime]) -> NodeRemoved:
        """Take this catalog's node out of the cluster, in one transaction: its files leave
        (the winner of each webUrl it spoke for is decided again, so an item another node
        also has stays listed: no gap in anyone's feeds), the feeds that changed are marked
        for every node, and its bookkeeping goes (feed records, settings, change-log mark,
        name). Its GUIDs stay, as for any file deleted: a return keeps them."""
        assert self.shared, "a catalog of one node has no node to remove"
        from aggregator.catalog.roster_records import NodeRemoved

        prefix = self._keys.prefix
        name = prefix[:-1]
        db = self._db
        with self.transaction():
            where, params = self._keys.where("path")
            paths = [str(p) for (p,) in db.execute(f"SELECT path FROM files{where}", params)]
            (listed,) = db.execute(f"SELECT count(*) FROM items{where}", params).fetchone()
            (before,) = db.execute("SELECT count(*) FROM items").fetchone()
            changes = [FileChange(self._keys.local(p), None) for p in paths]
            result = self.sync([changes], now) if changes else None
            (after,) = db.execute("SELECT count(*) FROM items").fetchone()
            feeds_where, feeds_params = self._keys.where("feed")
            db.execute(f"DELETE FROM feeds{feeds_where}", feeds_params)
            meta_where, meta_params = self._keys.where("key")
            db.execute(f"DELETE FROM meta{meta_where}", meta_params)
            db.execute("DELETE FROM cluster_nodes WHERE name = ?", (name,))
        withdrawn = int(before) - int(after)
        return NodeRemoved(
            name,
            len(paths),
            withdrawn,
            int(listed) - withdrawn,
            0 if result is None else len(result.dirty_feeds),
        )

    @storage_errors
    def prune_changes(self) -> int:
        """Delete the change-log entries the cluster's renderer is past (its one mark,
        `rendered_seq`: only the renderer reads the log; the nodes copy the rendered set,
        whose rows are kept, one per file); how many went. A renderer whose mark is older
        than what was pruned renders every feed (see the backend's `pending_feeds`).
        Bounded batches, each its own short transaction."""
        if not self.shared:
            return 0
        # Only the cluster's renderer reads the log (from the one cluster-wide mark).
        (low,) = self._db.execute(
            "SELECT CAST(value AS BIGINT) FROM meta WHERE key = ?",
            (self._render_keys.stored(RENDERED_SEQ),),
        ).fetchone() or (None,)
        if low is None:
            return 0
        total = 0
        for _ in range(PRUNE_BATCHES):
            # This node's rows and the log's own only: no cluster-wide write lock.
            with self.transaction(exclusive=False):
                gone, upto = self._db.execute(
                    "WITH gone AS (DELETE FROM feed_changes WHERE seq IN (SELECT seq FROM "
                    "feed_changes WHERE seq <= ? ORDER BY seq LIMIT ?) RETURNING seq) "
                    "SELECT count(*), max(seq) FROM gone",
                    (int(low), PRUNE_BATCH),
                ).fetchone()
                if gone:
                    self._db.execute(
                        "UPDATE feed_changes_pruned SET upto = greatest(upto, ?) WHERE id = 1",
                        (int(upto),),
                    )
            total += int(gone)
            if int(gone) < PRUNE_BATCH:
                break
        return total

    @storage_errors
    def items_only_here(self) -> int:
        """How many items this catalog's node alone has: no other node's file gives their
        webUrl, so removing the node withdraws them from every feed."""
        where, params = self._keys.where("i.path")
        (count,) = self._db.execute(
            f"SELECT count(*) FROM items i{where} AND NOT EXISTS (SELECT 1 FROM files f "
            "WHERE f.url = i.url AND f.article IS NOT NULL AND NOT (f.path >= ? AND f.path < ?))",
            (*params, *params),
        ).fetchone()
        return int(count)

    @storage_errors
    def change_log(self) -> ChangeLog:
        """The change log's size, its first and last entry, and up to where it was pruned."""
        from aggregator.catalog.roster_records import ChangeLog

        count, first, last = self._db.execute(
            "SELECT count(*), min(seq), max(seq) FROM feed_changes"
        ).fetchone()
        row = self._db.execute("SELECT upto FROM feed_changes_pruned WHERE id = 1").fetchone()
        return ChangeLog(
            int(count),
            None if first is None else int(first),
            None if last is None else int(last),
            int(row[0]) if row else 0,
        )
