"""Which feeds exist and what each lists: slugs, the built-in feed rules, the config's feed
definitions. Pure functions, no I/O.

Its public face (see `aggregator.faces`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aggregator.faces import resolver

if TYPE_CHECKING:
    from aggregator.membership.definitions import (
        MAX_ITEMS,
        FeedDefinition,
        parse_feed_definitions,
    )
    from aggregator.membership.patterns import Pattern, PatternError
    from aggregator.membership.slugs import (
        DEFAULT_RULES,
        FeedRules,
        display_name,
        feeds_of,
        slugify,
    )

__all__ = [
    "DEFAULT_RULES",
    "MAX_ITEMS",
    "FeedDefinition",
    "FeedRules",
    "Pattern",
    "PatternError",
    "display_name",
    "feeds_of",
    "parse_feed_definitions",
    "slugify",
]

_HOME = {
    "DEFAULT_RULES": "aggregator.membership.slugs",
    "FeedDefinition": "aggregator.membership.definitions",
    "MAX_ITEMS": "aggregator.membership.definitions",
    "FeedRules": "aggregator.membership.slugs",
    "Pattern": "aggregator.membership.patterns",
    "PatternError": "aggregator.membership.patterns",
    "display_name": "aggregator.membership.slugs",
    "feeds_of": "aggregator.membership.slugs",
    "parse_feed_definitions": "aggregator.membership.definitions",
    "slugify": "aggregator.membership.slugs",
}

__getattr__ = resolver(__name__, _HOME, globals())
