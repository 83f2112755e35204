"""What the output folder holds besides the feeds' bytes: the feeds the config defines (a
feed no longer defined, or a format turned off, has its files deleted), the feeds whose files
are missing, and the indexes (index.opml, index.html, an OPML per group), written again when a
feed changed, a file is missing or the indexes' code changed; and the temp files an
interrupted build left.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import asdict
from datetime import datetime

from aggregator import __version__
from aggregator.catalog import Catalog
from aggregator.config import Settings
from aggregator.events import ChangeEvent, WriteFailed
from aggregator.model import ALL_FORMATS, FeedKey, FeedKind
from aggregator.output import (
    FeedListing,
    PlanSettings,
    remove_stale_temps,
    renderer_digest,
    summaries,
)
from aggregator.pipeline.cutoff import Visibility
from aggregator.pipeline.targets import DiskTarget, Target
from aggregator.words import counted

# The build's logger: these lines have always been the build's.
LOGGER = logging.getLogger("aggregator.build")

INDEXES = ("index.opml", "index.html")
# Headlines of the all feed shown on index.html.
INDEX_HEADLINES = 10


class Outputs:
    """The output folder of one build's settings, and what the catalog says it holds."""

    def __init__(
        self,
        catalog: Catalog,
        settings: Settings,
        plan_settings: PlanSettings,
        visibility: Visibility,
    ) -> None:
        self.catalog = catalog
        self.settings = settings
        self.plan_settings = plan_settings
        # What the settings that shape a feed's bytes hash to: the same for every build of
        # these settings (the render stage's names for colliding feeds are left out of it).
        self.settings_fingerprint = settings_fingerprint(plan_settings)
        self.visibility = visibility
        self.output = settings.output
        # Where the rendered files go: this folder, or (the renderer of a shared catalog)
        # the cluster's rendered set; the builder chooses it for each build.
        self.target: Target = DiskTarget(self.output, gzip=settings.gzip_sidecars)

    def clear_stale_temps(self) -> None:
        """Delete the temp files an interrupted build left in the output folder; only under
        the lock, when no other writer's temp files can be live."""
        removed = remove_stale_temps(self.output)
        if removed:
            LOGGER.info(
                "removed %s left in %s by an interrupted build",
                counted(removed, "temp file"),
                self.output,
            )

    def apply_definitions(self) -> list[FeedKey]:
        """Bring the catalog in line with the feeds the config defines; returns the feeds
        removed (their files are deleted).

        A fingerprint of each definition is stored: when one changes (or a feed comes or
        goes, or a built-in group is switched), every stored article's feeds are decided
        again from the catalog (no file is read) and only the feeds that gained or lost
        items, or whose definition changed, are rendered.
        """
        catalog = self.catalog
        rules = self.settings.feed_rules
        current = {
            "builtin": f"{rules.all},{rules.topics},{rules.providers}",
            **{str(d.key): d.membership_fingerprint() for d in self.settings.feeds},
        }
        stored = catalog.feed_definitions() or {"builtin": "True,True,True"}
        if stored == current:
            return []
        catalog.reassign_feeds(rules)
        changed = {
            FeedKey.parse(name)
            for name, fingerprint in current.items()
            if name != "builtin" and stored.get(name) != fingerprint
        }
        switched_off = {
            kind
            for kind, on in (
                (FeedKind.ALL, rules.all),
                (FeedKind.TOPIC, rules.topics),
                (FeedKind.PROVIDER, rules.providers),
            )
            if not on
        }
        removed = [
            record.key
            for record in catalog.feed_records()
            if record.key.kind in switched_off
            or (record.key.kind is FeedKind.CUSTOM and str(record.key) not in current)
        ]
        removed += [
            key
            for key in catalog.pending_feeds()
            if key.kind in switched_off or (key.kind is FeedKind.CUSTOM and str(key) not in current)
        ]
        catalog.forget_feeds(removed)
        for key in removed:
            # A feed no longer defined is deleted, not left frozen: a reader polling it
            # gets a 404 instead of a feed that silently stopped.
            for fmt in ALL_FORMATS:
                self.target.remove(key.path(fmt), "feed no longer defined")
        # A format dropped from a definition: its file goes too.
        self.remove_turned_off(definition.key for definition in self.settings.feeds)
        with catalog.transaction():
            catalog.add_pending(changed)
            catalog.set_feed_definitions(current)
        if removed:
            LOGGER.info("feeds no longer defined, files deleted: %s", ", ".join(map(str, removed)))
        return removed

    def paths_of(self, key: FeedKey) -> tuple[str, ...]:
        """The files a feed is written to (a feed of the config may choose its formats)."""
        return tuple(key.path(fmt) for fmt in self.plan_settings.formats_of(key))

    def missing(self, known: Iterable[FeedKey]) -> list[FeedKey]:
        """The feeds one of whose files is not in the output (or is not a file)."""
        wanted = {key: self.paths_of(key) for key in known}
        present = self.target.present({p for paths in wanted.values() for p in paths})
        return [key for key, paths in wanted.items() if not present.issuperset(paths)]

    def remove_turned_off(self, known: Iterable[FeedKey]) -> None:
        """Delete the files of formats the settings no longer ask for.

        A file left behind would be served for ever and never updated: its readers would
        see a feed that silently stopped. Gone, they get a 404 and can move to another
        format (index.html lists only those written). Only the paths the build itself
        writes are touched.
        """
        for key in known:
            kept = self.plan_settings.formats_of(key)
            for fmt in ALL_FORMATS:
                if fmt in kept:
                    continue
                why = f"the {fmt.value} format is turned off"
                if self.target.remove(key.path(fmt), why):
                    LOGGER.info("removed %s: %s", self.output / key.path(fmt), why)

    def update_indexes(self, events: list[ChangeEvent], now: datetime) -> None:
        """Write the indexes if a feed was written since they were, one of them is missing, or
        their code changed; a failure to write is an event, and they stay pending."""
        stale = (
            self.catalog.indexes_pending()
            or not all(self.target.exists(name) for name in INDEXES)
            or self.catalog.index_renderer() != renderer_digest()
        )
        if stale and self._publish_indexes(events, now):
            self.catalog.finish_indexes()

    def _publish_indexes(self, events: list[ChangeEvent], now: datetime) -> bool:
        """Write index.opml, index.html and the groups' OPMLs (deleting those of groups with
        no feed left); whether all are now current."""
        from aggregator.output import render_group_opmls, render_indexes

        # Counted at this build's cut-off, as the feeds were: embargoed and aged-out
        # items are in no count.
        counts = self.catalog.membership_counts(
            self.visibility.until(now), self.visibility.window_starts(now)
        )
        feeds = [
            FeedListing(key, name, items, counts.get(key, 0), updated)
            for key, name, items, updated in self.catalog.feed_sizes()
        ]
        base = self.settings.base_url
        listed = summaries(feeds, self.plan_settings)
        groups, empty = render_group_opmls(
            listed, title=self.settings.titles.site, home_url=base + "index.html"
        )
        for path in empty:
            self.target.remove(path, "its group lists no feed now")
        opml, html = render_indexes(
            listed,
            title=self.settings.titles.site,
            home_url=base + "index.html",
            opml_url=base + "index.opml",
            headlines=self.catalog.newest(
                FeedKey.everything(),
                min(INDEX_HEADLINES, self.settings.max_items),
                until=self.visibility.until(now),
            ),
        )
        ok = True
        # The page last: what it links to is there before it.
        files = [*groups, opml, html]
        for result in self.target.publish(files):
            if result.error is not None:
                ok = False
                events.append(WriteFailed(result.error.path, result.error.reason))
        if ok:
            self.catalog.set_index_renderer(renderer_digest())
        return ok


def plan_settings_of(settings: Settings) -> PlanSettings:
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


def settings_fingerprint(plan_settings: PlanSettings) -> str:
    shaping = asdict(plan_settings)
    # Each definition has its own fingerprint (`Outputs.apply_definitions`); the ambiguous
    # names are kept apart too (`Builder._disambiguate`).
    del shaping["custom"]
    del shaping["ambiguous"]
    data = json.dumps([__version__, shaping], sort_keys=True, default=str)
    return hashlib.sha256(data.encode()).hexdigest()
