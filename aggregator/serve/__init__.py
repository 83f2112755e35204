"""The output folder over HTTP, read-only, with conditional GET.

Its public face (see `aggregator.faces`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aggregator.faces import resolver

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

__getattr__ = resolver(__name__, _HOME, globals())
