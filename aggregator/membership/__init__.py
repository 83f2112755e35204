"""Which feeds exist and what each lists: slugs, the built-in feed rules, the config's feed
definitions. Pure functions, no I/O.

The public face of the sub-package: nothing outside it imports its inner modules.
Names resolve on first use (PEP 562), so importing the face loads only what is asked for:
a build with nothing to do never pays for feedgen, watchdog or the HTTP client.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aggregator.membership.definitions import FeedDefinition, parse_feed_definitions
    from aggregator.membership.patterns import Pattern, PatternError
    from aggregator.membership.slugs import DEFAULT_RULES, FeedRules, display_name, feeds_of

__all__ = [
    "DEFAULT_RULES",
    "FeedDefinition",
    "FeedRules",
    "Pattern",
    "PatternError",
    "display_name",
    "feeds_of",
    "parse_feed_definitions",
]

_HOME = {
    "DEFAULT_RULES": "aggregator.membership.slugs",
    "FeedDefinition": "aggregator.membership.definitions",
    "FeedRules": "aggregator.membership.slugs",
    "Pattern": "aggregator.membership.patterns",
    "PatternError": "aggregator.membership.patterns",
    "display_name": "aggregator.membership.slugs",
    "feeds_of": "aggregator.membership.slugs",
    "parse_feed_definitions": "aggregator.membership.definitions",
}


def __getattr__(name: str) -> object:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value
    return value
