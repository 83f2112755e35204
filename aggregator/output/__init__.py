"""`FeedPlan` to bytes to files: planning a feed from its items, rendering RSS, Atom and JSON Feed,
the indexes, atomic publishing.

Its public face (see `aggregator.faces`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aggregator.faces import resolver

if TYPE_CHECKING:
    from aggregator.output.digest import renderer_digest
    from aggregator.output.indexes import render_group_opmls, render_indexes
    from aggregator.output.jsonfeed import dumps_indented, rfc3339
    from aggregator.output.plan import (
        FeedListing,
        PlanSettings,
        added_updated_removed,
        ambiguous_names,
        cut,
        feed_name,
        feeds_to_render,
        plan_feed,
        summaries,
    )
    from aggregator.output.publish import (
        GZIP_SUFFIX,
        PublishBatch,
        PublishResult,
        gzip_bytes,
        next_mtime_ns,
        publish_all,
        sidecar_of,
    )
    from aggregator.output.render import limit_cache, render_feed
    from aggregator.output.temps import release_in_background, remove_stale_temps

__all__ = [
    "GZIP_SUFFIX",
    "FeedListing",
    "PlanSettings",
    "PublishBatch",
    "PublishResult",
    "added_updated_removed",
    "ambiguous_names",
    "cut",
    "dumps_indented",
    "feed_name",
    "feeds_to_render",
    "gzip_bytes",
    "limit_cache",
    "next_mtime_ns",
    "plan_feed",
    "publish_all",
    "release_in_background",
    "remove_stale_temps",
    "render_feed",
    "render_group_opmls",
    "render_indexes",
    "renderer_digest",
    "rfc3339",
    "sidecar_of",
    "summaries",
]

_HOME = {
    "FeedListing": "aggregator.output.plan",
    "GZIP_SUFFIX": "aggregator.output.publish",
    "PlanSettings": "aggregator.output.plan",
    "PublishBatch": "aggregator.output.publish",
    "PublishResult": "aggregator.output.publish",
    "added_updated_removed": "aggregator.output.plan",
    "cut": "aggregator.output.plan",
    "dumps_indented": "aggregator.output.jsonfeed",
    "ambiguous_names": "aggregator.output.plan",
    "feed_name": "aggregator.output.plan",
    "feeds_to_render": "aggregator.output.plan",
    "gzip_bytes": "aggregator.output.publish",
    "limit_cache": "aggregator.output.render",
    "next_mtime_ns": "aggregator.output.publish",
    "plan_feed": "aggregator.output.plan",
    "publish_all": "aggregator.output.publish",
    "release_in_background": "aggregator.output.temps",
    "remove_stale_temps": "aggregator.output.temps",
    "render_feed": "aggregator.output.render",
    "render_group_opmls": "aggregator.output.indexes",
    "render_indexes": "aggregator.output.indexes",
    "renderer_digest": "aggregator.output.digest",
    "rfc3339": "aggregator.output.jsonfeed",
    "sidecar_of": "aggregator.output.publish",
    "summaries": "aggregator.output.plan",
}

__getattr__ = resolver(__name__, _HOME, globals())
