"""The article files the catalog knows: their signatures, the rejected ones, and `sync`, which
applies a build's file changes (one `SyncBatch` per batch, all in one transaction).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime

from aggregator.catalog.base import storage_errors
from aggregator.catalog.pending import PendingMixin
from aggregator.catalog.records import FileChange, SyncResult
from aggregator.events import pair_moves
from aggregator.faults import crash_point
from aggregator.reading import FileStat, Signature

LOGGER = logging.getLogger("aggregator.catalog")

# Syncs of at least this many changes get a big page cache while they run.
_BULK_CHANGES = 5000
# During such a sync the cyclic collector runs after this many allocations instead of 700.
_BULK_GC_THRESHOLD = 100_000


@contextlib.contextmanager
def _fewer_collections() -> Iterator[None]:
    """The cyclic garbage collector, rarely and over new objects only, for a big sync.

    A big sync allocates many objects (dozens per change) that live until it ends (its
    records, events, the rows of the batch), nearly none in reference cycles: each
    collection of the young generation walks them in vain, and each full one the whole
    heap before the sync too
    (the imported modules, a daemon's caches). `gc.freeze` takes that heap out of every
    collection; a high threshold keeps collecting, so cyclic garbage stays bounded. The
    collector is the process's: in the daemon this holds for the other threads during the
    sync too, which is as long as a big sync takes. A build's workers, forked during the
    sync (when it starts reading), keep it for the rest of the build, reading and rendering,
    and do not copy the frozen heap's pages by collecting it: together, of a cold build of 5,000
    articles, 0.24 s of collecting in three processes became 0.09 s.
    """
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(_BULK_GC_THRESHOLD, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


class _Stopwatch:
    """Wall time and this thread's CPU time inside its `with` blocks, added up: the figures
    of the DEBUG line a benchmark reads (bench/build.py)."""

    __slots__ = ("count", "cpu", "wall")

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0
        self.count = 0

    def __enter__(self) -> None:
        self.wall -= time.perf_counter()
        self.cpu -= time.thread_time()

    def __exit__(self, *exc: object) -> None:
        self.wall += time.perf_counter()
        self.cpu += time.thread_time()


class FilesMixin(PendingMixin):
    """Article files and their sync."""

    @storage_errors
    def file_signatures(self) -> dict[str, Signature]:
        """The `FileStat.signature` the catalog last saw for every known file."""
        where, params = self._keys.where("path")
        rows = self._db.execute(f"SELECT path, size, mtime_ns FROM files{where}", params)
        if not self._keys.prefix:
            # The paths are the node's own (a nothing-changed build's scan compares
            # 100,000 of them).
            return {path: (size, mtime) for path, size, mtime in rows}
        local = self._keys.local
        return {local(path): (size, mtime) for path, size, mtime in rows}

    @storage_errors
    def file_stat(self, path: str) -> FileStat | None:
        """The size and mtime last seen for one file, or None if it is not known."""
        row = self._db.execute(
            "SELECT size, mtime_ns FROM files WHERE path = ?", (self._keys.stored(path),)
        ).fetchone()
        return None if row is None else FileStat(row[0], row[1])

    @storage_errors
    def rejected_files(self) -> list[tuple[str, str]]:
        """(path, reason) of every file whose current bytes were rejected."""
        where, params = self._keys.where("path", "error IS NOT NULL")
        rows = self._db.execute(f"SELECT path, error FROM files{where} ORDER BY path", params)
        local = self._keys.local
        return [(local(p), e) for p, e in rows]

    def checkpoint(self) -> None:
        """What a sync starts once committed (SQLite: the write-ahead log copied into the
        file, in a thread of its own), for a build with nothing to sync: the log is copied
        after syncs only, and the writes of the builds before it must not pile up in it."""
        self._backend.synced()

    @storage_errors
    def sync(
        self,
        batches: Iterable[Sequence[FileChange]],
        now: Callable[[], datetime],
        *,
        expected: int = 0,
        cutoff: datetime | None = None,
    ) -> SyncResult:
        """Apply file changes; say which articles entered, changed or left which feeds.

        The changes come in batches so that a caller can apply one while it still reads
        the next; all batches run in one transaction: a failure leaves the catalog as it
        was. `now` is asked only for the first-published time of a never-seen article.
        `expected` (how many changes are coming) lets a big sync use a big page cache.
        `cutoff`: items dated later are embargoed: said `scheduled`, and no feed is
        marked for them (None: no embargo).
        """
        bulk = expected >= _BULK_CHANGES
        if not bulk:
            return self._sync(batches, now, cutoff)
        with self._backend.bulk(), _fewer_collections():
            return self._sync(batches, now, cutoff, bulk=True)

    def _sync(
        self,
        batches: Iterable[Sequence[FileChange]],
        now: Callable[[], datetime],
        cutoff: datetime | None,
        *,
        bulk: bool = False,
    ) -> SyncResult:
        # Imported by the first sync: a build that finds no file changed has none.
        from aggregator.catalog.rows import SyncRun
        from aggregator.catalog.sync import SyncBatch

        batches = self._backend.batches(batches, bulk=bulk)
        total = SyncResult()
        # The sync's own cost, apart from the waits for the next batch (the reading).
        spent = _Stopwatch()
        with self.transaction():
            crash_point("sync-locked")  # the (cluster-wide) write lock is held
            run = SyncRun(self._db)  # under the lock: what it sees stays so
            for batch in batches:
                with spent:
                    changes = self._keys.stored_changes(batch)
                    result = SyncBatch(self._db, now, self.rules, cutoff, run).run(changes)
                    total.events.extend(result.events)
                    total.dirty_feeds |= result.dirty_feeds
                    total.changed_guids |= result.changed_guids
                    total.rejected += result.rejected
                    spent.count += len(batch)
            with spent:
                run.members.write(self._db)
            committing = time.perf_counter()
            # Recorded with the changes themselves, so a crash before the feeds are
            # written cannot leave them stale forever.
            self.add_pending(total.dirty_feeds)
        committed = time.perf_counter() - committing
        self._backend.synced()
        LOGGER.debug(
            "catalog sync: %d changes applied in %.3f s (%.3f s CPU), committed in %.3f s",
            spent.count,
            spent.wall,
            spent.cpu,
            committed,
        )
        # A file moved can be seen removed in one batch and added in a later one.
        total.events = self._keys.local_events(pair_moves(total.events))
        return total
