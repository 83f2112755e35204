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
    from aggregator.catalog.cluster import ChangeListener, Leadership
    from aggregator.catalog.maintenance import Salvage, check_catalog, rebuild_catalog
    from aggregator.catalog.records import (
        DueItem,
        FeedRecord,
        FileChange,
        OwedPing,
        StoredArticle,
        SyncResult,
        format_date,
        parse_date,
    )
    from aggregator.catalog.store import Catalog, is_shared

__all__ = [
    "Catalog",
    "ChangeListener",
    "DueItem",
    "FeedRecord",
    "FileChange",
    "Leadership",
    "OwedPing",
    "Salvage",
    "StoredArticle",
    "SyncResult",
    "check_catalog",
    "format_date",
    "is_shared",
    "parse_date",
    "rebuild_catalog",
]

_HOME = {
    "Catalog": "aggregator.catalog.store",
    "ChangeListener": "aggregator.catalog.cluster",
    "DueItem": "aggregator.catalog.records",
    "FeedRecord": "aggregator.catalog.records",
    "FileChange": "aggregator.catalog.records",
    "Leadership": "aggregator.catalog.cluster",
    "OwedPing": "aggregator.catalog.records",
    "Salvage": "aggregator.catalog.maintenance",
    "StoredArticle": "aggregator.catalog.records",
    "SyncResult": "aggregator.catalog.records",
    "check_catalog": "aggregator.catalog.maintenance",
    "format_date": "aggregator.catalog.records",
    "is_shared": "aggregator.catalog.store",
    "parse_date": "aggregator.catalog.records",
    "rebuild_catalog": "aggregator.catalog.maintenance",
}


def __getattr__(name: str) -> object:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value
    return value
