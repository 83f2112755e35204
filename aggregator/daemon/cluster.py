"""This node's part in a shared (PostgreSQL) catalog: hearing the other nodes' commits, and
whether it is the one that does the once-only work now.

    listener thread: another node's sync committed → the leader's build with no changed path
      (render what it changed); a new version of the rendered set → a copy of it (no
      build); a reconnect → a full scan (which also redoes the builds that failed while
      the database was away, and copies what was missed)
    leader thread: keeps this node's claim to the once-only work (rendering the feeds for
      the whole cluster, WebSub pings, anything that acts outside this node): a lease it
      renews every second; `leading()` checks its fencing epoch and its lease at the
      moment of acting, `render_epoch()` gives the epoch a render is stored under

On SQLite there is one node, which always leads; the catalog's cluster module is then never
imported.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from aggregator.errors import AggregatorError

if TYPE_CHECKING:
    from aggregator.catalog import Catalog, ChangeListener, Leadership

LOGGER = logging.getLogger("aggregator.daemon")


class ClusterNode:
    """The listener and the leadership of one node, started and stopped together."""

    def __init__(self) -> None:
        self.listener: ChangeListener | None = None
        # The node doing once-only work on a shared catalog (None: SQLite, always this one).
        self.leadership: Leadership | None = None
        # Why this node must stop: another process holds its name now (NodeNameInUse).
        self.fatal: AggregatorError | None = None
        # The leader stored a new version of the rendered set: the writer copies it, with
        # no build if none is due (`take_copy`).
        self.copy_due = threading.Event()

    def join(
        self,
        url: str,
        node: str,
        *,
        on_commit: Callable[[], None],
        on_rendered: Callable[[], None],
        on_reconnect: Callable[[], None],
        on_elected: Callable[[], None],
    ) -> None:
        """Start listening to the other nodes' commits (a sync's: `on_commit`, for the
        leader to render; a new version of the rendered set: `on_rendered`, to copy it) and
        standing for leader; once elected, `on_elected` and a build as for a commit."""
        from aggregator.catalog import ChangeListener, Leadership

        def rendered() -> None:
            self.copy_due.set()
            on_rendered()

        self.listener = ChangeListener(
            url,
            node,
            on_commit,
            on_reconnect,
            renders=lambda: self.is_leader,
            on_rendered=rendered,
        )
        self.listener.start()

        def elected() -> None:
            on_elected()
            on_commit()  # render at once what the old leader left past the render mark

        self.leadership = Leadership(url, node, elected)
        self.leadership.start()
        LOGGER.info("node %s of the shared catalog %s", node, self.listener.where)

    def take_copy(self) -> bool:
        """Whether a new version was stored since the last call: the writer's next run
        copies it, a build's copy or a copy alone when no batch is due (cleared: a ring
        that comes meanwhile sets it again; the copy reads every version there is then)."""
        if not self.copy_due.is_set():
            return False
        self.copy_due.clear()
        return True

    @property
    def is_leader(self) -> bool:
        """Whether this node holds the leadership now, as last seen (no query): for the
        metrics. Acting on it needs `leading`."""
        return self.leadership is None or self.leadership.acting

    def leading(self, what: str) -> bool:
        """Whether this node may do once-only work now: always on SQLite (one node); on a
        shared catalog, only the leader whose fencing epoch is still the current one and
        whose lease is unexpired, so a node that was paused or cut off cannot act on a
        stale belief."""
        leadership = self.leadership
        if leadership is None:
            return True
        epoch = leadership.epoch
        if epoch is None or not leadership.still_leader(epoch):
            LOGGER.debug("%s: left to the leader", what)
            return False
        return True

    def render_epoch(self) -> int | None:
        """The fencing epoch this node renders under now (it leads), else None: a follower,
        or a node not yet in the cluster, only copies the rendered set. The store checks
        the epoch again inside its transaction."""
        leadership = self.leadership
        if leadership is None:
            return None
        epoch = leadership.epoch
        if epoch is None or not self.leading("rendering"):
            return None
        return epoch

    def must_stop(self, catalog: Catalog | None) -> AggregatorError | None:
        """Why this node must stop now: its name was taken over while it was cut off from
        the catalog (see the catalog's `claim` module), or None."""
        if self.fatal is None and catalog is not None:
            self.fatal = catalog.identity_lost()
        return self.fatal

    def prune(self, catalog: Catalog | None) -> None:
        """The leader's share of the maintenance rhythm (each reconcile, on the writer
        thread): delete the change-log entries every node is past. A failure waits for the
        next run: nothing depends on it but the log's size."""
        if catalog is None or self.leadership is None or not self.leading("change log pruning"):
            return
        try:
            pruned = catalog.prune_changes()
        except AggregatorError as exc:
            LOGGER.warning("change log: not pruned this time (%s); tried again later", exc)
            return
        if pruned:
            LOGGER.debug("change log: %d entries every node is past were pruned", pruned)

    def stop(self) -> None:
        """Stop both threads (a leader lets its lease go, for another node to take at once)."""
        if self.listener is not None:
            self.listener.stop()
        if self.leadership is not None:
            self.leadership.stop()
