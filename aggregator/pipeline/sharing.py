"""A build's part in a cluster (a shared catalog): render once, copy everywhere, one clock.

    every node's build: sync its own folder (dated by the database's clock)
      | the renderer alone (the leader, fenced by its epoch): the cut-off, the windows and
      |   the feeds changed in the log after the cluster's render mark, rendered once and
      |   stored as a new version of the rendered set (`aggregator.catalog.rendered`)
      | every node: copy the versions newer than its copy mark into its own folder, with
      |   the same atomic writes and mtime rules as one machine's build (`output.publish`)

`ClusterRole` says whether this build renders: in the daemon, whether the node leads now;
in a one-shot `aggregator build`, whether it could take the lead for its run (no leader is
live), else it waits, bounded, for the leader to render past its sync, then copies.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from aggregator.catalog import Catalog, StoredFile
from aggregator.events import WriteFailed
from aggregator.model import RenderedFile
from aggregator.output import PublishBatch
from aggregator.pipeline.targets import StoredVersion, remove_output

if TYPE_CHECKING:
    from aggregator.catalog import Leadership

# The build's logger: these lines have always been the build's.
LOGGER = logging.getLogger("aggregator.build")

# A one-shot build with no live leader takes the lead for its run within this.
ELECT_SECONDS = 5.0
# A one-shot build that follows a live leader waits this long for its render, then copies
# what is there and says so.
RENDER_WAIT_SECONDS = 60.0
_POLL_SECONDS = 0.05
# Written last, as on one machine: what the pages list is in place before them.
_INDEX_SUFFIXES = (".opml", ".html")


@dataclass(slots=True)
class CopyResult:
    """What a copy of the rendered set did."""

    written: int = 0
    unchanged: int = 0
    removed: int = 0
    failed: list[WriteFailed] = field(default_factory=list)


class ClusterRole:
    """This node's role in one build, and its view of the database's clock.

    `renderer` (the daemon's) answers the fencing epoch if this node leads now, else None;
    without one (a one-shot build) the role campaigns for the lead for the build's length.
    """

    def __init__(
        self,
        catalog: Catalog,
        url: str,
        node: str,
        local_now: Callable[[], datetime],
        renderer: Callable[[], int | None] | None,
    ) -> None:
        self.catalog = catalog
        self.url = url
        self.node = node
        self.renderer = renderer
        self._local_now = local_now
        self._offset = timedelta(0)
        self._leadership: Leadership | None = None

    def clock(self) -> datetime:
        """The database's time now (and how far this machine's clock is from it)."""
        database = self.catalog.clock()
        self._offset = database - self._local_now()
        return database

    def now(self) -> datetime:
        """The database's time as of the last `clock` reading, carried on by this machine's
        clock: what a timer is scheduled by, without a query."""
        return self._local_now() + self._offset

    def turn(self) -> int | None:
        """The fencing epoch if this build renders, else None (it only copies)."""
        if self.renderer is not None:
            return self.renderer()
        if self.catalog.leader_live():
            return None
        from aggregator.catalog import Leadership

        leadership = Leadership(self.url, self.node)
        leadership.start()
        self._leadership = leadership
        deadline = time.monotonic() + ELECT_SECONDS
        while leadership.epoch is None and time.monotonic() < deadline:
            time.sleep(_POLL_SECONDS)
        epoch = leadership.epoch
        if epoch is None:
            self.end_turn()
        return epoch

    def end_turn(self) -> None:
        """A one-shot build's lead ends with it (the daemons' lasts as long as they run)."""
        if self._leadership is not None:
            self._leadership.stop()
            self._leadership = None

    def wait_for_render(self) -> bool:
        """A one-shot build that follows: wait, bounded, until the leader has rendered the
        change log up to its end as of now (this build's sync included); whether it did.
        A daemon never waits: the leader's store rings it."""
        if self.renderer is not None:
            return True
        end = self.catalog.change_log_end()
        deadline = time.monotonic() + RENDER_WAIT_SECONDS
        while self.catalog.render_mark() < end:
            if time.monotonic() >= deadline:
                LOGGER.warning(
                    "the cluster's leader did not render this build's changes within %g s; "
                    "the output folder has the last rendered set (the leader's next render "
                    "reaches every running node)",
                    RENDER_WAIT_SECONDS,
                )
                return False
            time.sleep(_POLL_SECONDS)
        return True


def copy_rendered(
    catalog: Catalog,
    root: Path,
    *,
    gzip: bool,
    full: bool,
    own: Sequence[StoredVersion] = (),
) -> CopyResult:
    """Copy the versions of the rendered set newer than this node's copy mark into `root`
    (and, with `full`, every file of the set missing there), then record the mark up to
    the first version that failed to be written.

    `own`: the versions this build stored, committed (the renderer's). When they are the
    very next ones after the mark, they are copied from memory: the renderer does not
    fetch back the bytes it has just sent (a drop's ~1.5 MB, and the server's work to
    read them). A version stored by another node after them rings this one as usual.

    One publish batch for the whole copy, its index pages staged last (so renamed last):
    a drop's copy is a few files, and one batch is one fsync thread and one pass over the
    folders, where a batch per fetch and one for the pages made two or three."""
    result = CopyResult()
    mark = catalog.copy_mark()
    upto = mark
    seqs: dict[str, int] = {}
    deferred: list[StoredFile] = []
    batch = PublishBatch(root, gzip=gzip)

    def stage(rows: Iterable[StoredFile]) -> None:
        for row in rows:
            seqs[row.path] = row.seq
            if row.data is None:
                if remove_output(root / row.path, "removed by the renderer"):
                    result.removed += 1
            else:
                batch.stage(RenderedFile(row.path, row.data, row.gzipped))

    def stage_pages_last(rows: list[StoredFile]) -> None:
        deferred.extend(r for r in rows if r.path.endswith(_INDEX_SUFFIXES))
        stage(r for r in rows if not r.path.endswith(_INDEX_SUFFIXES))

    try:
        mine = _own_rows(own, mark)
        if mine is not None:
            upto = own[-1].version
            stage_pages_last(mine)
        else:
            for rows in catalog.rendered_since(mark):
                upto = max(upto, rows[-1].seq)
                stage_pages_last(rows)
        if full:
            stored = catalog.stored_digests()
            missing = [p for p in stored if p not in seqs and not (root / p).is_file()]
            for rows in catalog.rendered_files(missing):
                stage_pages_last(rows)
        stage(deferred)
    except BaseException:
        batch.abandon()
        raise
    failed_at: int | None = None
    for outcome in batch.commit():
        if outcome.error is not None:
            result.failed.append(WriteFailed(outcome.error.path, outcome.error.reason))
            seq = seqs[outcome.path]
            failed_at = seq if failed_at is None else min(failed_at, seq)
        elif outcome.written:
            result.written += 1
        else:
            result.unchanged += 1
    done = upto if failed_at is None else min(upto, failed_at - 1)
    if done > mark:
        catalog.set_copy_mark(done)
    if result.written or result.removed or result.failed:
        LOGGER.debug(
            "copy: %d files written, %d removed, %d failed from the rendered set (version %d)",
            result.written,
            result.removed,
            len(result.failed),
            done,
        )
    return result


def _own_rows(own: Sequence[StoredVersion], mark: int) -> list[StoredFile] | None:
    """The rows `rendered_since(mark)` would fetch, from the versions this build stored,
    if those are exactly the next ones after `mark` (else None: fetch them). One row per
    path, its newest version's, in the fetch's order (version, then path)."""
    if not own or any(v.version != mark + 1 + i for i, v in enumerate(own)):
        return None
    rows: dict[str, StoredFile] = {}
    for stored in own:
        for path, file in stored.files.items():
            rows[path] = StoredFile(path, stored.version, file.data, file.gzipped)
        for path in stored.removed:
            rows[path] = StoredFile(path, stored.version, None, None)
    return sorted(rows.values(), key=lambda row: (row.seq, row.path))
