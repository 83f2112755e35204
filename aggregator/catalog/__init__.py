"""What the catalog stores and how: the records, the sync of a batch of files, the SQLite and
PostgreSQL backends.

The public face of the sub-package: nothing outside it imports its inner modules.
Names resolve on first use (PEP 562), so importing the face loads only what is asked for:
a build with nothing to do never pays for feedgen, watchdog or the HTTP client.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aggregator.catalog.postgres import ChangeListener, Leadership
    from aggregator.catalog.store import (
        Catalog,
        DueItem,
        FeedRecord,
        FileChange,
        OwedPing,
        StoredArticle,
        check_catalog,
        format_date,
        parse_date,
        rebuild_catalog,
    )

__all__ = [
    "Catalog",
    "ChangeListener",
    "DueItem",
    "FeedRecord",
    "FileChange",
    "Leadership",
    "OwedPing",
    "StoredArticle",
    "check_catalog",
    "format_date",
    "parse_date",
    "rebuild_catalog",
]

_HOME = {
    "Catalog": "aggregator.catalog.store",
    "ChangeListener": "aggregator.catalog.postgres",
    "DueItem": "aggregator.catalog.store",
    "FeedRecord": "aggregator.catalog.store",
    "FileChange": "aggregator.catalog.store",
    "Leadership": "aggregator.catalog.postgres",
    "OwedPing": "aggregator.catalog.store",
    "StoredArticle": "aggregator.catalog.store",
    "check_catalog": "aggregator.catalog.store",
    "format_date": "aggregator.catalog.store",
    "parse_date": "aggregator.catalog.store",
    "rebuild_catalog": "aggregator.catalog.store",
}


def __getattr__(name: str) -> object:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value
    return value
