"""The output folder over HTTP, read-only, with conditional GET.

The public face of the sub-package: nothing outside it imports its inner modules.
Names resolve on first use (PEP 562), so importing the face loads only what is asked for:
a build with nothing to do never pays for feedgen, watchdog or the HTTP client.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aggregator.serve.conditional import entity_tag
    from aggregator.serve.server import FeedServer, serve
    from aggregator.serve.subscribers import (
        SubscriberCount,
        SubscriberReport,
        parse_subscribers,
        read_subscribers,
    )

__all__ = [
    "FeedServer",
    "SubscriberCount",
    "SubscriberReport",
    "entity_tag",
    "parse_subscribers",
    "read_subscribers",
    "serve",
]

_HOME = {
    "FeedServer": "aggregator.serve.server",
    "entity_tag": "aggregator.serve.conditional",
    "serve": "aggregator.serve.server",
    "SubscriberCount": "aggregator.serve.subscribers",
    "SubscriberReport": "aggregator.serve.subscribers",
    "parse_subscribers": "aggregator.serve.subscribers",
    "read_subscribers": "aggregator.serve.subscribers",
}


def __getattr__(name: str) -> object:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value
    return value
