"""The catalog meta keys the build reads and writes, kept in this one place until the catalog
offers typed methods for them (then this module goes)."""

from __future__ import annotations

CUTOFF = "cutoff"  # the last build's cut-off (see `cutoff.Visibility`)
EMBARGO = "embargo"  # "on" or "off": whether that cut-off hid later items
FEED_DEFINITIONS = "feed_definitions"  # the fingerprint of each feed the config defines
RENDER_SETTINGS = "render_settings"  # the fingerprint of the settings that shape the bytes
INDEX_RENDERER = "index_renderer"  # the fingerprint of the indexes' code
