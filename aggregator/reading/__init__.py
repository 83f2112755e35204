"""Files in, `Article` out: finding the article files, the front matter parser, the fields checked
into an `Article`.

The public face of the sub-package: nothing outside it imports its inner modules.
Names resolve on first use (PEP 562), so importing the face loads only what is asked for:
a build with nothing to do never pays for feedgen, watchdog or the HTTP client.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aggregator.reading.articles import front_matter_text, parse_article, read_article
    from aggregator.reading.front_matter import MAX_DEPTH, parse_fast
    from aggregator.reading.sources import (
        FileStat,
        Scan,
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
    "SourceFilter": "aggregator.reading.sources",
    "front_matter_text": "aggregator.reading.articles",
    "parse_article": "aggregator.reading.articles",
    "parse_fast": "aggregator.reading.front_matter",
    "read_article": "aggregator.reading.articles",
    "scan_sources": "aggregator.reading.sources",
    "scan_tree": "aggregator.reading.sources",
    "stat_source": "aggregator.reading.sources",
}


def __getattr__(name: str) -> object:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value
    return value
