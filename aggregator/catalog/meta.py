"""The catalog's settings: `meta`/`set_meta` by key, and a typed pair of methods for each key
the build keeps there (the cut-off, the embargo, what the feeds and indexes were rendered
with, the feed definitions the memberships were decided under).

On a shared catalog, settings are this node's own (`<node>/key`).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from aggregator.catalog.base import CatalogBase, storage_errors
from aggregator.catalog.records import format_date, parse_date
from aggregator.model import FeedKey

# The build's keys (`Builder` used to name them itself).
CUTOFF = "cutoff"  # the last build's cut-off: later items were embargoed
EMBARGO = "embargo"  # "on" or "off": whether that cut-off hid anything
RENDER_SETTINGS = "render_settings"  # the fingerprint of what the feeds were rendered with
FEED_DEFINITIONS = "feed_definitions"  # JSON: the memberships' rules, feed by feed
INDEX_RENDERER = "index_renderer"  # the fingerprint of the indexes' code
AMBIGUOUS_FEEDS = "ambiguous_feeds"  # JSON: the feeds last rendered with the slug in the title


class MetaMixin(CatalogBase):
    """Settings of the catalog itself."""

    @storage_errors
    def meta(self, key: str) -> str | None:
        """A stored setting of the catalog itself (e.g. what the feeds were rendered with).

        On a shared catalog, settings are this node's own (`<node>/key`): what it rendered,
        with what, and up to where.
        """
        row = self._db.execute(
            "SELECT value FROM meta WHERE key = ?", (self._render_keys.stored(key),)
        ).fetchone()
        return None if row is None else str(row[0])

    @storage_errors
    def set_meta(self, key: str, value: str) -> None:
        """Store a catalog setting (inside or outside a transaction)."""
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (self._render_keys.stored(key), value),
        )

    @storage_errors
    def ambiguous_feeds(self) -> frozenset[FeedKey]:
        """The feeds whose titles were last rendered with their slug (a name shared)."""
        text = self.meta(AMBIGUOUS_FEEDS)
        return frozenset(FeedKey.parse(name) for name in json.loads(text)) if text else frozenset()

    def set_ambiguous_feeds(self, keys: frozenset[FeedKey]) -> None:
        """Remember which feeds' titles carry their slug now."""
        if keys != self.ambiguous_feeds():
            self.set_meta(AMBIGUOUS_FEEDS, json.dumps(sorted(str(k) for k in keys)))

    @storage_errors
    def cutoff(self) -> datetime | None:
        """The cut-off of the last build (None before the first)."""
        text = self.meta(CUTOFF)
        return parse_date(text) if text else None

    def set_cutoff(self, value: datetime) -> None:
        """Remember this build's cut-off."""
        self.set_meta(CUTOFF, format_date(value))

    def embargo(self) -> bool:
        """Whether the last build embargoed items dated after its cut-off (yes, unless it
        said otherwise: before the embargo existed every item was listed, see `cutoff`)."""
        return self.meta(EMBARGO) != "off"

    def set_embargo(self, on: bool) -> None:
        """Remember whether this build embargoed items."""
        self.set_meta(EMBARGO, "on" if on else "off")

    def render_settings(self) -> str | None:
        """The fingerprint of the settings the feeds were last rendered with."""
        return self.meta(RENDER_SETTINGS)

    def set_render_settings(self, fingerprint: str) -> None:
        """Remember what the feeds were rendered with."""
        self.set_meta(RENDER_SETTINGS, fingerprint)

    @storage_errors
    def feed_definitions(self) -> dict[str, Any] | None:
        """The feed definitions the memberships were last decided under (None: never
        recorded, the built-in feeds only)."""
        text = self.meta(FEED_DEFINITIONS)
        return dict(json.loads(text)) if text else None

    def set_feed_definitions(self, definitions: dict[str, Any]) -> None:
        """Remember the feed definitions the memberships are now decided under."""
        self.set_meta(FEED_DEFINITIONS, json.dumps(definitions, sort_keys=True))

    def index_renderer(self) -> str | None:
        """The fingerprint of the code the indexes were last rendered with."""
        return self.meta(INDEX_RENDERER)

    def set_index_renderer(self, digest: str) -> None:
        """Remember the code the indexes were rendered with."""
        self.set_meta(INDEX_RENDERER, digest)
