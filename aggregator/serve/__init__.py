"""The output folder over HTTP, read-only, with conditional GET.

Its public face (see `aggregator.faces`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aggregator.faces import resolver

if TYPE_CHECKING:
    from aggregator.serve.conditional import entity_tag
    from aggregator.serve.server import FeedServer, serve

__all__ = [
    "FeedServer",
    "entity_tag",
    "serve",
]

_HOME = {
    "FeedServer": "aggregator.serve.server",
    "entity_tag": "aggregator.serve.conditional",
    "serve": "aggregator.serve.server",
}

__getattr__ = resolver(__name__, _HOME, globals())
