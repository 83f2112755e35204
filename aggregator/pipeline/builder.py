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

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

from aggregator import __version__
from aggregator.catalog import Catalog, FeedRecord, FileChange
from aggregator.config import Settings, check_folders
from aggregator.events import (
    BuildFinished,
    ChangeEvent,
    FeedUnchanged,
    FeedWritten,
    SourceUnreadable,
    WriteFailed,
)
from aggregator.faults import crash_point
from aggregator.model import FeedKey, FeedKind
from aggregator.output import (
    PlanSettings,
    PublishBatch,
    PublishResult,
    added_updated_removed,
    ambiguous_names,
    feed_name,
    feeds_to_render,
)
from aggregator.pipeline.cutoff import Visibility
from aggregator.pipeline.lock import BuildLock
from aggregator.pipeline.outputs import Outputs
from aggregator.pipeline.workers import Workers
from aggregator.reading import FileStat, SourceFilter, scan_tree, stat_source

LOGGER = logging.getLogger("aggregator.build")

# A feed staged for publishing: its record, the GUIDs it listed before, the paths it is
# written to.
_Staged = tuple[FeedRecord, tuple[str, ...], tuple[str, ...]]
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
        self.plan_settings = _plan_settings(settings)
        self.visibility = Visibility(self.catalog, self.plan_settings, embargo=settings.embargo)
        self.outputs = Outputs(self.catalog, settings, self.plan_settings, self.visibility)
        # Under the lock, so no other writer's temp files are live.
        self.outputs.clear_stale_temps()

    def reconfigure(self, settings: Settings) -> None:
        """Build with new settings from now on (the daemon's reload), on the same folders,
        catalog and node (the caller keeps those: they need a restart). The next build
        re-renders what they change: the render fingerprint and the feed definitions."""
        self.settings = settings
        self.catalog.rules = settings.feed_rules
        self.plan_settings = _plan_settings(settings)
        self.visibility = Visibility(self.catalog, self.plan_settings, embargo=settings.embargo)
        self.outputs = Outputs(self.catalog, settings, self.plan_settings, self.visibility)

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
        """
        started = time.perf_counter()
        self.lock.check()
        # The one cut-off of this build: every feed, count and index agrees on what is
        # visible. Nothing else in the build asks the clock.
        now = self.now()
        visibility = self.visibility
        self.outputs.apply_definitions()
        to_read, gone, unreadable = _find_changes(self.filter, self.catalog, changed)
        crash_point("after-scan")
        workers = Workers(self.settings.worker_count)
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
            events.extend(visibility.advance(now, sync.changed_guids))
            synced = time.perf_counter()
            # Read once: both steps ask for them, and nothing writes them in between.
            records = self.catalog.feed_records()
            keys, fingerprint = self._choose_feeds(records, full_scan=changed is None)
            keys, ambiguous = self._disambiguate(keys, now, records)
            written, unchanged, failed = self._render_and_publish(
                keys,
                sync.changed_guids,
                events,
                workers,
                now,
                progress=render_progress,
            )
        finally:
            workers.close()
        if fingerprint is not None and not failed:
            self.catalog.set_render_settings(fingerprint)
        if not failed:
            self.catalog.set_ambiguous_feeds(ambiguous)

        published = self.catalog.published_count(visibility.until(now))
        next_due = visibility.next_due(now)
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
        )

    def _choose_feeds(
        self, records: list[FeedRecord], *, full_scan: bool
    ) -> tuple[list[FeedKey], str | None]:
        """(the feeds to render, the new settings fingerprint if the settings changed).

        A full scan also renders the feeds whose files are missing. With new settings
        every feed is rendered, and the files of formats turned off are deleted; the new
        fingerprint is stored once every feed was written with them.
        """
        fingerprint = _settings_fingerprint(self.plan_settings)
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
            if error is not None and _vanished(self.filter, rel):
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
        batch = PublishBatch(self.output, gzip=self.settings.gzip_sidecars)
        # What commit's results are matched with; the bytes (and sidecars) are not kept: once
        # staged they are in the temp files, and holding every feed's would raise peak memory.
        rendered: list[_Staged] = []
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
        results = {r.path: r for r in batch.commit()}
        if progress is not None:
            progress.finish()
        done, failed, written, unchanged = _outcomes(rendered, results, changed_guids, events)
        # Feeds written mark the indexes pending in the same transaction; they stay pending
        # until both are written, so a crash between the two cannot leave one stale.
        self.catalog.finish_feeds(done, failed)
        crash_point("after-feeds-recorded")
        self.outputs.update_indexes(events, now)
        return written, unchanged, len(failed)


def _find_changes(
    sources: SourceFilter, catalog: Catalog, changed: Iterable[str] | None
) -> tuple[dict[str, FileStat], set[str], list[SourceUnreadable]]:
    """(files to read with their stat, files gone, folders that could not be read) — by size
    and mtime against the catalog. A known file not seen because its folder could not be
    listed (or the input folder is missing) is not gone: it stays as the catalog knew it."""
    if changed is None:
        scan = scan_tree(sources)
        on_disk = scan.found
        known = catalog.file_signatures()
        if on_disk == known and not scan.unreadable:  # nothing changed: one test, in C
            return {}, set(), []
        changed_paths = sorted(p for p, sig in on_disk.items() if known.get(p) != sig)
        to_read = {p: FileStat.parse(on_disk[p]) for p in changed_paths}
        gone = set()
        kept = dict.fromkeys(scan.unreadable, 0)
        for path in known.keys() - on_disk.keys():
            folder = scan.covering(path)
            if folder is None:
                gone.add(path)
            else:
                kept[folder] += 1
        return to_read, gone, _unreadable(scan.unreadable, kept)
    to_read, gone = {}, set()
    failed: dict[str, str] = {}
    kept_by: dict[str, int] = {}
    if not sources.root.is_dir():
        # Between the two moves of a swap, or a mount gone: every path would look deleted.
        return to_read, gone, [SourceUnreadable("", "the input folder is missing", 0)]
    for path in sorted(set(changed)):
        rel = sources.relative(path)
        if rel is None or not sources.matches(rel):
            continue
        known_stat = catalog.file_stat(rel)
        try:
            stat = stat_source(sources, rel)
        except OSError as exc:
            folder = rel.rpartition("/")[0]
            failed.setdefault(folder, exc.strerror or str(exc))
            kept_by[folder] = kept_by.get(folder, 0) + (known_stat is not None)
            continue
        if stat is None:
            if known_stat is not None:
                gone.add(rel)
        elif stat != known_stat:
            to_read[rel] = stat
    return to_read, gone, _unreadable(failed, kept_by)


def _unreadable(reasons: dict[str, str], kept: dict[str, int]) -> list[SourceUnreadable]:
    return [SourceUnreadable(path, reasons[path], kept.get(path, 0)) for path in sorted(reasons)]


def _vanished(sources: SourceFilter, rel: str) -> bool:
    """Whether a file that failed to read is gone (a deletion), rather than unreadable."""
    try:
        return stat_source(sources, rel) is None
    except OSError:
        return False


def _plan_settings(settings: Settings) -> PlanSettings:
    """The settings that shape a feed's bytes."""
    return PlanSettings(
        base_url=settings.base_url,
        titles=settings.titles,
        language=settings.language,
        max_items=settings.max_items,
        max_excerpt_chars=settings.max_excerpt_chars,
        custom=settings.feeds,
        formats=settings.formats,
        hubs=settings.hubs,
    )


def _settings_fingerprint(plan_settings: PlanSettings) -> str:
    shaping = asdict(plan_settings)
    # Each definition has its own fingerprint (`Outputs.apply_definitions`); the ambiguous
    # names are kept apart too (`Builder._disambiguate`).
    del shaping["custom"]
    del shaping["ambiguous"]
    data = json.dumps([__version__, shaping], sort_keys=True, default=str)
    return hashlib.sha256(data.encode()).hexdigest()


def _outcomes(
    rendered: list[_Staged],
    results: dict[str, PublishResult],
    changed_guids: set[str],
    events: list[ChangeEvent],
) -> tuple[list[FeedRecord], list[FeedKey], int, int]:
    """(feeds written or unchanged, feeds that failed, written count, unchanged count) once
    the batch is committed; each feed's event is appended to `events`."""
    written = unchanged = 0
    done: list[FeedRecord] = []
    failed: list[FeedKey] = []
    for record, previous_guids, written_to in rendered:
        pair = [results[path] for path in written_to]
        errors = [r.error for r in pair if r.error is not None]
        if errors:
            failed.append(record.key)
            events.extend(WriteFailed(error.path, error.reason) for error in errors)
            continue
        done.append(record)
        if any(r.written for r in pair):
            written += 1
            added, updated, removed = added_updated_removed(
                previous_guids, record.guids, changed_guids
            )
            events.append(FeedWritten(record.key, added, updated, removed, len(record.guids)))
        else:
            unchanged += 1
            events.append(FeedUnchanged(record.key))
    return done, failed, written, unchanged
