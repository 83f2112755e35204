"""The render stage of a build: choose the feeds to render (the changed, the missing, all of
them under new settings), tell colliding names apart, render them in the workers, publish
them and the indexes to the build's target (`pipeline.targets`), and record them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Protocol

from aggregator.catalog import Catalog
from aggregator.config import Settings
from aggregator.errors import FencedOut
from aggregator.events import ChangeEvent
from aggregator.faults import crash_point
from aggregator.model import FeedKey, FeedKind
from aggregator.output import PlanSettings, ambiguous_names, feed_name, feeds_to_render
from aggregator.pipeline.cutoff import Visibility
from aggregator.pipeline.outputs import Outputs
from aggregator.pipeline.sharing import ClusterRole
from aggregator.pipeline.targets import DiskTarget, Staged, StoreTarget, Target, outcomes
from aggregator.pipeline.workers import Workers

LOGGER = logging.getLogger("aggregator.build")


class Progress(Protocol):
    """Told how far a stage has got (a progress bar on a terminal, nothing otherwise):
    the files parsed, or the feeds rendered and written."""

    def start(self, total: int) -> None: ...

    def advance(self, count: int) -> None: ...

    def finish(self) -> None: ...


class RenderMixin:
    """The `Builder`'s render stage (its state is the builder's)."""

    settings: Settings
    catalog: Catalog
    output: Path
    plan_settings: PlanSettings
    visibility: Visibility
    outputs: Outputs
    cluster: ClusterRole | None
    now: Callable[[], datetime]

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
        # Read once: both steps ask for them, and nothing writes them in between. The names
        # alone: a build that renders nothing need not decode every feed's GUIDs.
        written = self.catalog.feed_names()
        keys, fingerprint = self._choose_feeds(written, full_scan=full_scan)
        keys, ambiguous = self._disambiguate(keys, now, written)
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
        return StoreTarget(
            self.catalog, epoch, self.settings.node, gzip=self.settings.gzip_sidecars
        )

    def _choose_feeds(
        self, written: dict[FeedKey, str | None], *, full_scan: bool
    ) -> tuple[list[FeedKey], str | None]:
        """(the feeds to render, the new settings fingerprint if the settings changed).

        A full scan also renders the feeds whose files are missing. With new settings
        every feed is rendered, and the files of formats turned off are deleted; the new
        fingerprint is stored once every feed was written with them.
        """
        fingerprint = self.outputs.settings_fingerprint
        settings_changed = self.catalog.render_settings() != fingerprint
        dirty = self.catalog.pending_feeds()
        # Every feed that lists something was written once, or is pending since the
        # sync that gave it its first item.
        known = written.keys() | dirty
        missing = self.outputs.missing(known) if full_scan else []
        keys = feeds_to_render(dirty, known, missing, settings_changed=settings_changed)
        if settings_changed:
            self.outputs.remove_turned_off(known)
        return keys, fingerprint if settings_changed else None

    def _disambiguate(
        self, keys: list[FeedKey], now: datetime, written: dict[FeedKey, str | None]
    ) -> tuple[list[FeedKey], frozenset[FeedKey]]:
        """(the feeds to render, the feeds whose names collide): the names are the feeds'
        as last written, and for those about to be rendered their newest item's. A feed
        whose name starts or stops colliding is rendered too, for its title."""
        # Only feeds that list something count: an empty one is in no index.
        names = {key: name for key, name in written.items() if name is not None}
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
        known = written.keys()
        flipped = (ambiguous ^ self.catalog.ambiguous_feeds()) & known
        return sorted(set(keys) | flipped), ambiguous

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
            # The indexes read every feed's record only if they are stale: the render
            # stage read the feeds' names alone, so a build that renders nothing decodes
            # no GUID list.
            self.outputs.update_indexes(events, now)
            target.flush()
        if isinstance(target, StoreTarget):
            crash_point("after-render-stored")
        return written, unchanged, len(failed)
