"""Files in, `Article` out: finding the article files, the front matter parser, the fields checked
into an `Article`.

Its public face (see `aggregator.faces`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aggregator.faces import resolver

if TYPE_CHECKING:
    from aggregator.reading.articles import front_matter_text, parse_article, read_article
    from aggregator.reading.front_matter import MAX_DEPTH, parse_fast
    from aggregator.reading.sources import (
        FileStat,
        Scan,
        Signature,
        SourceFilter,
        scan_sources,
        scan_tree,
        stat_source,
    )
    from aggregator.reading.values import EARLIEST, LATEST

__all__ = [
    "EARLIEST",
    "LATEST",
    "MAX_DEPTH",
    "FileStat",
    "Scan",
    "Signature",
    "SourceFilter",
    "front_matter_text",
    "parse_article",
    "parse_fast",
    "read_article",
    "scan_sources",
    "scan_tree",
    "stat_source",
]

_HOME = {
    "EARLIEST": "aggregator.reading.values",
    "FileStat": "aggregator.reading.sources",
    "LATEST": "aggregator.reading.values",
    "MAX_DEPTH": "aggregator.reading.front_matter",
    "Scan": "aggregator.reading.sources",
    "Signature": "aggregator.reading.sources",
    "SourceFilter": "aggregator.reading.sources",
    "front_matter_text": "aggregator.reading.articles",
    "parse_article": "aggregator.reading.articles",
    "parse_fast": "aggregator.reading.front_matter",
    "read_article": "aggregator.reading.articles",
    "scan_sources": "aggregator.reading.sources",
    "scan_tree": "aggregator.reading.sources",
    "stat_source": "aggregator.reading.sources",
}

__getattr__ = resolver(__name__, _HOME, globals())
