"""The one place that runs the stages in order.

    changed paths (a full scan, or the watcher's batch)
      | stat, and keep those whose size/mtime differ from the catalog's  (sources)
      | read + parse, in worker processes when there are many          (articles)
      | sync: winners per webUrl, permanent GUIDs, which feeds changed (catalog)
      | plan each changed feed from its newest items                   (plan)
      | render RSS 2.0, Atom 1.0 and JSON Feed 1.1 bytes               (render)
      | write atomically, skipping unchanged bytes                     (publish)
      | record the WebSub pings the new bytes owe                      (→ websub)
      | change events                                                  (→ notify)

On a shared catalog the plan, render and publish stages run on the cluster's renderer alone,
publishing into the rendered set; every node then copies it into its own folder (`sharing`).

A bad file is recorded and reported, never fatal: the other files and feeds go on.

The stages' helpers live beside it: `workers` (what runs in other processes), `cutoff` (what
is visible when), `outputs` (the config's feeds, the indexes), `lock` (one writer).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from aggregator.catalog import Catalog, FileChange, SyncResult
from aggregator.config import Settings, check_folders
from aggregator.errors import BuildIncomplete, NodeNameInUse
from aggregator.events import (
    ArticleScheduled,
    BuildFinished,
    ChangeEvent,
    SourceUnreadable,
)
from aggregator.faults import crash_point
from aggregator.model import FeedKey
from aggregator.pipeline.changes import find_changes, vanished
from aggregator.pipeline.cutoff import Visibility
from aggregator.pipeline.lock import BuildLock
from aggregator.pipeline.outputs import Outputs, plan_settings_of
from aggregator.pipeline.rendering import Progress, RenderMixin
from aggregator.pipeline.sharing import ClusterRole, CopyResult, copy_rendered
from aggregator.pipeline.targets import StoredVersion, take_stored
from aggregator.pipeline.workers import Workers
from aggregator.reading import FileStat, SourceFilter

LOGGER = logging.getLogger("aggregator.build")

# Parsed files are synced in batches of this many while the workers read the next ones.
SYNC_BATCH = 1000


@dataclass(frozen=True, slots=True)
class BuildReport:
    """What one build did."""

    events: tuple[ChangeEvent, ...]
    read: int
    published: int
    rejected: int
    written: int
    unchanged: int
    failed: int
    seconds: float
    # When the next embargoed article falls due or the next item ages out of a windowed
    # feed, after this build's cut-off (None: nothing is scheduled).
    next_due: datetime | None = None
    # The folders that could not be listed: what they held stays listed; not a full success.
    unreadable: tuple[SourceUnreadable, ...] = ()
    # A shared catalog: files of the cluster's rendered set this node copied (new bytes).
    copied: int = 0


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Builder(RenderMixin):
    """Keeps the catalog open across builds (the daemon runs many; the CLI one)."""

    def __init__(self, settings: Settings, *, now: Callable[[], datetime] = _utcnow) -> None:
        self.settings = settings
        self.now = now
        check_folders(settings)
        input_dir = settings.input.resolve()
        self.filter = SourceFilter(
            input_dir,
            settings.patterns,
            excluded=(settings.output, settings.state),
            follow_external_links=settings.follow_external_links,
        )
        self.output = settings.output
        self.lock = BuildLock(settings.state)
        self.lock.acquire(settings.lock_wait_seconds)
        try:
            self.catalog = Catalog(
                settings.catalog_location, node=settings.node, rules=settings.feed_rules
            )
        except BaseException:
            self.lock.release()
            raise
        self.plan_settings = plan_settings_of(settings)
        self.visibility = Visibility(self.catalog, self.plan_settings, embargo=settings.embargo)
        self.outputs = Outputs(self.catalog, settings, self.plan_settings, self.visibility)
        # On a shared catalog the database's clock is the one clock (`now` reads it).
        self.cluster: ClusterRole | None = None
        if self.catalog.shared:
            self.cluster = ClusterRole(
                self.catalog, str(settings.catalog_location), settings.node, now, None
            )
            self.now = self.cluster.now
        # Under the lock, so no other writer's temp files are live.
        self.outputs.clear_stale_temps()

    def reconfigure(self, settings: Settings) -> None:
        """Build with new settings from now on (the daemon's reload), on the same folders,
        catalog and node (the caller keeps those: they need a restart). The next build
        re-renders what they change: the render fingerprint and the feed definitions."""
        self.settings = settings
        self.catalog.rules = settings.feed_rules
        self.plan_settings = plan_settings_of(settings)
        self.visibility = Visibility(self.catalog, self.plan_settings, embargo=settings.embargo)
        self.outputs = Outputs(self.catalog, settings, self.plan_settings, self.visibility)

    def render_when(self, renderer: Callable[[], int | None]) -> Builder:
        """A daemon on a shared catalog: render when `renderer` answers a fencing epoch
        (this node leads now), else only copy the rendered set (see `ClusterRole`). Without
        it, each build campaigns for the lead for its own length (a one-shot build)."""
        if self.cluster is not None:
            self.cluster.renderer = renderer
        return self

    def close(self) -> None:
        """Close the catalog and let another process build."""
        self.catalog.close()
        self.lock.release()

    def __enter__(self) -> Builder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the stages ------------------------------------------------------------------

    def build(
        self,
        changed: Iterable[str] | None = None,
        progress: Progress | None = None,
        render_progress: Progress | None = None,
    ) -> BuildReport:
        """Bring the feeds up to date.

        `changed`: paths (relative to the input folder, or absolute) that may have changed;
        None scans the whole input folder. Either way only files whose size or mtime differ
        from what the catalog saw are read, and only feeds whose items changed are rendered.
        `progress` follows the reading, `render_progress` the rendering and writing (apart,
        so the daemon can stop in the first and never in the second).

        On a shared catalog only the cluster's renderer renders (into the rendered set);
        every node then copies the set's new versions into its own output folder.
        """
        started = time.perf_counter()
        self.lock.check()
        cluster = self.cluster
        if cluster is None:
            # The one cut-off of this build: every feed, count and index agrees on what is
            # visible. Nothing else in the build asks the clock.
            return self._build(
                changed,
                now=self.now(),
                epoch=0,
                started=started,
                progress=progress,
                render_progress=render_progress,
            )
        # The database's clock: no node's skew changes what any node lists.
        now = cluster.clock()
        try:
            epoch = cluster.turn()
            return self._build(
                changed,
                now=now,
                epoch=epoch,
                started=started,
                progress=progress,
                render_progress=render_progress,
            )
        finally:
            cluster.end_turn()

    def _build(
        self,
        changed: Iterable[str] | None,
        *,
        now: datetime,
        epoch: int | None,
        started: float,
        progress: Progress | None,
        render_progress: Progress | None,
    ) -> BuildReport:
        """One build at the cut-off `now`; `epoch` None: this node does not render."""
        visibility = self.visibility
        self.outputs.target = self._target(epoch)
        if epoch is not None:
            self.outputs.apply_definitions()
            self.outputs.target.flush()
        to_read, gone, unreadable = find_changes(self.filter, self.catalog, changed)
        crash_point("after-scan")
        workers = Workers(self.settings.worker_count)
        try:
            if not to_read and not gone:
                # No file changed: an empty sync would give an empty result after a write
                # transaction (on a shared catalog, the cluster-wide write lock: a build for
                # another node's ring). What a sync starts once committed still starts: the
                # copy of the write-ahead log, which an open catalog (a daemon's) needs.
                sync = SyncResult()
                self.catalog.checkpoint()
            else:
                sync = self.catalog.sync(
                    self._changes(to_read, gone, workers, progress),
                    # An article without a date is listed under its first publication, which
                    # is this build's cut-off: a later clock reading would embargo it until
                    # the next build.
                    lambda: now,
                    expected=len(to_read) + len(gone),
                    cutoff=visibility.until(now),
                )
            crash_point("after-sync")
            events: list[ChangeEvent] = [*unreadable, *sync.events]
            try:
                return self._after_sync(
                    sync,
                    events,
                    workers,
                    full_scan=changed is None,
                    now=now,
                    epoch=epoch,
                    started=started,
                    read=len(to_read),
                    unreadable=unreadable,
                    progress=render_progress,
                )
            except Exception as exc:
                if not (sync.events or sync.dirty_feeds) or isinstance(exc, NodeNameInUse):
                    raise
                # The catalog has the sync's changes: their events must not be lost, and
                # the feeds it marked stay pending for the next build.
                raise BuildIncomplete(exc, events, len(to_read) + len(gone)) from exc
        finally:
            workers.close()

    def _after_sync(
        self,
        sync: SyncResult,
        events: list[ChangeEvent],
        workers: Workers,
        *,
        full_scan: bool,
        now: datetime,
        epoch: int | None,
        started: float,
        read: int,
        unreadable: list[SourceUnreadable],
        progress: Progress | None,
    ) -> BuildReport:
        """The stages after the sync (plan, render, publish; a shared catalog's copy)."""
        visibility = self.visibility
        keys: list[FeedKey] = []
        written = unchanged = failed = 0
        if epoch is None:
            synced = time.perf_counter()
            if any(isinstance(e, ArticleScheduled) for e in sync.events):
                self.catalog.ring_renderer()  # its timer must learn the new date
        else:
            events.extend(visibility.advance(now, sync.changed_guids))
            synced = time.perf_counter()
            keys, (written, unchanged, failed) = self._render(
                full_scan,
                changed_guids=sync.changed_guids,
                events=events,
                workers=workers,
                now=now,
                progress=progress,
            )
        workers.close()
        copied = 0
        if self.cluster is not None:
            copied, copy_failed = self._copy(full_scan, events)
            failed += copy_failed
        published = self.catalog.published_count(visibility.until(now))
        next_due = visibility.next_due(now) if epoch is not None else None
        seconds = time.perf_counter() - started
        LOGGER.debug(
            "build: %d files read and synced in %.3f s, %d feeds rendered in %.3f s",
            read,
            synced - started,
            len(keys),
            seconds - (synced - started),
        )
        events.append(
            BuildFinished(
                seconds=seconds,
                read=read,
                published=published,
                rejected=sync.rejected,
                written=written,
                unchanged=unchanged,
            )
        )
        return BuildReport(
            events=tuple(events),
            read=read,
            published=published,
            rejected=sync.rejected,
            written=written,
            unchanged=unchanged,
            failed=failed,
            seconds=seconds,
            next_due=next_due,
            unreadable=tuple(unreadable),
            copied=copied,
        )

    def copy(self, *, full: bool = False, own: Sequence[StoredVersion] = ()) -> CopyResult:
        """Copy the rendered set's versions past this node's copy mark (`full`: and its missing
        files; `own`: those this build stored): a build's last step, or a daemon's alone."""
        return copy_rendered(
            self.catalog, self.output, gzip=self.settings.gzip_sidecars, full=full, own=own
        )

    def _copy(self, full_scan: bool, events: list[ChangeEvent]) -> tuple[int, int]:
        """A shared catalog: the folder brought up to the rendered set; (written, failed)."""
        assert self.cluster is not None
        rendered = self.cluster.wait_for_render()
        result = self.copy(full=full_scan, own=take_stored(self.outputs.target))
        events.extend(result.failed)
        return result.written, len(result.failed) + (not rendered)

    def _changes(
        self,
        to_read: dict[str, FileStat],
        gone: set[str],
        workers: Workers,
        progress: Progress | None,
    ) -> Iterator[list[FileChange]]:
        """Batches of file changes, yielded as the files are parsed.

        The stat recorded is the one taken before reading, so a file changed meanwhile
        has a newer mtime than recorded and is read again next time.
        """
        if progress is not None:
            progress.start(len(to_read))
        # Deletions ride with the first files read: a move (old path gone, new path
        # read) that lands in one batch is one update that keeps its GUID.
        batch = [FileChange(path, None) for path in sorted(gone)]
        root = str(self.filter.root)
        max_bytes = self.settings.max_file_bytes
        rules = self.settings.feed_rules
        parsed = workers.read(root, list(to_read), max_bytes, rules)
        for rel, stored, error, withdrawn in parsed:
            stat: FileStat | None = to_read[rel]
            if error is not None and vanished(self.filter, rel):
                stat = None  # vanished while being read: it is a deletion
            batch.append(FileChange(rel, stat, stored, error, withdrawn=withdrawn))
            if len(batch) >= SYNC_BATCH:
                if progress is not None:
                    progress.advance(len(batch))
                yield batch
                crash_point("after-first-sync-batch")
                batch = []
        if batch:
            if progress is not None:
                progress.advance(len(batch))
            yield batch
        if progress is not None:
            progress.finish()
