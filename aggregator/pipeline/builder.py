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

A bad file is recorded and reported, never fatal: the other files and feeds go on.

The stages' helpers live beside it: `workers` (what runs in other processes), `cutoff` (what
is visible when), `outputs` (the config's feeds, the indexes), `lock` (one writer).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

from aggregator.catalog import Catalog, FeedRecord, FileChange
from aggregator.config import Settings, check_folders
from aggregator.errors import FencedOut
from aggregator.events import (
    BuildFinished,
    ChangeEvent,
    SourceUnreadable,
)
from aggregator.faults import crash_point
from aggregator.model import FeedKey, FeedKind
from aggregator.output import (
    ambiguous_names,
    feed_name,
    feeds_to_render,
)
from aggregator.pipeline.changes import find_changes, vanished
from aggregator.pipeline.cutoff import Visibility
from aggregator.pipeline.lock import BuildLock
from aggregator.pipeline.outputs import Outputs, plan_settings_of, settings_fingerprint
from aggregator.pipeline.sharing import ClusterRole, copy_rendered
from aggregator.pipeline.targets import DiskTarget, Staged, StoreTarget, Target, outcomes
from aggregator.pipeline.workers import Workers
from aggregator.reading import FileStat, SourceFilter

LOGGER = logging.getLogger("aggregator.build")

# Parsed files are synced in batches of this many while the workers read the next ones.
SYNC_BATCH = 1000


class Progress(Protocol):
    """Told how far a stage has got (a progress bar on a terminal, nothing otherwise):
    the files parsed, or the feeds rendered and written."""

    def start(self, total: int) -> None: ...

    def advance(self, count: int) -> None: ...

    def finish(self) -> None: ...


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


class Builder:
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

    def render_when(self, renderer: Callable[[], int | None]) -> None:
        """A daemon on a shared catalog: render when `renderer` answers a fencing epoch
        (this node leads now), else only copy the rendered set (see `ClusterRole`). Without
        it, each build campaigns for the lead for its own length (a one-shot build)."""
        if self.cluster is not None:
            self.cluster.renderer = renderer

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
        keys: list[FeedKey] = []
        written = unchanged = failed = 0
        try:
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
            if epoch is None:
                synced = time.perf_counter()
            else:
                events.extend(visibility.advance(now, sync.changed_guids))
                synced = time.perf_counter()
                keys, (written, unchanged, failed) = self._render(
                    changed is None,
                    changed_guids=sync.changed_guids,
                    events=events,
                    workers=workers,
                    now=now,
                    progress=render_progress,
                )
        finally:
            workers.close()
        copied = 0
        if self.cluster is not None:
            copied, copy_failed = self._copy(changed is None, events)
            failed += copy_failed
        published = self.catalog.published_count(visibility.until(now))
        next_due = visibility.next_due(now) if epoch is not None else None
        seconds = time.perf_counter() - started
        LOGGER.debug(
            "build: %d files read and synced in %.3f s, %d feeds rendered in %.3f s",
            len(to_read),
            synced - started,
            len(keys),
            seconds - (synced - started),
        )
        events.append(
            BuildFinished(
                seconds=seconds,
                read=len(to_read),
                published=published,
                rejected=sync.rejected,
                written=written,
                unchanged=unchanged,
            )
        )
        return BuildReport(
            events=tuple(events),
            read=len(to_read),
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

    def _render(
        self,
        full_scan: bool,
        *,
        changed_guids: set[str],
        events: list[ChangeEvent],
        workers: Workers,
        now: datetime,
        progress: Progress | None,
    ) -> tuple[list[FeedKey], tuple[int, int, int]]:
        """Choose, render and publish the feeds: (the feeds rendered, (written, unchanged,
        failed)). A render a stale leader stores is refused whole (`FencedOut`)."""
        # Read once: both steps ask for them, and nothing writes them in between.
        records = self.catalog.feed_records()
        keys, fingerprint = self._choose_feeds(records, full_scan=full_scan)
        keys, ambiguous = self._disambiguate(keys, now, records)
        try:
            counts = self._render_and_publish(
                keys, changed_guids, events, workers, now, progress=progress
            )
        except FencedOut as exc:
            LOGGER.warning("%s", exc)
            return [], (0, 0, 0)
        if fingerprint is not None and not counts[2]:
            self.catalog.set_render_settings(fingerprint)
        if not counts[2]:
            self.catalog.set_ambiguous_feeds(ambiguous)
        return keys, counts

    def _target(self, epoch: int | None) -> Target:
        """Where this build's rendered files go: the output folder on one machine, the
        rendered set for the cluster's renderer (a follower renders nothing)."""
        if self.cluster is None or epoch is None:
            return DiskTarget(self.output, gzip=self.settings.gzip_sidecars)
        return StoreTarget(self.catalog, epoch, self.settings.node)

    def _copy(self, full_scan: bool, events: list[ChangeEvent]) -> tuple[int, int]:
        """A shared catalog: bring this node's output folder up to the rendered set (a
        one-shot build that follows waits for the leader's render first); (files written,
        files failed)."""
        assert self.cluster is not None
        rendered = self.cluster.wait_for_render()
        result = copy_rendered(
            self.catalog, self.output, gzip=self.settings.gzip_sidecars, full=full_scan
        )
        events.extend(result.failed)
        return result.written, len(result.failed) + (not rendered)

    def _choose_feeds(
        self, records: list[FeedRecord], *, full_scan: bool
    ) -> tuple[list[FeedKey], str | None]:
        """(the feeds to render, the new settings fingerprint if the settings changed).

        A full scan also renders the feeds whose files are missing. With new settings
        every feed is rendered, and the files of formats turned off are deleted; the new
        fingerprint is stored once every feed was written with them.
        """
        fingerprint = settings_fingerprint(self.plan_settings)
        settings_changed = self.catalog.render_settings() != fingerprint
        dirty = self.catalog.pending_feeds()
        # Every feed that lists something was written once, or is pending since the
        # sync that gave it its first item.
        known = {r.key for r in records} | dirty
        missing = self.outputs.missing(known) if full_scan else []
        keys = feeds_to_render(dirty, known, missing, settings_changed=settings_changed)
        if settings_changed:
            self.outputs.remove_turned_off(known)
        return keys, fingerprint if settings_changed else None

    def _disambiguate(
        self, keys: list[FeedKey], now: datetime, records: list[FeedRecord]
    ) -> tuple[list[FeedKey], frozenset[FeedKey]]:
        """(the feeds to render, the feeds whose names collide): the names are the feeds'
        as last written, and for those about to be rendered their newest item's. A feed
        whose name starts or stops colliding is rendered too, for its title."""
        # Only feeds that list something count: an empty one is in no index.
        names = {r.key: r.name for r in records if r.guids}
        until = self.visibility.until(now)
        for key in keys:
            if key.kind in (FeedKind.TOPIC, FeedKind.PROVIDER):
                newest = self.catalog.newest(key, 1, until=until)
                if newest:
                    names[key] = feed_name(key, newest, names.get(key))
                else:
                    names.pop(key, None)
        ambiguous = ambiguous_names(names.items())
        self.plan_settings = replace(self.plan_settings, ambiguous=ambiguous)
        known = {r.key for r in records}
        flipped = (ambiguous ^ self.catalog.ambiguous_feeds()) & known
        return sorted(set(keys) | flipped), ambiguous

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

    def _render_and_publish(
        self,
        keys: list[FeedKey],
        changed_guids: set[str],
        events: list[ChangeEvent],
        workers: Workers,
        now: datetime,
        *,
        progress: Progress | None = None,
    ) -> tuple[int, int, int]:
        """Render the chosen feeds and the indexes; (written, unchanged, failed) feeds."""
        target = self.outputs.target
        batch = target.batch()
        # What commit's results are matched with; the bytes (and sidecars) are not kept: once
        # staged they are in the temp files, and holding every feed's would raise peak memory.
        rendered: list[Staged] = []
        if progress is not None:
            progress.start(len(keys))
        try:
            # Staged as they arrive, so writing overlaps the workers' rendering.
            for made in workers.render(
                self.catalog,
                keys,
                self.plan_settings,
                now,
                node=self.settings.node,
                embargo=self.settings.embargo,
                gzip=self.settings.gzip_sidecars,
            ):
                paths = self.outputs.paths_of(made.record.key)
                files = [f for f in made.files if f.path in paths]
                for file in files:
                    batch.stage(file)
                rendered.append((made.record, made.previous_guids, tuple(f.path for f in files)))
                if progress is not None:
                    progress.advance(1)
        except BaseException:
            batch.abandon()
            if progress is not None:
                progress.finish()
            raise
        # The pings are owed before the files are renamed: a crash after the rename but before
        # the feeds are recorded would re-render the same bytes next time, find nothing to
        # write and owe nothing. A ping for a rename that then failed only makes a hub fetch
        # the old bytes again.
        if self.settings.hubs:
            topics = [self.settings.base_url + path for path in batch.staged_paths]
            self.catalog.owe_pings(
                [(hub, topic) for topic in topics for hub in self.settings.hubs], self.now()
            )
        # The rendered set: the files, the feeds' records, the indexes and the mark stored
        # in one transaction (fenced); the output folder: each as it comes, as ever.
        with self.catalog.transaction() if isinstance(target, StoreTarget) else nullcontext():
            results = {r.path: r for r in batch.commit()}
            if progress is not None:
                progress.finish()
            done, failed, written, unchanged = outcomes(rendered, results, changed_guids, events)
            # Feeds written mark the indexes pending in the same transaction; they stay
            # pending until both are written, so a crash between the two cannot leave one
            # stale.
            self.catalog.finish_feeds(done, failed)
            crash_point("after-feeds-recorded")
            self.outputs.update_indexes(events, now)
            target.flush()
        if isinstance(target, StoreTarget):
            crash_point("after-render-stored")
        return written, unchanged, len(failed)
